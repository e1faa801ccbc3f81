// The health scheduler's only view of time. Production uses the system
// clock and Node's timers; tests hand in a manual clock and move it
// themselves, so a test about spreading, hysteresis or deadlines asserts on
// exact probe times, never on how fast a loaded machine happened to run.

import { performance } from 'node:perf_hooks';

export type TimerHandle = unknown;

export interface Clock {
  /** Wall-clock ms since the epoch: override expiries, "since" fields, the schedule. */
  now(): number;
  /** Monotonic ms for measuring probe durations. */
  monotonic(): number;
  /** Calls `callback` once after `delayMs`; the timer never keeps the process alive. */
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  /**
   * Calls `callback` once the I/O that is already waiting has been handled:
   * after a stall, Node runs due timers before it reads the sockets, so a
   * deadline judged at once would beat a reply that came in time.
   */
  afterPendingIo(callback: () => void): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return timer;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
  // setImmediate runs in the check phase, after the poll phase has handled every socket that is ready.
  afterPendingIo(callback) {
    setImmediate(callback);
  },
};
