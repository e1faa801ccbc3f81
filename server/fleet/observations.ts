// The fleet's health: observations in, one verdict out (README "Running a
// fleet"). Each instance probes only the targets rendezvous hashing gives it
// (rendezvous.ts) and publishes what its probes see of them to the
// <name>-observations bucket, one key per observer and target; every
// instance reads every observation and computes the same verdicts
// (verdict.ts), which feed its health table in place of its own states.
//
// Partitions: while the fleet is out of reach the last verdicts hold; after
// the grace (fleet.grace) this instance probes every target itself and says
// so; once it follows the fleet again the verdicts take over, no restart.

import type { KV, KvEntry } from 'nats';
import type { VerdictRule } from '../config/verdict-rule.ts';
import { systemClock, type Clock, type TimerHandle } from '../health/clock.ts';
import type { FleetVerdict, TargetState } from '../health/service.ts';
import type { Logger } from '../log/logger.ts';
import { RECORD_VERSION } from './records.ts';
import { assignProbers } from './rendezvous.ts';
import { computeVerdicts, type Observation, type ObserverBeat, type TargetVerdict } from './verdict.ts';

/** What the fleet's health needs of the health service. */
export interface VerdictHealth {
  fleetTargets(): Array<{ id: string; subjects: string[]; verdict: VerdictRule | null }>;
  observations(): { cutOff: boolean; targets: Array<{ id: string; state: TargetState; since: number; reason: string }> };
  useFleet(assigned: ReadonlySet<string>, verdicts: ReadonlyMap<string, FleetVerdict>): void;
  useLocalProbes(reason: string): void;
  on(event: 'observed' | 'cut-off', listener: () => void): unknown;
}

interface ObservationsOptions {
  health: VerdictHealth;
  pop: string;
  instanceId: string;
  /** Rendezvous probers per target (k). */
  probers: number;
  defaultRule: VerdictRule;
  graceMs: number;
  /** A heartbeat older than this leaves its observer out. */
  staleMs: number;
  log: Logger;
  clock?: Clock;
}

/**
 * One observation as stored: the key is `<pop>.<observer>.<target id in base64url>`,
 * led by the PoP as heartbeats are, so a NATS user per PoP can be allowed to
 * write its own observations only (README "Running a fleet", credentials).
 */
interface ObservationRecord extends Observation {
  v: number;
}

/** Observers unseen for this long are left out of the evidence altogether (an instance that restarted has a new id). */
const FORGET_MS = 10 * 60 * 1000;

export function observationKey(pop: string, observer: string, target: string): string {
  return `${pop}.${observer}.${Buffer.from(target).toString('base64url')}`;
}

export function decodeObservation(key: string, bytes: Uint8Array): Observation | null {
  let r: Partial<ObservationRecord>;
  try {
    r = JSON.parse(new TextDecoder().decode(bytes)) as Partial<ObservationRecord>;
  } catch {
    return null;
  }
  const valid = r !== null && typeof r === 'object' && r.v === RECORD_VERSION && typeof r.observer === 'string' && typeof r.pop === 'string'
    && typeof r.target === 'string' && (r.state === 'up' || r.state === 'down' || r.state === 'unknown') && typeof r.since === 'number'
    && typeof r.reason === 'string' && typeof r.cutOff === 'boolean';
  // An observer writes under its own id only: a record under another's key is not believed.
  if (!valid || key !== observationKey(r.pop!, r.observer!, r.target!)) return null;
  return { observer: r.observer!, pop: r.pop!, target: r.target!, state: r.state!, since: r.since!, reason: r.reason!, cutOff: r.cutOff! };
}

export interface FleetHealthStatus {
  source: 'fleet' | 'local';
  /** When this instance last fell back to its own probes, null if it follows the fleet. */
  localSince: number | null;
  probers: number;
  observersLive: number;
  /** Targets where this instance's own probes disagree with the verdict. */
  disagreements: number;
  targets: Array<TargetVerdict & { probers: string[]; observedBy: string[]; probedHere: boolean; ownState: TargetState | null }>;
  /** Per instance (by id): the targets where what it reports differs from the verdict. */
  dissent: Map<string, Array<{ target: string; sees: 'up' | 'down'; verdict: 'up' | 'down' }>>;
}

export class Observations {
  private readonly options: ObservationsOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private kv: KV | null = null;
  private readonly seen = new Map<string, Observation>();
  private members = new Map<string, ObserverBeat>();
  private connected = false;
  /** The fleet's verdict is in use (false at start-up and after the grace ran out). */
  private following = false;
  private localSince: number | null = null;
  private graceTimer: TimerHandle | null = null;
  private assignment = new Map<string, Set<string>>();
  private verdicts = new Map<string, TargetVerdict>();
  /** What was last written per target: "state/cutOff". */
  private readonly published = new Map<string, string>();
  /** Why each observer with observations is left out now (null: it counts), to log the changes. */
  private readonly exclusions = new Map<string, string | null>();
  private flushing = false;
  private flushAgain = false;

  constructor(options: ObservationsOptions) {
    this.options = options;
    this.log = options.log.child({ module: 'fleet' });
    this.clock = options.clock ?? systemClock;
    const changed = (): void => void this.flush();
    options.health.on('observed', changed);
    options.health.on('cut-off', changed);
  }

  /** The bucket to write to (opened by the fleet); entries come in through onEntry. */
  attach(kv: KV): void {
    this.kv = kv;
  }

  /** A watch starts again: it delivers every current value first. */
  rewatch(): void {
    this.seen.clear();
  }

  onEntry(entry: KvEntry): void {
    if (entry.operation !== 'PUT') this.seen.delete(entry.key);
    else {
      const o = decodeObservation(entry.key, entry.value);
      if (o === null) this.log.warn({ key: entry.key, revision: entry.revision }, 'fleet: an observation this popsteer cannot read; skipped');
      else this.seen.set(entry.key, o);
    }
    this.recompute();
  }

  /** Every instance's last heartbeat (this one included). */
  setMembers(members: Iterable<{ instance: string; pop: string; seenAt: number }>): void {
    this.members = new Map([...members].map((m) => [m.instance, { instance: m.instance, pop: m.pop, seenAt: m.seenAt }]));
    this.recompute();
  }

  setConnected(connected: boolean): void {
    this.connected = connected;
    if (connected) {
      if (this.graceTimer !== null) this.clock.clearTimer(this.graceTimer);
      this.graceTimer = null;
    } else if (this.following && this.graceTimer === null) {
      this.graceTimer = this.clock.setTimer(() => this.graceOver(), this.options.graceMs);
    }
  }

  /** The watches caught up (at start and after each reconnection): the fleet decides again. */
  followed(): void {
    if (!this.connected) return;
    if (!this.following) {
      this.following = true;
      this.log.info({ after: this.localSince === null ? 'start' : 'partition', localForMs: this.localSince === null ? null : this.clock.now() - this.localSince },
        'fleet: health from the fleet verdict');
      this.localSince = null;
    }
    // Whatever was written before the link went down may be old: everything is written again.
    this.published.clear();
    this.recompute();
  }

  stop(): void {
    if (this.graceTimer !== null) this.clock.clearTimer(this.graceTimer);
    this.graceTimer = null;
    this.kv = null;
  }

  private graceOver(): void {
    this.graceTimer = null;
    if (this.connected || !this.following) return;
    this.following = false;
    this.localSince = this.clock.now();
    this.log.warn({ graceMs: this.options.graceMs }, 'fleet: out of reach for longer than the grace; health from local probes until it is back');
    this.options.health.useLocalProbes(`fleet out of reach for ${this.options.graceMs} ms`);
  }

  /** Called on each heartbeat: heartbeats grow stale with time alone. */
  tick(): void {
    this.recompute();
  }

  /** Live instances (this one always), the assignment, the verdicts; the health service takes both. */
  private recompute(): void {
    if (!this.following || !this.connected) return;
    const { health, instanceId, pop, probers, defaultRule, staleMs } = this.options;
    const now = this.clock.now();
    const beats = new Map(this.members);
    beats.set(instanceId, { instance: instanceId, pop, seenAt: now });
    const live = [...beats.values()].filter((b) => now - b.seenAt <= staleMs);
    const targets = health.fleetTargets();
    this.assignment = assignProbers(targets.map((t) => ({ id: t.id, pops: t.subjects })), live, probers);
    const rules = new Map<string, VerdictRule>();
    for (const t of targets) if (t.verdict !== null) rules.set(t.id, t.verdict);
    const recent = [...this.seen.values()].filter((o) => beats.has(o.observer) && now - beats.get(o.observer)!.seenAt <= FORGET_MS);
    this.verdicts = computeVerdicts({ observations: recent, observers: beats, rules, defaultRule, now, staleMs });
    this.logExclusions(recent, beats);
    const decided = new Map<string, FleetVerdict>();
    for (const [id, v] of this.verdicts) if (v.state !== 'unknown') decided.set(id, { state: v.state, evidence: v.evidence });
    const mine = new Set(targets.filter((t) => this.assignment.get(t.id)?.has(instanceId)).map((t) => t.id));
    health.useFleet(mine, decided);
    void this.flush();
  }

  /** Logs each observer that starts or stops being left out of the verdicts (cut off, stale heartbeat). */
  private logExclusions(recent: Observation[], beats: ReadonlyMap<string, ObserverBeat>): void {
    const now = this.clock.now();
    const current = new Map<string, { pop: string; why: string | null }>();
    for (const o of recent) {
      const stale = now - (beats.get(o.observer)?.seenAt ?? -Infinity) > this.options.staleMs;
      const why = stale ? 'stale heartbeat' : o.cutOff ? 'cut off' : null;
      const known = current.get(o.observer);
      if (known === undefined || (known.why === null && why !== null)) current.set(o.observer, { pop: o.pop, why });
    }
    for (const [instance, { pop, why }] of current) {
      const before = this.exclusions.get(instance);
      if (before === why || (before === undefined && why === null)) continue;
      if (why !== null) this.log.warn({ observer: pop, member: instance, why }, 'fleet: observer excluded');
      else this.log.info({ observer: pop, member: instance, was: before }, 'fleet: observer counts again');
    }
    this.exclusions.clear();
    for (const [instance, { why }] of current) this.exclusions.set(instance, why);
  }

  /** Writes this instance's observations that changed, and removes those of targets it no longer probes. */
  private async flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        await this.writeChanges();
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
  }

  private async writeChanges(): Promise<void> {
    const kv = this.kv;
    if (kv === null || !this.connected || !this.following) return;
    const { instanceId, pop } = this.options;
    const own = this.options.health.observations();
    const current = new Set<string>();
    for (const t of own.targets) {
      if (!this.assignment.get(t.id)?.has(instanceId)) continue;
      current.add(t.id);
      const mark = `${t.state}/${own.cutOff}`;
      if (this.published.get(t.id) === mark) continue;
      const record: ObservationRecord = { v: RECORD_VERSION, observer: instanceId, pop, target: t.id, state: t.state, since: t.since, reason: t.reason, cutOff: own.cutOff };
      if (await this.put(observationKey(pop, instanceId, t.id), new TextEncoder().encode(JSON.stringify(record)))) this.published.set(t.id, mark);
    }
    for (const id of [...this.published.keys()]) {
      if (current.has(id)) continue;
      try {
        await kv.delete(observationKey(pop, instanceId, id));
        this.published.delete(id);
      } catch (err) {
        this.log.debug({ target: id, err: (err as Error).message }, 'fleet: observation not removed yet');
      }
    }
  }

  private async put(key: string, value: Uint8Array): Promise<boolean> {
    try {
      await this.kv!.put(key, value);
      return true;
    } catch (err) {
      // Written again on the next change, heartbeat or reconnection.
      this.log.debug({ key, err: (err as Error).message }, 'fleet: observation not acknowledged');
      return false;
    }
  }

  status(): FleetHealthStatus {
    const own = new Map(this.options.health.observations().targets.map((t) => [t.id, t.state]));
    const popOf = (id: string): string => (id === this.options.instanceId ? this.options.pop : this.members.get(id)?.pop ?? id);
    const observedBy = new Map<string, string[]>();
    for (const o of this.seen.values()) observedBy.set(o.target, [...(observedBy.get(o.target) ?? []), o.pop]);
    const targets = [...this.verdicts.values()].map((v) => {
      const mine = own.get(v.target) ?? null;
      return {
        ...v, probers: [...(this.assignment.get(v.target) ?? [])].map(popOf).sort(), observedBy: (observedBy.get(v.target) ?? []).sort(),
        probedHere: this.assignment.get(v.target)?.has(this.options.instanceId) ?? false, ownState: mine,
      };
    });
    const now = this.clock.now();
    const dissent = new Map<string, Array<{ target: string; sees: 'up' | 'down'; verdict: 'up' | 'down' }>>();
    for (const o of this.seen.values()) {
      const v = this.verdicts.get(o.target);
      if (v === undefined || v.state === 'unknown' || o.state === 'unknown' || o.state === v.state) continue;
      dissent.set(o.observer, [...(dissent.get(o.observer) ?? []), { target: o.target, sees: o.state, verdict: v.state }]);
    }
    return {
      dissent,
      source: this.following ? 'fleet' : 'local',
      localSince: this.localSince,
      probers: this.options.probers,
      observersLive: [...this.members.values()].filter((b) => now - b.seenAt <= this.options.staleMs).length,
      disagreements: targets.filter((t) => t.probedHere && t.ownState !== null && t.ownState !== 'unknown' && t.state !== 'unknown' && t.ownState !== t.state).length,
      targets,
    };
  }
}
