// Announce/withdraw decisions with a hold-down, as a pure state machine fed
// with fitness observations and a clock, so the timing rules are testable
// without routing daemons.
//
// Rules:
// - The first observation always produces an action: announce when fit,
//   withdraw when not (a route left announced by a previous run is cleared).
// - Announced and unfit → withdraw at once.
// - After withdrawing an announced route, re-announce only once the instance
//   has been seen fit continuously for the hold-down: every unfit observation
//   while withdrawn pushes the end of the hold-down further. A flapping
//   instance therefore stays withdrawn instead of flapping the route.
// - A withdraw at start-up (never announced yet) arms no hold-down: a fresh
//   instance announces as soon as it is fit.

export type RouteAction = 'announce' | 'withdraw';

type RouteStatus = 'unknown' | 'announced' | 'withdrawn';

export class RouteHoldDown {
  readonly holdDownMs: number;
  private status: RouteStatus = 'unknown';
  /** Clock value before which no re-announce happens; 0 when no hold-down is armed. */
  private holdUntil = 0;

  constructor(holdDownMs: number) {
    this.holdDownMs = holdDownMs;
  }

  get current(): RouteStatus {
    return this.status;
  }

  /** Milliseconds of hold-down left at `now` (0 when none). */
  holdDownLeft(now: number): number {
    return this.status === 'withdrawn' && this.holdUntil > now ? this.holdUntil - now : 0;
  }

  /** Feeds one observation; returns the action to take, or null to keep the route as it is. */
  observe(fit: boolean, now: number): RouteAction | null {
    if (fit) {
      if (this.status === 'announced') return null;
      if (this.status === 'withdrawn' && now < this.holdUntil) return null;
      this.status = 'announced';
      this.holdUntil = 0;
      return 'announce';
    }
    if (this.status === 'announced') {
      this.status = 'withdrawn';
      this.holdUntil = now + this.holdDownMs;
      return 'withdraw';
    }
    if (this.status === 'withdrawn') {
      if (this.holdUntil > 0) this.holdUntil = Math.max(this.holdUntil, now + this.holdDownMs);
      return null;
    }
    this.status = 'withdrawn';
    return 'withdraw';
  }

  /** The action that restates the current decision (null before the first observation). */
  settledAction(): RouteAction | null {
    if (this.status === 'unknown') return null;
    return this.status === 'announced' ? 'announce' : 'withdraw';
  }

  /** Shutting down: withdraw unless already withdrawn. */
  withdrawForStop(): RouteAction | null {
    if (this.status === 'withdrawn') return null;
    this.status = 'withdrawn';
    return 'withdraw';
  }
}
