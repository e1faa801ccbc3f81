// The health service: runs once per server in the main thread, never on the
// query path. One coarse timer drives every probe; rise/fall hysteresis turns
// probe results into target states; quorums turn target states into subject
// (PoP or endpoint) states; operator overrides win over both; the "I am cut
// off" guard freezes everything when most targets fail at once. The result
// is published into the shared health table the DNS workers read.

import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import type { ProbeKind, ProbesConfig, ProbeTarget } from './config.ts';
import {
  HealthInputError, MAX_REASON_LENGTH, OVERRIDE_ACTIONS, overrideUp, readOverrides, writeOverrides,
  type Override, type OverrideAction,
} from './overrides.ts';
import { SLOT_COUNT, bumpEpoch, writeCutOff, writeHealth } from './table.ts';
import {
  FAILURE_REASONS, LOCAL_CAUSES, classifyError, defaultTransports, type FailureReason, type LocalCause, type ProbeOutcome, type ProbeTransports,
} from './transports.ts';

export type TargetState = 'up' | 'down' | 'unknown';

/** Upper bounds (seconds) of the probe duration histogram. */
export const PROBE_DURATION_BOUNDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Probes due within this much of each other start on the same timer wake-up. */
const TIMER_GRANULARITY_MS = 5;

export interface HealthServiceOptions {
  /** Subject ids in table order: PoPs by catalog ordinal, then endpoints. */
  subjects: readonly string[];
  config: ProbesConfig;
  stateFile: string;
  log: Logger;
  table: SharedArrayBuffer;
  /** Time and timers (clock.ts); the system clock unless a test drives its own. */
  clock?: Clock;
  transports?: Partial<ProbeTransports>;
}

export interface ProbeResult {
  ok: boolean;
  reason: FailureReason | null;
  detail: string;
  durationMs: number;
  /** ms since the epoch */
  at: number;
}

/** The fleet's verdict on a target (server/fleet/verdict.ts), as the health service applies it. */
export interface FleetVerdict {
  state: 'up' | 'down';
  /** "down: seen down by fra, lhr; ams excluded (cut off)" */
  evidence: string;
}

export interface TargetStatus {
  id: string;
  kind: ProbeKind;
  /** What this instance's own probes say (the last they said, when it does not probe the target). */
  state: TargetState;
  /** In a fleet: whether this instance probes the target (sharding), and the fleet's verdict on it. */
  probedHere: boolean;
  verdict: FleetVerdict | null;
  since: number;
  last: ProbeResult | null;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

export interface SubjectStatus {
  id: string;
  /** What the DNS workers see. */
  state: 'up' | 'down';
  since: number;
  /** What the probes alone say (before overrides and the cut-off freeze). */
  probeState: 'up' | 'down';
  override: Override | null;
  quorum: number;
  targets: TargetStatus[];
}

export interface CutOffStatus {
  active: boolean;
  /** Share of probed targets that are down now (0 when too few targets). */
  share: number;
  since: number | null;
}

export interface HealthStatus {
  ready: boolean;
  /** Where target states come from: this instance's probes, or the fleet's verdict. */
  source: 'local' | 'fleet';
  cutOff: CutOffStatus;
  subjects: SubjectStatus[];
}

export interface TransitionEvent {
  subject: string;
  /** The target whose change caused it, if a probe did. */
  target: string | null;
  from: 'up' | 'down';
  to: 'up' | 'down';
  reason: string;
}

export interface TargetTransitionEvent {
  target: string;
  from: TargetState;
  to: TargetState;
  reason: string;
}

export interface ProbeEvent {
  target: string;
  ok: boolean;
  reason: FailureReason | null;
  durationMs: number;
  /** Offset (ms) of the start within the target's interval, for spread checks. */
  startedAt: number;
}

/** A probe that could not run here (no socket): not a result about the target. */
export interface NotProbedEvent {
  target: string;
  cause: LocalCause;
  detail: string;
  /** Probes of this target in a row that could not run, this one included. */
  inARow: number;
}

export interface TargetMetrics {
  id: string;
  kind: ProbeKind;
  up: 0 | 1;
  /** Cumulative counts per PROBE_DURATION_BOUNDS bucket, then +Inf. */
  durationBuckets: number[];
  durationSumSeconds: number;
  durationCount: number;
  failures: Record<FailureReason, number>;
  /** Probes that could not run here, by cause (EMFILE …): neither failures nor successes. */
  notProbed: Record<LocalCause, number>;
  transitions: number;
}

export interface HealthMetrics {
  targets: TargetMetrics[];
  subjects: Array<{ id: string; up: 0 | 1; transitions: number; override: Override['kind'] | null }>;
  cutOff: 0 | 1;
  probesInFlight: number;
  /** Probes that waited because max_in_flight probes were already running. */
  probesQueued: number;
  /** Probes skipped because the previous probe of the target was still running. */
  probesSkipped: number;
  stateFileWriteFailures: number;
}

export interface HealthEvents {
  transition: [TransitionEvent];
  target: [TargetTransitionEvent];
  'cut-off': [CutOffStatus];
  probe: [ProbeEvent];
  'not-probed': [NotProbedEvent];
  /** A probe result was applied to its target (its state may or may not have changed). */
  observed: [string];
  ready: [];
}

interface InFlight {
  controller: AbortController;
  startedHr: number;
  deadline: number;
  /** The deadline passed; the verdict waits for the replies already received (expire()). */
  expiring: boolean;
}

interface TargetRuntime {
  target: ProbeTarget;
  probed: boolean;
  /** Probed by this instance: always without a fleet; in one, only the targets assigned to it. */
  assigned: boolean;
  /** The fleet's verdict, used instead of `state` while the source is the fleet. */
  verdict: FleetVerdict | null;
  state: TargetState;
  since: number;
  successes: number;
  failures: number;
  last: ProbeResult | null;
  nextDueAt: number;
  inFlight: InFlight | null;
  queued: boolean;
  /** When it last went down (for the cut-off window). */
  wentDownAt: number;
  durationCounts: number[];
  durationSumSeconds: number;
  failureCounts: Record<FailureReason, number>;
  notProbedCounts: Record<LocalCause, number>;
  /** Probes in a row that could not run; 0 once one runs. */
  notProbedInARow: number;
  transitions: number;
}

interface SubjectRuntime {
  id: string;
  index: number;
  targets: number[];
  quorum: number;
  up: boolean;
  since: number;
  override: Override | null;
  /** Effective state held while cut off. */
  frozenUp: boolean;
  transitions: number;
}

function sameOverride(a: Override | null, b: Override | null): boolean {
  if (a === null || b === null) return a === b;
  return a.kind === b.kind && a.reason === b.reason && a.since === b.since && a.expires === b.expires && a.author === b.author;
}

const noFailures = (): Record<FailureReason, number> =>
  Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>;
const noLocalCauses = (): Record<LocalCause, number> =>
  Object.fromEntries(LOCAL_CAUSES.map((c) => [c, 0])) as Record<LocalCause, number>;

export class HealthService extends EventEmitter<HealthEvents> {
  private readonly config: ProbesConfig;
  private readonly stateFile: string;
  private readonly log: Logger;
  private readonly view: Int32Array;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly transports: ProbeTransports;
  private readonly targets: TargetRuntime[];
  private readonly subjects: SubjectRuntime[];
  private readonly subjectIndex = new Map<string, number>();
  private readonly queue: number[] = [];
  private timer: TimerHandle | null = null;
  private running = false;
  private inFlightCount = 0;
  private probesQueued = 0;
  private probesSkipped = 0;
  private stateFileWriteFailures = 0;
  private cutOffActive = false;
  private cutOffSince: number | null = null;
  private isReady: boolean;
  private source: 'local' | 'fleet' = 'local';

  constructor(options: HealthServiceOptions) {
    super();
    this.config = options.config;
    this.stateFile = options.stateFile;
    this.log = options.log.child({ module: 'health' });
    this.view = new Int32Array(options.table);
    this.clock = options.clock ?? systemClock;
    this.now = () => this.clock.now();
    this.transports = { ...defaultTransports, ...options.transports };
    if (this.view[SLOT_COUNT] !== options.subjects.length) {
      throw new RangeError(`health table holds ${this.view[SLOT_COUNT]} subjects, expected ${options.subjects.length}`);
    }
    const t = this.now();
    const initial: TargetState = this.config.initialState === 'wait' ? 'unknown' : 'up';
    this.targets = this.config.targets.map((target) => ({
      target,
      probed: target.kind !== 'external',
      assigned: true,
      verdict: null,
      state: target.kind === 'external' ? 'up' : initial,
      since: t,
      successes: 0,
      failures: 0,
      last: null,
      nextDueAt: Infinity,
      inFlight: null,
      queued: false,
      wentDownAt: -Infinity,
      durationCounts: new Array(PROBE_DURATION_BOUNDS.length + 1).fill(0),
      durationSumSeconds: 0,
      failureCounts: noFailures(),
      notProbedCounts: noLocalCauses(),
      notProbedInARow: 0,
      transitions: 0,
    }));
    this.subjects = options.subjects.map((id, index) => {
      const probes = this.config.subjects.get(id);
      this.subjectIndex.set(id, index);
      return { id, index, targets: probes?.targets ?? [], quorum: probes?.quorum ?? 0, up: true, since: t, override: null, frozenUp: true, transitions: 0 };
    });
    for (const id of this.config.subjects.keys()) {
      if (!this.subjectIndex.has(id)) this.log.warn({ subject: id }, 'probes configured for an unknown subject are ignored');
    }
    this.isReady = !this.targets.some((r) => r.state === 'unknown');
    this.restoreOverrides();
    this.publish('start-up', null, true);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // Spread first probes evenly over each interval, so targets sharing an
    // interval never start together (no thundering herd).
    this.spreadFirstProbes(this.targets.filter((r) => r.probed && r.assigned));
    this.log.info({ targets: this.targets.length, probed: this.targets.filter((r) => r.probed).length, subjects: this.subjects.length, initialState: this.config.initialState }, 'health probes started');
    this.tick();
  }

  private spreadFirstProbes(runtimes: TargetRuntime[]): void {
    const t = this.now();
    const groups = new Map<number, TargetRuntime[]>();
    for (const runtime of runtimes) {
      const group = groups.get(runtime.target.intervalMs) ?? [];
      group.push(runtime);
      groups.set(runtime.target.intervalMs, group);
    }
    for (const [intervalMs, group] of groups) {
      group.forEach((runtime, k) => { runtime.nextDueAt = t + Math.floor((k * intervalMs) / group.length); });
    }
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    for (const runtime of this.targets) {
      if (runtime.inFlight) runtime.inFlight.controller.abort();
      runtime.inFlight = null;
      runtime.queued = false;
    }
    this.inFlightCount = 0;
    this.queue.length = 0;
  }

  /** False while initial_state is "wait" and some probed target has no result yet. */
  ready(): boolean {
    return this.isReady;
  }

  cutOff(): CutOffStatus {
    return { active: this.cutOffActive, share: this.downShare(), since: this.cutOffSince };
  }

  status(): HealthStatus {
    return {
      ready: this.isReady,
      source: this.source,
      cutOff: this.cutOff(),
      subjects: this.subjects.map((s) => ({
        id: s.id,
        state: s.up ? 'up' : 'down',
        since: s.since,
        probeState: this.probeUp(s) ? 'up' : 'down',
        override: s.override ? { ...s.override } : null,
        quorum: s.quorum,
        targets: s.targets.map((i) => this.targetStatus(this.targets[i])),
      })),
    };
  }

  metricsSnapshot(): HealthMetrics {
    return {
      targets: this.targets.map((r) => {
        let cumulative = 0;
        return {
          id: r.target.id,
          kind: r.target.kind,
          up: r.state === 'down' ? 0 : 1,
          durationBuckets: r.durationCounts.map((count) => (cumulative += count)),
          durationSumSeconds: r.durationSumSeconds,
          durationCount: cumulative,
          failures: { ...r.failureCounts },
          notProbed: { ...r.notProbedCounts },
          transitions: r.transitions,
        };
      }),
      subjects: this.subjects.map((s) => ({ id: s.id, up: s.up ? 1 : 0, transitions: s.transitions, override: s.override?.kind ?? null })),
      cutOff: this.cutOffActive ? 1 : 0,
      probesInFlight: this.inFlightCount,
      probesQueued: this.probesQueued,
      probesSkipped: this.probesSkipped,
      stateFileWriteFailures: this.stateFileWriteFailures,
    };
  }

  /**
   * Applies an operator override (`undrain` removes any override). Throws
   * HealthInputError for an unknown subject or invalid input; nothing is
   * applied then. Persisted to the state file; a failed write is logged and
   * counted, and the override still applies in memory.
   */
  setOverride(subjectId: string, action: OverrideAction, reason: string, expiresAt: number | null): SubjectStatus {
    const index = this.checkOverride(subjectId, action, reason, expiresAt);
    const t = this.now();
    const subject = this.subjects[index];
    const previous = subject.override;
    subject.override = action === 'undrain' ? null : { kind: action, reason: reason.trim(), since: t, expires: expiresAt };
    this.log.info({ subject: subjectId, action, reason, expires: expiresAt === null ? null : new Date(expiresAt).toISOString(), previous: previous?.kind ?? null }, 'health override');
    this.persistOverrides();
    this.publish(`${action}: ${reason.trim()}`, null);
    this.scheduleNext();
    return this.status().subjects[index];
  }

  /**
   * Throws HealthInputError when setOverride would refuse these arguments;
   * the subject's index otherwise. The fleet checks before it writes an
   * override to the fleet, so a refused one never reaches other instances.
   */
  checkOverride(subjectId: string, action: OverrideAction, reason: string, expiresAt: number | null): number {
    const index = this.subjectIndex.get(subjectId);
    if (index === undefined) throw new HealthInputError('POPSTEER_ERR_HEALTH_UNKNOWN_SUBJECT', `no PoP or endpoint "${subjectId}"`);
    if (!(OVERRIDE_ACTIONS as readonly string[]).includes(action)) {
      throw new HealthInputError('POPSTEER_ERR_HEALTH_BAD_OVERRIDE', `action must be one of ${OVERRIDE_ACTIONS.join(', ')}`);
    }
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON_LENGTH) {
      throw new HealthInputError('POPSTEER_ERR_HEALTH_BAD_OVERRIDE', `a reason of 1 to ${MAX_REASON_LENGTH} characters is required`);
    }
    const t = this.now();
    if (expiresAt !== null && (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= t)) {
      throw new HealthInputError('POPSTEER_ERR_HEALTH_BAD_OVERRIDE', 'the expiry must be a time in the future');
    }
    if (action === 'undrain' && expiresAt !== null) {
      throw new HealthInputError('POPSTEER_ERR_HEALTH_BAD_OVERRIDE', 'undrain takes no expiry');
    }
    return index;
  }

  /**
   * An override as the fleet holds it (server/fleet): applied as recorded,
   * with its own start and absolute expiry, so every instance ends it at the
   * same moment; null lifts any override. Unknown subjects (a PoP this
   * instance's catalog lacks) and overrides already expired are ignored.
   * Persisted like a local one: a restart without the fleet keeps it.
   */
  applyFleetOverride(subjectId: string, override: Override | null): void {
    const index = this.subjectIndex.get(subjectId);
    if (index === undefined) return;
    const next = override !== null && override.expires !== null && override.expires <= this.now() ? null : override;
    const subject = this.subjects[index];
    if (sameOverride(subject.override, next)) return;
    subject.override = next === null ? null : { ...next };
    this.log.info({ subject: subjectId, kind: next?.kind ?? null, reason: next?.reason ?? null, author: next?.author ?? null,
      expires: next?.expires == null ? null : new Date(next.expires).toISOString() }, 'health override from the fleet');
    this.persistOverrides();
    this.publish(next === null ? 'fleet: override lifted' : `fleet ${next.kind}: ${next.reason}`, null);
    this.scheduleNext();
  }

  /** State from an outside monitor for an `external` target; applied as is (the monitor does its own damping). */
  pushExternal(targetId: string, up: boolean, reason: string): TargetStatus {
    const runtime = this.targets.find((r) => r.target.id === targetId && r.target.kind === 'external');
    if (!runtime) throw new HealthInputError('POPSTEER_ERR_HEALTH_UNKNOWN_TARGET', `no external target "${targetId}"`);
    const detail = typeof reason === 'string' && reason !== '' ? reason.slice(0, MAX_REASON_LENGTH) : (up ? 'reported up' : 'reported down');
    runtime.last = { ok: up, reason: up ? null : 'other', detail, durationMs: 0, at: this.now() };
    if (up) { runtime.successes++; runtime.failures = 0; } else { runtime.failures++; runtime.successes = 0; }
    if ((runtime.state === 'up') !== up) this.transitionTarget(runtime, up ? 'up' : 'down', `external: ${detail}`);
    return this.targetStatus(runtime);
  }

  /**
   * Seconds until the subject's effective state could change at the earliest
   * (gdnsd-style TTL scaling). Infinity when only an operator can change it;
   * 0 when an external feed may change it at any moment.
   */
  secondsUntilPossibleChange(subjectId: string): number {
    const index = this.subjectIndex.get(subjectId);
    if (index === undefined) return Infinity;
    const subject = this.subjects[index];
    const t = this.now();
    if (subject.override) return subject.override.expires === null ? Infinity : Math.max(0, (subject.override.expires - t) / 1000);
    let soonest = Infinity;
    for (const i of subject.targets) {
      const runtime = this.targets[i];
      const { intervalMs, timeoutMs, rise, fall } = runtime.target;
      if (!runtime.probed) return 0;
      // Probed elsewhere: the fleet may call it at any of their probes.
      const untilNextProbe = runtime.assigned ? Math.max(0, runtime.nextDueAt - t) : 0;
      let ms: number;
      const state = this.stateOf(runtime);
      if (state === 'down') ms = untilNextProbe + (Math.max(1, rise - runtime.successes) - 1) * intervalMs;
      else ms = untilNextProbe + (Math.max(1, fall - runtime.failures) - 1) * intervalMs + (state === 'up' ? timeoutMs : 0);
      soonest = Math.min(soonest, ms);
    }
    return soonest / 1000;
  }

  // ---- the fleet (server/fleet/observations.ts) ----

  /** Probe targets (external ones aside) with the subjects they decide and their verdict rule. */
  fleetTargets(): Array<{ id: string; subjects: string[]; verdict: ProbeTarget['verdict'] }> {
    return this.targets.flatMap((r, index) => (r.probed
      ? [{ id: r.target.id, subjects: this.subjects.filter((s) => s.targets.includes(index)).map((s) => s.id), verdict: r.target.verdict }]
      : []));
  }

  /**
   * What this instance's probes say of each target it probes, and whether it
   * considers itself cut off: the cut-off guard holds, or at least two
   * targets are probed here and every one of them is down.
   */
  observations(): { cutOff: boolean; targets: Array<{ id: string; state: TargetState; since: number; reason: string }> } {
    const mine = this.targets.filter((r) => r.probed && r.assigned);
    const allDown = mine.length >= 2 && mine.every((r) => r.state === 'down');
    return {
      cutOff: this.cutOffActive || allDown,
      // Nothing probed yet (just started, or just given the target): nothing to say.
      targets: mine.map((r) => ({ id: r.target.id, state: r.last === null ? 'unknown' : r.state, since: r.since, reason: r.last?.detail ?? '' })),
    };
  }

  /**
   * The fleet decides: only the `assigned` targets are probed here, and the
   * fleet's verdicts replace this instance's own states. A target with no
   * verdict now keeps its last one (or, never judged, this instance's state).
   */
  useFleet(assigned: ReadonlySet<string>, verdicts: ReadonlyMap<string, FleetVerdict>): void {
    const wasLocal = this.source === 'local';
    this.source = 'fleet';
    const newly: TargetRuntime[] = [];
    const changed: Array<{ runtime: TargetRuntime; verdict: FleetVerdict }> = [];
    for (const r of this.targets) {
      if (!r.probed) continue;
      const mine = assigned.has(r.target.id);
      if (mine && !r.assigned) newly.push(r);
      r.assigned = mine;
      const v = verdicts.get(r.target.id);
      if (v === undefined) continue;
      if (r.verdict === null || r.verdict.state !== v.state || wasLocal) changed.push({ runtime: r, verdict: v });
      r.verdict = { ...v };
    }
    if (wasLocal) this.log.info({ probedHere: [...assigned].sort() }, 'health: states from the fleet verdict');
    if (this.running) this.spreadFirstProbes(newly);
    for (const { runtime, verdict } of changed) {
      this.log[verdict.state === 'down' ? 'warn' : 'info']({ target: runtime.target.id, verdict: verdict.state, evidence: verdict.evidence }, 'health: fleet verdict');
    }
    const cutOffChanged = this.updateCutOff();
    for (const { runtime, verdict } of changed) this.publish(`fleet verdict ${verdict.evidence}`, runtime.target.id);
    this.publish('fleet verdict', null);
    if (cutOffChanged) this.emit('cut-off', this.cutOff());
    this.checkReady();
    this.scheduleNext();
  }

  /**
   * Back to this instance's own probes for every target (the fleet is out of
   * reach for longer than the grace). Targets probed elsewhere start from
   * the fleet's last verdict, so nothing flips before these probes say so.
   */
  useLocalProbes(reason: string): void {
    if (this.source === 'local') return;
    this.source = 'local';
    const t = this.now();
    const newly: TargetRuntime[] = [];
    for (const r of this.targets) {
      if (!r.probed) continue;
      if (!r.assigned) {
        newly.push(r);
        if (r.verdict !== null && r.verdict.state !== r.state) {
          r.state = r.verdict.state;
          r.since = t;
          r.successes = 0;
          r.failures = 0;
        }
      }
      r.assigned = true;
      r.verdict = null;
    }
    this.log.warn({ reason, targets: newly.length }, 'health: probing every target from here; the fleet verdict is not used');
    if (this.running) this.spreadFirstProbes(newly);
    const cutOffChanged = this.updateCutOff();
    this.publish(reason, null);
    if (cutOffChanged) this.emit('cut-off', this.cutOff());
    this.scheduleNext();
  }

  // ---- scheduling ----

  private tick = (): void => {
    this.timer = null;
    if (!this.running) return;
    const t = this.now();
    for (let i = 0; i < this.targets.length; i++) {
      const runtime = this.targets[i];
      const flight = runtime.inFlight;
      if (flight && flight.deadline <= t && !flight.expiring) this.expire(runtime, flight);
      if (!runtime.probed || !runtime.assigned || runtime.nextDueAt > t) continue;
      if (runtime.inFlight || runtime.queued) this.probesSkipped++;
      else {
        if (this.inFlightCount + this.queue.length >= this.config.maxInFlight) this.probesQueued++;
        runtime.queued = true;
        this.queue.push(i);
      }
      // Keep the phase: a late wake-up skips missed slots instead of bursting.
      const interval = runtime.target.intervalMs;
      runtime.nextDueAt += interval * Math.max(1, Math.ceil((t - runtime.nextDueAt + 1) / interval));
    }
    this.launchQueued();
    this.expireOverrides(t);
    this.scheduleNext();
  };

  private scheduleNext(): void {
    if (!this.running) return;
    let wake = Infinity;
    for (const runtime of this.targets) {
      if (runtime.probed && runtime.assigned && runtime.nextDueAt < wake) wake = runtime.nextDueAt;
      if (runtime.inFlight && !runtime.inFlight.expiring && runtime.inFlight.deadline < wake) wake = runtime.inFlight.deadline;
    }
    for (const subject of this.subjects) {
      const expires = subject.override?.expires;
      if (expires != null && expires < wake) wake = expires;
    }
    if (wake === Infinity) return;
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    const delay = Math.max(TIMER_GRANULARITY_MS, wake - this.now());
    this.timer = this.clock.setTimer(this.tick, delay);
  }

  /**
   * The deadline of a probe passed: it is a timeout only if it has still not
   * completed once the replies already waiting are read. A timer that fired
   * late because this thread was busy (a long task, a stalled process) must
   * not turn a reply that arrived in time into a target failure.
   */
  private expire(runtime: TargetRuntime, flight: InFlight): void {
    flight.expiring = true;
    this.clock.afterPendingIo(() => {
      if (runtime.inFlight !== flight) return; // it completed: judged on its own result
      flight.controller.abort();
      this.finishProbe(runtime, flight, { ok: false, reason: 'timeout', detail: `no answer within ${runtime.target.timeoutMs}ms` });
      if (this.running) this.scheduleNext();
    });
  }

  private launchQueued(): void {
    while (this.queue.length > 0 && this.inFlightCount < this.config.maxInFlight) {
      const runtime = this.targets[this.queue.shift()!];
      runtime.queued = false;
      this.startProbe(runtime);
    }
  }

  private startProbe(runtime: TargetRuntime): void {
    const controller = new AbortController();
    const flight: InFlight = { controller, startedHr: this.clock.monotonic(), deadline: this.now() + runtime.target.timeoutMs, expiring: false };
    runtime.inFlight = flight;
    this.inFlightCount++;
    const transport = this.transports[runtime.target.kind as Exclude<ProbeKind, 'external'>];
    let outcome: Promise<ProbeOutcome>;
    try {
      outcome = transport(runtime.target, controller.signal);
    } catch (err) {
      outcome = Promise.resolve(classifyError(err));
    }
    outcome.then(
      (result) => this.finishProbe(runtime, flight, result),
      (err: Error) => this.finishProbe(runtime, flight, classifyError(err)),
    );
  }

  private finishProbe(runtime: TargetRuntime, flight: InFlight, outcome: ProbeOutcome): void {
    // A probe already timed out (or the service stopped): its late answer is ignored.
    if (runtime.inFlight !== flight) return;
    runtime.inFlight = null;
    this.inFlightCount--;
    if (!outcome.ok && outcome.reason === 'local') {
      this.notProbed(runtime, outcome.cause, outcome.detail);
      if (this.running) this.launchQueued();
      return;
    }
    if (runtime.notProbedInARow > 0) {
      this.log.info({ target: runtime.target.id, notProbed: runtime.notProbedInARow }, 'health: probing again');
      runtime.notProbedInARow = 0;
    }
    const durationMs = this.clock.monotonic() - flight.startedHr;
    const t = this.now();
    const reason = outcome.ok ? null : outcome.reason;
    runtime.last = { ok: outcome.ok, reason, detail: outcome.detail, durationMs, at: t };
    this.observeDuration(runtime, durationMs);
    if (reason) runtime.failureCounts[reason]++;
    const interval = runtime.target.intervalMs;
    this.emit('probe', { target: runtime.target.id, ok: outcome.ok, reason, durationMs, startedAt: (t - durationMs) % interval });
    this.applyResult(runtime, outcome);
    this.emit('observed', runtime.target.id);
    if (this.running) this.launchQueued();
  }

  /**
   * The probe never reached the target: this server could not open a socket.
   * The target keeps its state and streaks, and the cut-off guard sees
   * nothing; the count and the log say what happened.
   */
  private notProbed(runtime: TargetRuntime, cause: LocalCause, detail: string): void {
    runtime.notProbedCounts[cause]++;
    runtime.notProbedInARow++;
    const fields = { target: runtime.target.id, cause, detail, inARow: runtime.notProbedInARow };
    if (runtime.notProbedInARow === 1) {
      this.log.warn(fields, 'health: could not probe (no socket on this server); the target keeps its state');
    } else {
      this.log.debug(fields, 'health: could not probe');
    }
    this.emit('not-probed', { target: runtime.target.id, cause, detail, inARow: runtime.notProbedInARow });
  }

  private observeDuration(runtime: TargetRuntime, durationMs: number): void {
    const seconds = durationMs / 1000;
    let bucket = PROBE_DURATION_BOUNDS.findIndex((bound) => seconds <= bound);
    if (bucket < 0) bucket = PROBE_DURATION_BOUNDS.length;
    runtime.durationCounts[bucket]++;
    runtime.durationSumSeconds += seconds;
  }

  // ---- state ----

  /** rise/fall hysteresis; the very first result decides when initial_state is "wait". */
  private applyResult(runtime: TargetRuntime, outcome: ProbeOutcome): void {
    const { rise, fall } = runtime.target;
    let next: TargetState = runtime.state;
    if (outcome.ok) {
      runtime.successes++;
      runtime.failures = 0;
      if (runtime.state === 'unknown' || (runtime.state === 'down' && runtime.successes >= rise)) next = 'up';
    } else {
      runtime.failures++;
      runtime.successes = 0;
      if (runtime.state === 'unknown' || (runtime.state === 'up' && runtime.failures >= fall)) next = 'down';
    }
    if (next !== runtime.state) this.transitionTarget(runtime, next, outcome.detail);
    this.checkReady();
  }

  /** Ready once no target counts as unknown (with initial_state "wait"); in a fleet a verdict decides too. */
  private checkReady(): void {
    if (this.isReady || this.targets.some((r) => this.stateOf(r) === 'unknown' && (r.assigned || this.source === 'local'))) return;
    this.isReady = true;
    this.log.info('health: first probe round complete, ready');
    this.emit('ready');
  }

  private transitionTarget(runtime: TargetRuntime, to: TargetState, reason: string): void {
    const from = runtime.state;
    runtime.state = to;
    runtime.since = this.now();
    runtime.transitions++;
    if (to === 'down') runtime.wentDownAt = runtime.since;
    const level = to === 'down' ? 'warn' : 'info';
    this.log[level]({ target: runtime.target.id, kind: runtime.target.kind, from, to, reason }, `health target ${to}`);
    this.emit('target', { target: runtime.target.id, from, to, reason });
    const cutOffChanged = this.updateCutOff();
    this.publish(reason, runtime.target.id);
    // Announced after publishing, so listeners see the frozen (or resumed) table.
    if (cutOffChanged) this.emit('cut-off', this.cutOff());
  }

  private downShare(): number {
    let probed = 0;
    let down = 0;
    for (const runtime of this.targets) {
      if (!runtime.probed || !runtime.assigned) continue;
      probed++;
      if (runtime.state === 'down') down++;
    }
    return probed >= this.config.cutOff.minTargets ? down / probed : 0;
  }

  /** "They are down" or "I am cut off": enter or leave the freeze. True when it changed. */
  private updateCutOff(): boolean {
    if (!this.config.cutOff.enabled) return false;
    const share = this.downShare();
    const t = this.now();
    if (!this.cutOffActive && share > this.config.cutOff.share) {
      this.cutOffActive = true;
      this.cutOffSince = t;
      // Freeze the states from before this outage: targets that went down
      // within the window are part of it and count as up.
      const windowStart = t - this.config.cutOff.windowMs;
      for (const subject of this.subjects) {
        subject.frozenUp = this.probeUpAt(subject, (r) => r.state !== 'down' || r.wentDownAt >= windowStart);
      }
      writeCutOff(this.view, true);
      this.log.error({ share, threshold: this.config.cutOff.share, frozen: this.subjects.filter((s) => !s.frozenUp).map((s) => s.id) },
        'health: most targets went down at once; this server is likely cut off. Freezing last known states');
      return true;
    } else if (this.cutOffActive && share <= this.config.cutOff.share) {
      this.cutOffActive = false;
      const since = this.cutOffSince;
      this.cutOffSince = null;
      writeCutOff(this.view, false);
      this.log.warn({ share, frozenForMs: since === null ? 0 : t - since }, 'health: cut-off over; evaluating probes again');
      return true;
    }
    return false;
  }

  private probeUpAt(subject: SubjectRuntime, isUp: (r: TargetRuntime) => boolean): boolean {
    if (subject.targets.length === 0) return true;
    let up = 0;
    for (const i of subject.targets) if (isUp(this.targets[i])) up++;
    return up >= subject.quorum;
  }

  /** Up by its probes (an unknown target counts as up until its first result); in a fleet, by the verdicts. */
  private probeUp(subject: SubjectRuntime): boolean {
    return this.probeUpAt(subject, (r) => this.stateOf(r) !== 'down');
  }

  /** The state a target counts with: the fleet's verdict while the fleet decides and has one, else this instance's probes. */
  private stateOf(r: TargetRuntime): TargetState {
    return this.source === 'fleet' && r.verdict !== null ? r.verdict.state : r.state;
  }

  private effectiveUp(subject: SubjectRuntime): boolean {
    if (subject.override) return overrideUp(subject.override.kind);
    // The fleet's verdict leaves out observers that are cut off: this instance's freeze does not hold it back.
    if (this.cutOffActive && this.source === 'local') return subject.frozenUp;
    return this.probeUp(subject);
  }

  /**
   * Recomputes every subject, writes the changes to the table and bumps the
   * epoch once. At start-up every slot is written, silently.
   */
  private publish(reason: string, target: string | null, startUp = false): void {
    let changed = false;
    const t = this.now();
    for (const subject of this.subjects) {
      const up = this.effectiveUp(subject);
      if (startUp) writeHealth(this.view, subject.index, up);
      if (up === subject.up) continue;
      const from = subject.up ? 'up' : 'down';
      const to = up ? 'up' : 'down';
      subject.up = up;
      subject.since = t;
      changed = true;
      if (startUp) continue;
      writeHealth(this.view, subject.index, up);
      subject.transitions++;
      this.log[up ? 'info' : 'warn']({ subject: subject.id, target, from, to, reason, override: subject.override?.kind ?? null }, `health: ${subject.id} ${to}`);
      this.emit('transition', { subject: subject.id, target, from, to, reason });
    }
    if (changed || startUp) bumpEpoch(this.view);
  }

  private expireOverrides(t: number): void {
    let expired = false;
    for (const subject of this.subjects) {
      const o = subject.override;
      if (o && o.expires !== null && o.expires <= t) {
        this.log.info({ subject: subject.id, kind: o.kind, reason: o.reason }, 'health override expired');
        subject.override = null;
        expired = true;
      }
    }
    if (expired) {
      this.persistOverrides();
      this.publish('override expired', null);
    }
  }

  private restoreOverrides(): void {
    let stored: Map<string, Override>;
    try {
      stored = readOverrides(this.stateFile);
    } catch (err) {
      this.log.error({ file: this.stateFile, err: (err as Error).message }, 'health state file unreadable; starting without overrides');
      return;
    }
    const t = this.now();
    for (const [id, override] of stored) {
      const index = this.subjectIndex.get(id);
      if (index === undefined) {
        this.log.warn({ subject: id, kind: override.kind }, 'stored override names an unknown subject; dropped');
        continue;
      }
      if (override.expires !== null && override.expires <= t) continue;
      this.subjects[index].override = override;
      this.log.info({ subject: id, kind: override.kind, reason: override.reason }, 'health override restored');
    }
  }

  private persistOverrides(): void {
    const current = new Map<string, Override>();
    for (const subject of this.subjects) if (subject.override) current.set(subject.id, subject.override);
    try {
      writeOverrides(this.stateFile, current);
    } catch (err) {
      this.stateFileWriteFailures++;
      this.log.error({ file: this.stateFile, err: (err as Error).message }, 'cannot write the health state file; the override applies until restart only');
    }
  }

  private targetStatus(r: TargetRuntime): TargetStatus {
    const { id, kind, intervalMs, timeoutMs, rise, fall } = r.target;
    return {
      id, kind, state: r.state, probedHere: r.probed && r.assigned, verdict: this.source === 'fleet' && r.verdict ? { ...r.verdict } : null,
      since: r.since, last: r.last ? { ...r.last } : null,
      consecutiveSuccesses: r.successes, consecutiveFailures: r.failures, intervalMs, timeoutMs, rise, fall,
    };
  }
}
