// The route-control loop: every interval, observe fitness, feed the hold-down
// state machine, and tell the routing daemon. One check runs at a time; a
// daemon call that failed is repeated on the next tick until it succeeds.

import type { Logger } from '../log/logger.ts';
import { observeFitness, type FitnessObservation, type FitnessTargets } from './fitness-probe.ts';
import { RouteHoldDown, type RouteAction } from './route-state.ts';
import type { RouteSpeaker } from './speakers.ts';

export interface RouteControllerOptions {
  prefixes: string[];
  targets: FitnessTargets;
  intervalMs: number;
  holdDownMs: number;
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
      if (action) await this.apply(action, [reason], null);
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
    if (action) await this.apply(action, observation.reasons, observation.pop);
  }

  private async apply(action: RouteAction, reasons: string[], pop: string | null): Promise<void> {
    const { speaker, prefixes, holdDownMs, log } = this.options;
    try {
      await speaker.apply(action);
      this.unconfirmed = null;
      this.heldDownLogged = false;
      const fields = { event: action, prefixes, speaker: speaker.name, reasons, reportedPop: pop, holdDownMs };
      if (action === 'announce') log.info(fields, 'anycast route announced');
      else log.warn(fields, 'anycast route withdrawn');
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
