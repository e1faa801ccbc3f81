// The fleet layer: this instance's link to the other popsteer instances
// through NATS JetStream key-value buckets (README "Running a fleet").
//
//   <name>-overrides  drain / force-down / force-up / undrain per PoP, with
//                     author, reason and absolute expiry; history kept
//   <name>-instances  one heartbeat per instance (PoP, start, last seen),
//                     keyed <pop>.<instance id>
//   <name>-observations  what each instance's probes see of the targets
//                     it probes; every instance derives the same health
//                     verdict from them (observations.ts)
//
// Every instance watches both buckets and applies what it sees, its own
// writes included, so all apply the same records. An override through the
// admin API is written first and answered only once JetStream acknowledged
// it. Losing NATS never stops answering: the health service keeps the last
// overrides it applied (and its state file keeps them across a restart);
// on reconnection the watches start again from the current values.

import { randomUUID } from 'node:crypto';
import { connect, Events, type KV, type KvEntry, type NatsConnection, type QueuedIterator } from 'nats';
import type { VerdictRule } from '../config/verdict-rule.ts';
import type { Override, OverrideAction } from '../health/overrides.ts';
import type { Logger } from '../log/logger.ts';
import { readCredentials, tlsOptions } from './credentials.ts';
import { Observations, type FleetHealthStatus, type VerdictHealth } from './observations.ts';
import type { RevisionReport } from './revisions.ts';
import {
  RECORD_VERSION, decodeInstance, decodeOverride, encodeRecord, isKeySafe, overrideOf, type InstanceRecord, type OverrideRecord,
} from './records.ts';

/** What the fleet needs of the health service. */
interface FleetHealth extends VerdictHealth {
  checkOverride(subjectId: string, action: OverrideAction, reason: string, expiresAt: number | null): number;
  applyFleetOverride(subjectId: string, override: Override | null): void;
}

interface FleetOptions {
  servers: string[];
  name: string;
  credsFile: string | null;
  /** PEM CA of the servers' TLS certificates (--fleet-ca); null: the system's CAs. */
  caFile?: string | null;
  pop: string;
  version: string;
  health: FleetHealth;
  log: Logger;
  /** Heartbeat period; an instance unseen for 3 periods is shown as not connected. */
  heartbeatMs?: number;
  /** How long one write waits for JetStream's acknowledgement. */
  writeTimeoutMs?: number;
  /** How long an override write keeps trying (reconnecting, a new stream leader). */
  writeDeadlineMs?: number;
  /** The health verdict: probers per target, the default rule and the grace after losing the fleet. */
  verdict?: { probers: number; rule: VerdictRule; graceMs: number };
  /** Versioned policy sets (revisions.ts): followed with the other buckets; what serves goes in the heartbeat. */
  revisions?: { follow(js: ReturnType<NatsConnection['jetstream']>): Promise<void>; report(): RevisionReport; stop(): void } | null;
  /** Declared load (load.ts): followed with the other buckets. */
  load?: { follow(js: ReturnType<NatsConnection['jetstream']>): Promise<void>; stop(): void } | null;
}

interface FleetInstance {
  pop: string;
  instance: string;
  self: boolean;
  connected: boolean;
  startedAt: number;
  lastSeen: number;
  version: string;
  revision: RevisionReport | null;
}

interface FleetStatus {
  name: string;
  servers: string[];
  instance: string;
  connected: boolean;
  /** When this instance last lost or regained the fleet (ms since the epoch), null before the first connection. */
  since: number | null;
  instances: FleetInstance[];
  overrides: Array<{ subject: string } & OverrideRecord>;
  health: FleetHealthStatus;
}

/** The fleet could not take an override now (NATS unreachable, no acknowledgement in time). */
export class FleetUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FleetUnavailableError';
  }
}

const DEFAULT_HEARTBEAT_MS = 2000;
const DEFAULT_WRITE_TIMEOUT_MS = 4000;
/** Versions of each override kept in the bucket: who, when and why. */
const OVERRIDE_HISTORY = 64;
/** The default grace before an instance that lost the fleet probes every target itself. */
const DEFAULT_GRACE_MS = 30_000;
/** Heartbeats of instances gone for this long are dropped by JetStream itself. */
const INSTANCE_MAX_AGE_MS = 24 * 3600 * 1000;
const RETRY_MS = 500;
/** The longest an override write waits for the fleet (an admin call answers within it). */
const DEFAULT_WRITE_DEADLINE_MS = 6000;
const CLOSE_WAIT_MS = 1000;

export class Fleet {
  private readonly options: FleetOptions;
  private readonly log: Logger;
  readonly instanceId = randomUUID().slice(0, 8);
  private readonly startedAt = Date.now();
  private nc: NatsConnection | null = null;
  private overridesKv: KV | null = null;
  private instancesKv: KV | null = null;
  private observationsKv: KV | null = null;
  private readonly observations: Observations;
  private js: ReturnType<NatsConnection['jetstream']> | null = null;
  private readonly watches: Array<QueuedIterator<KvEntry>> = [];
  /** The newest record per subject and its revision in the bucket (the bucket's order, not the writers' clocks). */
  private readonly overrides = new Map<string, { record: OverrideRecord; revision: number }>();
  private readonly instances = new Map<string, InstanceRecord>();
  private connected = false;
  private since: number | null = null;
  private stopped = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly heartbeatMs: number;
  private readonly writeDeadlineMs: number;

  constructor(options: FleetOptions) {
    this.options = options;
    this.log = options.log.child({ module: 'fleet' });
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.writeDeadlineMs = options.writeDeadlineMs ?? DEFAULT_WRITE_DEADLINE_MS;
    // Read now: bad credentials stop start-up (exit 2), not a background loop.
    this.authenticator = options.credsFile === null ? undefined : readCredentials(options.credsFile);
    this.tls = tlsOptions(options.caFile ?? null);
    const verdict = options.verdict ?? { probers: 3, rule: { kind: 'quorum' }, graceMs: DEFAULT_GRACE_MS };
    this.observations = new Observations({
      health: options.health, pop: options.pop, instanceId: this.instanceId, probers: verdict.probers, defaultRule: verdict.rule,
      graceMs: verdict.graceMs, staleMs: 3 * this.heartbeatMs, log: options.log,
    });
  }

  private readonly authenticator: ReturnType<typeof readCredentials> | undefined;
  private readonly tls: ReturnType<typeof tlsOptions>;

  /** Connects in the background, forever retrying: the DNS service never waits for the fleet. */
  start(): void {
    void this.run().catch((err: Error) => this.log.error({ err: err.message }, 'fleet: stopped working; this instance keeps its last fleet state'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const w of this.watches.splice(0)) w.stop();
    this.options.revisions?.stop();
    this.options.load?.stop();
    this.observations.stop();
    // Closing flushes to a server; with none reachable it would wait on: a stop never waits long for the fleet.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.nc?.close().catch(() => undefined), new Promise((r) => { timer = setTimeout(r, CLOSE_WAIT_MS); })]);
    clearTimeout(timer);
  }

  status(): FleetStatus {
    const now = Date.now();
    const instances = [...this.instances.values()].map((r) => ({
      pop: r.pop, instance: r.instance, self: r.instance === this.instanceId, startedAt: r.startedAt, lastSeen: r.seenAt, version: r.version,
      revision: r.instance === this.instanceId ? this.options.revisions?.report() ?? null : r.revision ?? null,
      connected: r.instance === this.instanceId ? this.connected : now - r.seenAt <= 3 * this.heartbeatMs,
    })).sort((a, b) => a.pop.localeCompare(b.pop) || a.instance.localeCompare(b.instance));
    const overrides = [...this.overrides].map(([subject, r]) => ({ subject, ...r.record })).sort((a, b) => a.subject.localeCompare(b.subject));
    return {
      name: this.options.name, servers: this.options.servers, instance: this.instanceId, connected: this.connected, since: this.since, instances, overrides,
      health: this.observations.status(),
    };
  }

  /**
   * Writes an override for the whole fleet and resolves once JetStream has
   * acknowledged it; applied here at once, and by every instance through its
   * watch. Throws HealthInputError (refused, nothing written) or
   * FleetUnavailableError (not written: the caller must not answer 200).
   */
  async setOverride(subject: string, action: OverrideAction, reason: string, expiresAt: number | null, author: string): Promise<void> {
    this.options.health.checkOverride(subject, action, reason, expiresAt);
    if (!isKeySafe(subject)) throw new FleetUnavailableError(`"${subject}" cannot be a fleet key`);
    const record: OverrideRecord = { v: RECORD_VERSION, action, reason: reason.trim(), author, at: Date.now(), expires: expiresAt, via: this.options.pop };
    const revision = await this.write(subject, encodeRecord(record));
    this.applyOverride(subject, record, revision);
  }

  /**
   * Puts a value until JetStream acknowledges it or the write deadline
   * passes. A hub server that just died leaves its streams without a leader
   * for a moment ("no responders") and the client reconnecting elsewhere:
   * both pass within seconds, so the write is tried again meanwhile. Writing
   * the same record twice is harmless (same content, same time).
   */
  private async write(key: string, value: Uint8Array): Promise<number> {
    const deadline = Date.now() + this.writeDeadlineMs;
    for (;;) {
      let failure = 'not connected';
      if (this.overridesKv !== null && this.connected) {
        try {
          return await this.overridesKv.put(key, value);
        } catch (err) {
          failure = (err as Error).message;
        }
      }
      if (Date.now() + RETRY_MS > deadline || this.stopped) {
        throw new FleetUnavailableError(`the fleet did not acknowledge the override within ${this.writeDeadlineMs} ms (${failure}); it may or may not apply: check GET /v1/fleet`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS / 2));
    }
  }

  private async run(): Promise<void> {
    const { servers, name, pop } = this.options;
    this.nc = await connect({
      servers, name: `popsteer-${pop}-${this.instanceId}`, authenticator: this.authenticator, tls: this.tls,
      waitOnFirstConnect: true, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: RETRY_MS, pingInterval: 5000, maxPingOut: 2,
    });
    if (this.stopped) return void this.nc.close();
    this.setConnected(true);
    void this.followStatus(this.nc);
    const js = this.js = this.nc.jetstream({ timeout: this.options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS });
    this.overridesKv = await this.retry('open the overrides bucket', () => openBucket(js, `${name}-overrides`, { history: OVERRIDE_HISTORY }, this.log));
    this.instancesKv = await this.retry('open the instances bucket', () => openBucket(js, `${name}-instances`, { history: 1, ttl: INSTANCE_MAX_AGE_MS }, this.log));
    this.observationsKv = await this.retry('open the observations bucket', () => openBucket(js, `${name}-observations`, { history: 1, ttl: INSTANCE_MAX_AGE_MS }, this.log));
    this.observations.attach(this.observationsKv);
    await this.watchAll();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref();
    void this.heartbeat();
  }

  /** Disconnections and reconnections; after a reconnection the watches start again and catch up. */
  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) this.setConnected(false);
      else if (s.type === Events.Reconnect) {
        this.setConnected(true);
        void this.watchAll().catch((err: Error) => this.log.warn({ err: err.message }, 'fleet: cannot watch again'));
      }
    }
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.since = Date.now();
    this.observations.setConnected(connected);
    if (connected) this.log.info({ servers: this.options.servers, fleet: this.options.name, member: this.instanceId }, 'fleet: connected');
    else this.log.warn({ servers: this.options.servers }, 'fleet: disconnected; answering from the last known fleet state');
  }

  /** (Re)starts the watches of both buckets; each delivers every current value first, so a restart catches up. */
  private async watchAll(): Promise<void> {
    if (this.overridesKv === null || this.instancesKv === null || this.observationsKv === null || this.stopped) return;
    for (const w of this.watches.splice(0)) w.stop();
    const overrides = await this.retry('watch overrides', () => this.overridesKv!.watch());
    const instances = await this.retry('watch instances', () => this.instancesKv!.watch());
    this.observations.rewatch();
    const observations = await this.retry('watch observations', () => this.observationsKv!.watch());
    this.watches.push(overrides, instances, observations);
    void this.consume(overrides, (e) => this.onOverrideEntry(e));
    void this.consume(instances, (e) => this.onInstanceEntry(e));
    void this.consume(observations, (e) => this.observations.onEntry(e));
    const revisions = this.options.revisions;
    if (revisions) await this.retry('follow policy revisions', () => revisions.follow(this.js!));
    const load = this.options.load;
    if (load) await this.retry('follow declared load', () => load.follow(this.js!));
    this.log.info({ fleet: this.options.name }, 'fleet: following overrides and instances');
    this.observations.followed();
  }

  private async consume(watch: QueuedIterator<KvEntry>, handle: (entry: KvEntry) => void): Promise<void> {
    try {
      for await (const entry of watch) handle(entry);
    } catch (err) {
      if (!this.stopped) this.log.warn({ err: (err as Error).message }, 'fleet: a watch ended; it starts again on reconnection');
    }
  }

  private onOverrideEntry(entry: KvEntry): void {
    if (entry.operation !== 'PUT') return;
    const record = decodeOverride(entry.value);
    if (record === null) {
      this.log.warn({ key: entry.key, revision: entry.revision }, 'fleet: an override record this popsteer cannot read; skipped');
      return;
    }
    this.applyOverride(entry.key, record, entry.revision);
  }

  private applyOverride(subject: string, record: OverrideRecord, revision: number): void {
    const known = this.overrides.get(subject);
    // A late echo of an older write never undoes a newer one; our own write comes back once more.
    if (known && known.revision >= revision) return;
    this.overrides.set(subject, { record, revision });
    this.log.info({ subject, action: record.action, reason: record.reason, author: record.author, via: record.via, revision,
      expires: record.expires === null ? null : new Date(record.expires).toISOString() }, 'fleet: override applied');
    this.options.health.applyFleetOverride(subject, overrideOf(record));
  }

  private onInstanceEntry(entry: KvEntry): void {
    if (entry.operation !== 'PUT') this.instances.delete(entry.key);
    else {
      const record = decodeInstance(entry.value);
      if (record !== null) this.instances.set(entry.key, record);
    }
    this.observations.setMembers([...this.instances.values()].map((r) => ({ instance: r.instance, pop: r.pop, seenAt: r.seenAt })));
  }

  private async heartbeat(): Promise<void> {
    this.observations.tick();
    const kv = this.instancesKv;
    if (kv === null || !this.connected || this.stopped) return;
    const record: InstanceRecord = {
      v: RECORD_VERSION, pop: this.options.pop, instance: this.instanceId, startedAt: this.startedAt, seenAt: Date.now(), version: this.options.version,
      ...(this.options.revisions ? { revision: this.options.revisions.report() } : {}),
    };
    try {
      // Keyed under the PoP, so a NATS user per PoP can be allowed to write its own heartbeats only (README, credentials).
      await kv.put(`${this.options.pop}.${this.instanceId}`, encodeRecord(record));
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'fleet: heartbeat not acknowledged');
    }
  }

  /** Retries a JetStream call until it works (a cluster electing its leaders answers "no responders" for a moment). */
  private async retry<T>(what: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (this.stopped) throw err;
        if (attempt === 1 || attempt % 20 === 0) this.log.warn({ err: (err as Error).message, attempt }, `fleet: cannot ${what} yet; retrying`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }
}

/** Binds a bucket, creating it with three replicas (one on a single NATS server). */
async function openBucket(js: ReturnType<NatsConnection['jetstream']>, bucket: string, limits: { history: number; ttl?: number }, log: Logger): Promise<KV> {
  try {
    return await js.views.kv(bucket, { ...limits, replicas: 3 });
  } catch (err) {
    const message = (err as Error).message;
    if (!/replica|insufficient resources|clustered/i.test(message)) throw err;
    log.warn({ bucket, err: message }, 'fleet: three replicas impossible here (a single NATS server?); the bucket is created with one');
    return js.views.kv(bucket, { ...limits, replicas: 1 });
  }
}
