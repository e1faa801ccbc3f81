// The main thread's side of the build thread (build-worker.ts): asks for
// builds, receives finished ones, and turns them back into the objects the
// server holds. Nothing here compiles: a build of the whole GeoLite2-City
// index or of every policy's class tries takes seconds, and the main thread
// must keep answering the admin API, fitness checks and health probes.
//
// What comes back is a structured clone, except the large tables (GeoIP
// index, nearest orders, the group trie, the policies' location → group
// map), which are on SharedArrayBuffer and shared, not copied: receiving a
// build costs this thread a few milliseconds. They are shared rather than
// transferred because the build thread keeps them: its compile cache reuses
// what did not change at the next reload.

import { policiesReceived } from './snapshot/policy-reuse.ts';
import { zonesReceived } from './snapshot/zone-reuse.ts';
import { Worker } from 'node:worker_threads';
import { ConfigError, ConfigErrors } from './config/errors.ts';
import type { Settings } from './config/settings.ts';
import type { LoadedGeo } from './geo-context.ts';
import { reopenGeoDatabase, type GeoDatabaseFacts } from './geo/database.ts';
import type { Logger } from './log/logger.ts';
import type { GeoContext, LoadResult } from './policy/load.ts';
import type { DnsSnapshot } from './snapshot/types.ts';
import type { CompiledPolicy } from './steering/types.ts';

export type BuildSettings = Pick<Settings, 'configDir' | 'geoDataDir' | 'geoipDatabase' | 'asnDatabase' | 'asnMaxChange' | 'pop' | 'hashRecord' | 'dnssecValidityDays'> & {
  cacheDir: string | null;
  /** Watch the GeoIP database and build each new version (serve: yes). */
  watchGeo: boolean;
};

/** A ConfigError as data (ConfigError.toJSON()), posted between threads. */
export type ConfigErrorData = { code: string; file: string; line: number; column: number; pointer: string; message: string };

export interface BuiltGeo {
  context: GeoContext;
  database: GeoDatabaseFacts;
}

/** Which watched source a replacement came from, for the log and the reload counters. */
export interface GeoChange {
  source: 'geoip' | 'asn';
  /** The files replaced (GeoIP: the one file; ASN: every file of the source). */
  files: string[];
  /** ASN: the share of networks that changed. */
  changedShare?: number;
}

export interface BuiltLoad {
  snapshot: DnsSnapshot | null;
  errors: ConfigErrorData[];
  files: string[];
  policies: CompiledPolicy[];
}

export type ToBuilder =
  | { type: 'start'; id: number; reason: string }
  /** configDir: compile that directory instead (a fleet revision); once it compiles, later builds start from it. */
  | { type: 'compile'; id: number; reason: string; configDir?: string }
  | { type: 'stop' };

export type FromBuilder =
  /** A build began (id null: one the build thread started itself, a GeoIP replacement). */
  | { type: 'build-started'; id: number | null; reason: string }
  | { type: 'built'; id: number; geo: BuiltGeo | null; load: BuiltLoad }
  | { type: 'failed'; id: number; errors: ConfigErrorData[]; message: string }
  /** A new GeoIP database was built with the configuration compiled against it (load.snapshot null: the compile failed). */
  | { type: 'geo-built'; geo: BuiltGeo; load: BuiltLoad; change: GeoChange }
  | { type: 'geo-rejected'; errors: ConfigErrorData[]; message: string; change: GeoChange };

function configErrorOf(data: ConfigErrorData): ConfigError {
  return new ConfigError(data.code, data.file, data.line > 0 ? { line: data.line, column: data.column } : null, data.pointer, data.message);
}

/** A compile's result as the main thread keeps it. */
function loadResultOf(load: BuiltLoad): LoadResult {
  return { snapshot: load.snapshot, errors: load.errors.map(configErrorOf), files: load.files, policies: load.policies };
}

function loadedGeoOf(built: BuiltGeo): LoadedGeo {
  return { context: built.context, database: reopenGeoDatabase(built.database), catalog: built.context.catalog, asn: built.context.asnSource ?? null };
}

interface BuildEvents {
  /** A build began on the build thread. */
  started(reason: string): void;
  /** A new GeoIP database or ASN source and the configuration compiled against it. */
  geoBuilt(geo: LoadedGeo, load: LoadResult, change: GeoChange): void;
  /** A new GeoIP database or ASN source could not be used; the old one keeps serving. */
  geoRejected(message: string, errors: ConfigError[], change: GeoChange): void;
}

export class Builder {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: FromBuilder) => void; reject: (e: Error) => void }>();
  private stopped = false;
  private readonly events: BuildEvents;

  constructor(settings: BuildSettings, events: BuildEvents, log: Logger) {
    this.events = events;
    this.worker = new Worker(new URL('./build-worker.ts', import.meta.url), { workerData: settings });
    // Waiting for a build keeps the process alive; an idle build thread does not.
    this.worker.unref();
    this.worker.on('message', (message: FromBuilder) => this.receive(message));
    this.worker.on('error', (err) => log.error({ err: err.message, stack: err.stack }, 'build thread failed'));
    this.worker.on('exit', (code) => {
      const failure = new Error(`the build thread exited (code ${code})`);
      for (const waiter of this.pending.values()) waiter.reject(failure);
      this.pending.clear();
      if (!this.stopped) log.error({ code }, 'build thread exited; reloads fail until the server restarts');
    });
  }

  /** Loads the geo data and compiles the configuration; throws ConfigErrors (exit 2 at start-up). */
  async start(): Promise<{ geo: LoadedGeo; load: LoadResult }> {
    const reply = await this.request({ type: 'start', id: 0, reason: 'start-up' });
    if (reply.type === 'failed') throw failureOf(reply);
    if (reply.type !== 'built' || !reply.geo) throw new Error(`unexpected reply from the build thread: ${reply.type}`);
    const load = loadResultOf(reply.load);
    if (!load.snapshot) throw new ConfigErrors(load.errors);
    return { geo: loadedGeoOf(reply.geo), load };
  }

  /**
   * Compiles the configuration directory again (or `configDir`, see
   * ToBuilder), against the geo data in force. A compile asked for while
   * another for the same directory is queued and not yet started joins it:
   * that one reads the files after both asked, so a burst of edits builds
   * once, not once per edit.
   */
  compile(reason: string, configDir?: string): Promise<LoadResult> {
    const queued = this.queuedCompile;
    if (queued && !queued.started && queued.configDir === configDir) return queued.result;
    const entry = { id: this.nextId, started: false, configDir, result: null as unknown as Promise<LoadResult> };
    entry.result = this.request({ type: 'compile', id: 0, reason, ...(configDir === undefined ? {} : { configDir }) }).then((reply) => {
      if (reply.type === 'failed') throw failureOf(reply);
      if (reply.type !== 'built') throw new Error(`unexpected reply from the build thread: ${reply.type}`);
      return loadResultOf(reply.load);
    }).finally(() => { if (this.queuedCompile === entry) this.queuedCompile = null; });
    this.queuedCompile = entry;
    return entry.result;
  }

  /** The last compile asked for, until it is answered; `started` once the build thread began it. */
  private queuedCompile: { id: number; started: boolean; configDir: string | undefined; result: Promise<LoadResult> } | null = null;

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.worker.postMessage({ type: 'stop' } satisfies ToBuilder);
    await this.worker.terminate();
  }

  private request(message: ToBuilder & { id: number }): Promise<FromBuilder> {
    if (this.stopped) return Promise.reject(new Error('the build thread is stopped'));
    const id = this.nextId++;
    this.worker.ref();
    return new Promise<FromBuilder>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    }).finally(() => { if (this.pending.size === 0) this.worker.unref(); });
  }

  /** The policies of the last load received, by compile id: the next load may refer to them (snapshot/policy-reuse.ts). */
  private received = new Map<string, CompiledPolicy>();

  /** The names and zones of the last snapshot received: the next may refer to them (snapshot/zone-reuse.ts). */
  private receivedZones: DnsSnapshot | null = null;

  /** Replaces the load's policy, name and zone references by those received before; in arrival order, as they were sent. */
  private resolveReferences(load: BuiltLoad): void {
    const policies = policiesReceived(load.policies, this.received);
    this.received = new Map(policies.map((p) => [p.compileId, p]));
    load.policies = policies;
    if (load.snapshot?.steering) load.snapshot = Object.freeze({ ...load.snapshot, steering: { ...load.snapshot.steering, policies } });
    if (load.snapshot) load.snapshot = this.receivedZones = zonesReceived(load.snapshot, this.receivedZones);
  }

  private receive(message: FromBuilder): void {
    if (message.type === 'built' || message.type === 'geo-built') this.resolveReferences(message.load);
    switch (message.type) {
      case 'build-started':
        if (this.queuedCompile?.id === message.id) this.queuedCompile.started = true;
        this.events.started(message.reason);
        return;
      case 'geo-built': {
        const load = loadResultOf(message.load);
        this.events.geoBuilt(loadedGeoOf(message.geo), load, message.change);
        return;
      }
      case 'geo-rejected':
        this.events.geoRejected(message.message, message.errors.map(configErrorOf), message.change);
        return;
      default: {
        const waiter = this.pending.get(message.id);
        if (!waiter) return;
        this.pending.delete(message.id);
        waiter.resolve(message);
      }
    }
  }
}

function failureOf(reply: { errors: ConfigErrorData[]; message: string }): Error {
  return reply.errors.length > 0 ? new ConfigErrors(reply.errors.map(configErrorOf)) : new Error(reply.message);
}
