// A clock that moves only when the test moves it (server/health/clock.ts).
// Timers fire in order of their due time, then of creation, and only from
// fireNext()/advanceTo(): a test about schedules asserts on exact times, and a
// loaded machine cannot make it late.

import type { Clock, TimerHandle } from '../../server/health/clock.ts';

interface Timer {
  at: number;
  order: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  private time: number;
  private readonly timers: Timer[] = [];
  private created = 0;

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  monotonic(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const timer: Timer = { at: this.time + Math.max(0, delayMs), order: this.created++, callback };
    this.timers.push(timer);
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    const i = this.timers.indexOf(handle as Timer);
    if (i >= 0) this.timers.splice(i, 1);
  }

  /** Not time: the promise chains and socket events already waiting run first, as in production. */
  afterPendingIo(callback: () => void): void {
    setImmediate(callback);
  }

  /** When the next timer is due, or null when none is set. */
  nextDue(): number | null {
    return this.earliest()?.at ?? null;
  }

  /** Moves to the earliest timer's time and fires it; false when no timer is set. */
  fireNext(): boolean {
    const timer = this.earliest();
    if (!timer) return false;
    this.timers.splice(this.timers.indexOf(timer), 1);
    this.time = Math.max(this.time, timer.at);
    timer.callback();
    return true;
  }

  /** Fires, in order, every timer due up to `ms`, and ends there. */
  advanceTo(ms: number): void {
    for (let next = this.nextDue(); next !== null && next <= ms; next = this.nextDue()) this.fireNext();
    this.time = Math.max(this.time, ms);
  }

  /** Time passes with no timer firing (a stalled process); overdue timers fire late, on the next fireNext(). */
  stall(ms: number): void {
    this.time += ms;
  }

  private earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.timers) if (!best || t.at < best.at || (t.at === best.at && t.order < best.order)) best = t;
    return best;
  }
}
