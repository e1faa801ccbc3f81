// The route-control loop: every interval, observe fitness, feed the hold-down
// state machine, and tell the routing daemon. One check runs at a time; a
// daemon call that failed is repeated on the next tick until it succeeds.
// Optionally the current decision is restated now and then: BIRD re-applies
// a static protocol's `disabled` on `birdc configure`, so the daemon can
// drift from what popsteer decided without popsteer doing anything.

import type { Logger } from '../log/logger.ts';
import { observeFitness, type FitnessObservation, type FitnessTargets } from './fitness-probe.ts';
import { RouteHoldDown, type RouteAction } from './route-state.ts';
import type { RouteSpeaker } from './speakers.ts';

interface RouteControllerOptions {
  prefixes: string[];
  targets: FitnessTargets;
  intervalMs: number;
  holdDownMs: number;
  /** Restate the current decision to the daemon this often (0: never). */
  reassertEveryMs: number;
  speaker: RouteSpeaker;
  log: Logger;
  /** Injectable for tests of the loop without a server. */
  observe?: (targets: FitnessTargets) => Promise<FitnessObservation>;
  now?: () => number;
}

export class RouteController {
  private readonly options: RouteControllerOptions;
  private readonly state: RouteHoldDown;
  private readonly observe: (targets: FitnessTargets) => Promise<FitnessObservation>;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopping = false;
  /** An action the daemon has not confirmed yet (retried each tick). */
  private unconfirmed: RouteAction | null = null;
  /** Last logged reasons, so a steady unfit state is logged once, not every tick. */
  private lastReasons = '';
  private heldDownLogged = false;
  /** When the daemon last confirmed an action. */
  private lastConfirmedAt = 0;

  constructor(options: RouteControllerOptions) {
    this.options = options;
    this.state = new RouteHoldDown(options.holdDownMs);
    this.observe = options.observe ?? observeFitness;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.schedule(0);
  }

  /** Withdraws (after any check in flight) and stops checking. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return this.running;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.running = this.running.then(async () => {
      // Already withdrawn: only a withdraw the daemon has not confirmed is left to send.
      const action = this.state.withdrawForStop() ?? this.unconfirmed;
      if (action) await this.apply(action, [reason], null, false);
    });
    return this.running;
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick().catch((err: Error) => {
        this.options.log.error({ err: err.message }, 'anycast check failed');
      }).finally(() => {
        if (!this.stopping) this.schedule(this.options.intervalMs);
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    const observation = await this.observe(this.options.targets);
    // A stop that arrived while the check was in flight wins: never announce after it.
    if (this.stopping) return;
    const now = this.now();
    this.logObservation(observation, now);
    const action = this.state.observe(observation.fit, now) ?? this.unconfirmed;
    if (action) return this.apply(action, observation.reasons, observation.pop, false);
    const { reassertEveryMs } = this.options;
    const settled = this.state.settledAction();
    if (settled && reassertEveryMs > 0 && now - this.lastConfirmedAt >= reassertEveryMs) {
      await this.apply(settled, observation.reasons, observation.pop, true);
    }
  }

  private async apply(action: RouteAction, reasons: string[], pop: string | null, restating: boolean): Promise<void> {
    const { speaker, prefixes, holdDownMs, log } = this.options;
    try {
      const changed = await speaker.apply(action);
      this.unconfirmed = null;
      this.lastConfirmedAt = this.now();
      if (restating && !changed) return;
      if (!restating) this.heldDownLogged = false;
      const fields = { event: action, prefixes, speaker: speaker.name, reasons, reportedPop: pop, holdDownMs, ...(restating ? { drifted: true } : {}) };
      const drift = restating ? ' again: the routing daemon had drifted from the decision' : '';
      if (action === 'announce') log.info(fields, `anycast route announced${drift}`);
      else log.warn(fields, `anycast route withdrawn${drift}`);
    } catch (err) {
      this.unconfirmed = action;
      log.error({ event: `${action}-failed`, prefixes, speaker: speaker.name, err: (err as Error).message }, `anycast ${action} failed; retrying next check`);
    }
  }

  private logObservation(observation: FitnessObservation, now: number): void {
    const { log } = this.options;
    const reasons = observation.reasons.join('; ');
    if (reasons !== this.lastReasons) {
      if (observation.fit) log.info({ event: 'fit', reportedPop: observation.pop }, 'instance fit for anycast');
      else log.warn({ event: 'unfit', reasons: observation.reasons, reportedPop: observation.pop }, 'instance unfit for anycast');
      this.lastReasons = reasons;
    }
    if (!observation.fit) this.heldDownLogged = false;
    const heldFor = this.state.holdDownLeft(now);
    if (observation.fit && heldFor > 0 && !this.heldDownLogged) {
      log.info({ event: 'held-down', remainingMs: heldFor, holdDownMs: this.options.holdDownMs }, 'fit again; re-announce held down');
      this.heldDownLogged = true;
    }
  }
}
