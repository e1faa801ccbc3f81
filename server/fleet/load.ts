// Declared load, fleet-wide (README "Running a fleet"): `POST /v1/load` on
// any instance is written to the `<name>-load` KV bucket, keyed by PoP, with
// who declared it, when, and through which instance; every instance watches
// the bucket and feeds each record to its capacity steps (main.ts sets the
// PoP's declared-load signal), its own writes included. The admin's 200
// comes only once JetStream acknowledged the write. Losing NATS keeps the
// last loads applied; on reconnection the watch delivers every current value
// again.

import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import type { Logger } from '../log/logger.ts';
import { isKeySafe, RECORD_VERSION } from './records.ts';

type JetStream = ReturnType<NatsConnection['jetstream']>;

/** One PoP's declared load as stored: 1 is at capacity. */
interface LoadRecord {
  v: number;
  load: number;
  author: string;
  /** ms since the epoch */
  at: number;
  /** The PoP of the instance that accepted it. */
  via: string;
}

/** The highest load POST /v1/load accepts; a stored value above it is not applied. */
const MAX_LOAD = 100;
/** Versions kept per PoP: who declared what, and when. */
const LOAD_HISTORY = 16;
const RETRY_MS = 250;
const DEFAULT_WRITE_DEADLINE_MS = 6000;

function encodeLoad(record: LoadRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}

/** A stored record, or null for anything this popsteer cannot apply (another version, a load out of range). */
function decodeLoad(bytes: Uint8Array): LoadRecord | null {
  try {
    const r = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LoadRecord> | null;
    if (r === null || typeof r !== 'object' || r.v !== RECORD_VERSION) return null;
    const valid = typeof r.load === 'number' && Number.isFinite(r.load) && r.load >= 0 && r.load <= MAX_LOAD
      && typeof r.author === 'string' && typeof r.at === 'number' && Number.isFinite(r.at) && typeof r.via === 'string';
    return valid ? r as LoadRecord : null;
  } catch {
    return null;
  }
}

interface FleetLoadOptions {
  fleetName: string;
  pop: string;
  /** Sets a PoP's declared load for the capacity steps; false for a PoP unknown here. */
  apply(pop: string, load: number): boolean;
  log: Logger;
  /** How long a declaration keeps trying (reconnecting, a new stream leader). */
  writeDeadlineMs?: number;
}

/** The fleet could not take a declared load now; nothing was written, or it may or may not apply (said in the message). */
export class LoadUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadUnavailableError';
  }
}

export class FleetLoad {
  private readonly options: FleetLoadOptions;
  private readonly log: Logger;
  private kv: KV | null = null;
  private watch: QueuedIterator<KvEntry> | null = null;
  private stopped = false;
  /** The newest record per PoP and its revision in the bucket. */
  private readonly loads = new Map<string, { record: LoadRecord; revision: number }>();

  constructor(options: FleetLoadOptions) {
    this.options = options;
    this.log = options.log.child({ module: 'fleet' });
  }

  /** Opens the bucket (R3, R1 on a single server) and (re)starts the watch; called by the fleet on every (re)connection. */
  async follow(js: JetStream): Promise<void> {
    if (this.stopped) return;
    this.kv ??= await openLoadBucket(js, `${this.options.fleetName}-load`);
    this.watch?.stop();
    const watch = this.watch = await this.kv.watch();
    void this.consume(watch);
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
  }

  /** Every PoP's declared load as the fleet last said it, by PoP. */
  status(): Array<{ pop: string } & LoadRecord> {
    return [...this.loads].map(([pop, r]) => ({ pop, ...r.record })).sort((a, b) => a.pop.localeCompare(b.pop));
  }

  /**
   * Writes a PoP's declared load for the whole fleet; resolves once JetStream
   * acknowledged it (it then applies here at once, and everywhere through the
   * watch). Throws LoadUnavailableError when the fleet cannot take it in time.
   */
  async declare(pop: string, load: number, author: string): Promise<void> {
    if (!isKeySafe(pop)) throw new LoadUnavailableError(`"${pop}" cannot be a fleet key`);
    const record: LoadRecord = { v: RECORD_VERSION, load, author, at: Date.now(), via: this.options.pop };
    const deadlineMs = this.options.writeDeadlineMs ?? DEFAULT_WRITE_DEADLINE_MS;
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      let failure = 'not connected to the fleet yet';
      if (this.kv !== null) {
        try {
          const revision = await this.kv.put(pop, encodeLoad(record));
          this.applyRecord(pop, record, revision);
          return;
        } catch (err) {
          failure = (err as Error).message;
        }
      }
      if (Date.now() + RETRY_MS > deadline || this.stopped) {
        throw new LoadUnavailableError(`the fleet did not acknowledge the load within ${deadlineMs} ms (${failure}); it may or may not apply: check GET /v1/fleet`);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  private async consume(watch: QueuedIterator<KvEntry>): Promise<void> {
    try {
      for await (const entry of watch) this.onEntry(entry);
    } catch (err) {
      if (!this.stopped) this.log.warn({ err: (err as Error).message }, 'fleet: the load watch ended; it starts again on reconnection');
    }
  }

  private onEntry(entry: KvEntry): void {
    if (entry.operation !== 'PUT') return;
    const record = decodeLoad(entry.value);
    if (record === null) {
      this.log.warn({ key: entry.key, revision: entry.revision }, 'fleet: a load record this popsteer cannot read; skipped');
      return;
    }
    this.applyRecord(entry.key, record, entry.revision);
  }

  private applyRecord(pop: string, record: LoadRecord, revision: number): void {
    const known = this.loads.get(pop);
    // Our own write comes back through the watch; an older one never undoes a newer one.
    if (known && known.revision >= revision) return;
    this.loads.set(pop, { record, revision });
    if (!this.options.apply(pop, record.load)) {
      this.log.warn({ pop, load: record.load, author: record.author, via: record.via }, 'fleet: declared load for a PoP this instance does not know; not applied');
      return;
    }
    this.log.info({ pop, load: record.load, author: record.author, via: record.via, revision, at: new Date(record.at).toISOString() }, 'fleet: declared load applied');
  }
}

async function openLoadBucket(js: JetStream, bucket: string): Promise<KV> {
  try {
    return await js.views.kv(bucket, { history: LOAD_HISTORY, replicas: 3 });
  } catch (err) {
    if (!/replica|insufficient resources|clustered/i.test((err as Error).message)) throw err;
    return js.views.kv(bucket, { history: LOAD_HISTORY, replicas: 1 });
  }
}
