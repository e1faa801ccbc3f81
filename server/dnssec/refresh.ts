// Signatures that never expire in service (issue 21). Signatures are made
// at compile time with a window that ends 14 days after the signing day
// (sign.ts validityAt); nothing on the query path re-signs. This module
// watches the served window against a clock: when the expiry comes nearer
// than the refresh threshold it asks for a recompile through the ordinary
// build path (as a reload does), and when it comes nearer than the safety
// margin (a refresh kept failing: a key gone or unreadable, a broken edit)
// the instance reports itself unfit, so anycast withdraws it before a
// validating resolver sees an expired signature. Signatures that came with
// a published revision (presigned.ts) cannot be renewed here: the refresh
// says so once, and the unfit verdict follows as for a failing one.

import { readFileSync, unwatchFile, watchFile } from 'node:fs';

const DAY_MS = 86_400_000;

// The defaults; settings dnssec.resign_days, unfit_hours and check_minutes replace them (config/settings.ts).
/** Re-sign when the served signatures expire within this (7 days: half the 14-day window). */
export const REFRESH_THRESHOLD_MS = 7 * DAY_MS;
/** Unfit when they expire within this: two days for a person to fix what stops the refresh. */
export const UNFIT_MARGIN_MS = 2 * DAY_MS;
/** How often the clock is compared with the window when nothing else asks (the system clock moves slowly against days). */
const CHECK_EVERY_MS = 10 * 60_000;

/**
 * The signing clock, in ms since the epoch. POPSTEER_CLOCK_FILE names a file
 * holding that number: tests set the server's time (the build thread inherits
 * the variable, so signing and the checks here read the same clock). Unset,
 * it is the system clock.
 */
export function signingClock(): () => number {
  const file = process.env.POPSTEER_CLOCK_FILE;
  if (!file) return Date.now;
  return () => {
    const ms = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(ms) ? ms : Date.now();
  };
}

interface RefreshLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

interface RefreshOptions {
  now: () => number;
  /** When the served signatures expire (ms since the epoch); null when no zone is signed. */
  expiry: () => number | null;
  /** Recompiles and swaps in (main.ts reload); resolves with whether the new set serves. */
  refresh: (reason: string) => Promise<{ ok: boolean; errors: string[] }>;
  log: RefreshLog;
  thresholdMs?: number;
  marginMs?: number;
  checkEveryMs?: number;
}

/** The background re-signing and the unfit verdict for signatures about to expire. */
export class SignatureRefresh {
  private readonly options: RefreshOptions;
  private readonly thresholdMs: number;
  private readonly marginMs: number;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unfitLogged = false;
  private clockFile: string | null = null;
  /**
   * The expiry a refresh compiled again without moving: signatures that came
   * with a published revision (presigned.ts), which no key here can renew.
   * Not tried again until the served expiry changes (a new revision).
   */
  private stuckAt: number | null = null;

  constructor(options: RefreshOptions) {
    this.options = options;
    this.thresholdMs = options.thresholdMs ?? REFRESH_THRESHOLD_MS;
    this.marginMs = options.marginMs ?? UNFIT_MARGIN_MS;
  }

  /** Seconds until the served signatures expire (negative once expired); null when nothing is signed. */
  secondsLeft(): number | null {
    const expiry = this.options.expiry();
    return expiry === null ? null : (expiry - this.options.now()) / 1000;
  }

  /** The fitness reason while the served signatures expire within the margin (or have expired); null otherwise. */
  unfitReason(): string | null {
    const left = this.secondsLeft();
    if (left === null || left * 1000 > this.marginMs) return null;
    const expiry = new Date(this.options.expiry()!).toISOString();
    return left <= 0
      ? `DNSSEC signatures expired at ${expiry}; re-signing has not succeeded (see the log)`
      : `DNSSEC signatures expire at ${expiry}, in ${(left / 3600).toFixed(1)} h; re-signing has not succeeded (see the log)`;
  }

  /**
   * Compares the clock with the served window: re-signs when it is within
   * the threshold (one refresh at a time), and logs the unfit verdict once
   * when it crosses into the margin. Resolves when any refresh it started ends.
   */
  check(): Promise<void> {
    this.logVerdict();
    const left = this.secondsLeft();
    if (left === null || left * 1000 > this.thresholdMs || this.running || this.options.expiry() === this.stuckAt) return this.running ?? Promise.resolve();
    this.running = this.resign(left).finally(() => { this.running = null; this.logVerdict(); });
    return this.running;
  }

  private async resign(left: number): Promise<void> {
    const expiry = new Date(this.options.expiry()!).toISOString();
    this.options.log.info({ expiry, secondsLeft: Math.round(left) }, 'DNSSEC signatures expire soon: re-signing');
    const before = this.options.expiry();
    const outcome = await this.options.refresh(`DNSSEC signatures expire at ${expiry}`);
    if (outcome.ok && this.options.expiry() === before) {
      this.stuckAt = before;
      this.options.log.warn({ expiry }, 'DNSSEC signatures came with the published policy set and no key here renews them: publish the set again where the keys are (popsteer publish) before they expire');
    } else if (outcome.ok) this.options.log.info({ expiry: new Date(this.options.expiry() ?? 0).toISOString() }, 'DNSSEC signatures refreshed');
    else this.options.log.error({ expiry, errors: outcome.errors }, 'DNSSEC re-signing failed; the old signatures keep serving');
  }

  private logVerdict(): void {
    const reason = this.unfitReason();
    if (reason !== null && !this.unfitLogged) this.options.log.error({ reason }, 'unfit: DNSSEC signatures expire within the safety margin');
    if (reason === null && this.unfitLogged) this.options.log.info({}, 'DNSSEC signatures fresh again: fit');
    this.unfitLogged = reason !== null;
  }

  /** Checks every few minutes, and at once whenever POPSTEER_CLOCK_FILE changes (tests move the clock). */
  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.checkEveryMs ?? CHECK_EVERY_MS);
    this.timer.unref();
    const file = process.env.POPSTEER_CLOCK_FILE;
    if (file) {
      this.clockFile = file;
      watchFile(file, { interval: 50, persistent: false }, () => void this.check());
    }
    void this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.clockFile) unwatchFile(this.clockFile);
  }
}
