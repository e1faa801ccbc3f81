// Versioned policy sets on an instance (README "Running a fleet",
// publishing): follows the `<name>-revisions` bucket and applies the newest
// revision meant for this PoP (a canary revision only on its canary PoPs
// until promoted). A revision is written under the state directory
// (revisions/<n>/, with the safe writer) and compiled as a reload; the
// snapshot in force serves until the new one is swapped in. One that does
// not compile here is reported in this instance's heartbeat and not tried
// again; the previous one keeps serving. The last applied revision is kept
// on disk (revisions/current.json naming it): an instance that starts and
// cannot reach the fleet serves it.

import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import { readFileSafely, writeFileSafely } from '../fsutil/safe-files.ts';
import type { Logger } from '../log/logger.ts';
import { decodePromotion, decodeRevision, isMeantFor, readConfigFiles, revisionHash, type RevisionRecord } from './revision-record.ts';

/** What an instance reports in its heartbeat (records.ts InstanceRecord.revision). */
export interface RevisionReport {
  /** The revision this instance serves; null: its own --config files. */
  served: number | null;
  hash: string | null;
  /** The newest revision meant for it that did not compile here, with why. */
  failed: { revision: number; errors: string[] } | null;
}

/** The revision kept on disk from the last run. */
export interface KeptRevision {
  revision: number;
  hash: string;
  dir: string;
}

type JetStream = ReturnType<NatsConnection['jetstream']>;

/** The bucket, made with three replicas (one on a single NATS server); every key is written once, so one version each. */
export async function openRevisionBucket(js: JetStream, fleetName: string): Promise<KV> {
  const bucket = `${fleetName}-revisions`;
  try {
    return await js.views.kv(bucket, { history: 1, replicas: 3 });
  } catch (err) {
    if (!/replica|insufficient resources|clustered/i.test((err as Error).message)) throw err;
    return js.views.kv(bucket, { history: 1, replicas: 1 });
  }
}

const revisionsDir = (stateDir: string): string => join(stateDir, 'revisions');
const currentFile = (stateDir: string): string => join(revisionsDir(stateDir), 'current.json');

/**
 * The revision applied last, if its files are all there and still hash to
 * what was applied; a damaged copy is reported and ignored (the instance
 * then starts from its --config files).
 */
export function readKeptRevision(stateDir: string, log: Logger): KeptRevision | null {
  try {
    const text = readFileSafely(currentFile(stateDir));
    if (text === null) return null;
    const { revision, hash } = JSON.parse(text.toString('utf8')) as { revision: number; hash: string };
    const dir = join(revisionsDir(stateDir), String(revision));
    if (!Number.isInteger(revision) || revisionHash(readConfigFiles(dir)) !== hash) throw new Error(`the files in ${dir} do not match hash ${hash}`);
    return { revision, hash, dir };
  } catch (err) {
    log.warn({ err: (err as Error).message, file: currentFile(stateDir) }, 'fleet: the kept policy revision is unreadable; starting from the --config files');
    return null;
  }
}

/** Writes a revision's files to revisions/<n>/ (replacing any earlier partial copy); returns the directory. */
function writeRevision(stateDir: string, revision: number, record: RevisionRecord): string {
  const dir = join(revisionsDir(stateDir), String(revision));
  rmSync(dir, { recursive: true, force: true });
  for (const f of record.files) writeFileSafely(join(dir, ...f.path.split('/')), [Buffer.from(f.data, 'base64')]);
  return dir;
}

/** Names the applied revision as the one to serve at the next start, and removes every other copy. */
function keepRevision(stateDir: string, revision: number, hash: string): void {
  writeFileSafely(currentFile(stateDir), [JSON.stringify({ revision, hash, at: new Date().toISOString() })]);
  for (const name of readdirSync(revisionsDir(stateDir))) {
    if (/^\d+$/.test(name) && name !== String(revision)) rmSync(join(revisionsDir(stateDir), name), { recursive: true, force: true });
  }
}

interface RevisionsOptions {
  pop: string;
  fleetName: string;
  stateDir: string;
  /** Compiles the directory as a reload and swaps it in when it compiles. */
  apply(dir: string, reason: string): Promise<{ ok: boolean; errors: string[] }>;
  /** The revision this instance started with (kept on disk), or null. */
  kept: KeptRevision | null;
  log: Logger;
}

export class Revisions {
  private readonly options: RevisionsOptions;
  private readonly log: Logger;
  private readonly sets = new Map<number, RevisionRecord>();
  private readonly promoted = new Set<number>();
  private served: { revision: number; hash: string } | null;
  private failed: { revision: number; errors: string[] } | null = null;
  private kv: KV | null = null;
  private watch: QueuedIterator<KvEntry> | null = null;
  /**
   * Set once the watch delivered the bucket's current values (up to its last
   * sequence number when the watch began): nothing is applied from a
   * half-read bucket, which could briefly serve an older revision.
   */
  private caughtUp = false;
  private catchUpTo = 0;
  private applying = false;
  private again = false;

  constructor(options: RevisionsOptions) {
    this.options = options;
    this.log = options.log.child({ module: 'fleet' });
    this.served = options.kept === null ? null : { revision: options.kept.revision, hash: options.kept.hash };
  }

  report(): RevisionReport {
    return { served: this.served?.revision ?? null, hash: this.served?.hash ?? null, failed: this.failed };
  }

  /** (Re)starts following the bucket: at start and at each reconnection (the fleet calls it). */
  async follow(js: JetStream): Promise<void> {
    this.kv ??= await openRevisionBucket(js, this.options.fleetName);
    this.watch?.stop();
    this.catchUpTo = (await this.kv.status()).streamInfo.state.last_seq;
    this.caughtUp = this.catchUpTo === 0;
    const watch = await this.kv.watch();
    this.watch = watch;
    if (this.caughtUp) this.schedule();
    void (async () => {
      try {
        for await (const entry of watch) this.onEntry(entry);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'fleet: the revisions watch ended; it starts again on reconnection');
      }
    })();
  }

  stop(): void {
    this.watch?.stop();
  }

  private onEntry(entry: KvEntry): void {
    if (entry.revision >= this.catchUpTo) this.caughtUp = true;
    if (entry.operation === 'PUT') this.remember(entry);
    if (this.caughtUp) this.schedule();
  }

  private remember(entry: KvEntry): void {
    if (entry.key.startsWith('set.')) {
      const record = decodeRevision(entry.value);
      if (record === null) this.log.warn({ key: entry.key, revision: entry.revision }, 'fleet: a policy revision this popsteer cannot read; skipped');
      else this.sets.set(entry.revision, record);
    } else if (entry.key.startsWith('promoted.')) {
      const revision = Number(entry.key.slice('promoted.'.length));
      if (Number.isInteger(revision) && decodePromotion(entry.value) !== null) this.promoted.add(revision);
    }
  }

  /** The newest revision meant for this PoP. */
  private newest(): number | null {
    let newest: number | null = null;
    for (const [revision, record] of this.sets) {
      if (isMeantFor(record, this.promoted.has(revision), this.options.pop) && (newest === null || revision > newest)) newest = revision;
    }
    return newest;
  }

  /** Applies one revision at a time; a change that arrives meanwhile is looked at once that one is done. */
  private schedule(): void {
    if (this.applying) {
      this.again = true;
      return;
    }
    const revision = this.newest();
    if (revision === null || revision === this.served?.revision || revision === this.failed?.revision) return;
    this.applying = true;
    void this.apply(revision, this.sets.get(revision)!).finally(() => {
      this.applying = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    });
  }

  private async apply(revision: number, record: RevisionRecord): Promise<void> {
    const { stateDir } = this.options;
    let outcome: { ok: boolean; errors: string[] };
    try {
      const dir = writeRevision(stateDir, revision, record);
      outcome = await this.options.apply(dir, `fleet revision ${revision}`);
      if (outcome.ok) keepRevision(stateDir, revision, record.hash);
    } catch (err) {
      outcome = { ok: false, errors: [(err as Error).message] };
    }
    if (!outcome.ok) {
      this.failed = { revision, errors: outcome.errors };
      this.log.error({ revision, errors: outcome.errors, serving: this.served?.revision ?? null }, 'fleet: policy revision refused here; the previous policy set keeps serving');
      return;
    }
    this.served = { revision, hash: record.hash };
    if (this.failed !== null && this.failed.revision < revision) this.failed = null;
    this.log.info({ revision, hash: record.hash, author: record.author, message: record.message, canary: record.canary, published: new Date(record.at).toISOString() }, 'fleet: policy revision applied');
  }
}
