// A published policy set as the fleet stores it (README "Running a fleet",
// publishing): every file of a configuration directory with its content
// hash, author, message, time and canary list, as JSON in the
// `<name>-revisions` KV bucket under `set.<id>`. The revision number is the
// bucket's sequence number of that write, so numbers only grow. A promotion
// is a separate key, `promoted.<revision>`. Every record is checked on the
// way in (paths, hash, fields): a record this popsteer cannot read is
// skipped, never half-applied.

import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bumped with a reader for the old one. */
const REVISION_VERSION = 1;

interface RevisionFile {
  /** Relative to the configuration directory, '/'-separated. */
  path: string;
  /** The bytes, base64. */
  data: string;
}

export interface RevisionRecord {
  v: number;
  /** sha256 of the files (revisionHash). */
  hash: string;
  author: string;
  message: string;
  /** ms since the epoch */
  at: number;
  /** PoPs whose instances apply it before a promotion; empty: every instance. */
  canary: string[];
  /** The revision whose content this one publishes again (popsteer rollback), else null. */
  rollbackOf: number | null;
  files: RevisionFile[];
}

interface PromotionRecord {
  v: number;
  author: string;
  at: number;
}

/**
 * Files a revision leaves out: popsteer.yaml holds one instance's own
 * settings (its PoP, addresses, state file), not the fleet's policy set;
 * dot-files are editors' and tools' leftovers.
 */
const isLeftOut = (relativePath: string): boolean => relativePath === 'popsteer.yaml' || relativePath.split('/').some((p) => p.startsWith('.'));

/**
 * A private key never travels in a revision: the zone's signatures do
 * (dnssec/presigned.ts), so a PoP server needs no key. Recognised by its
 * PEM armour, wherever it lies in the directory.
 */
const isPrivateKey = (bytes: Buffer): boolean => /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(bytes.toString('latin1'));

/** A path segment a revision may carry: no "..", no separators, nothing hidden. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

export function isSafeRevisionPath(path: string): boolean {
  return path.length > 0 && path.length <= 512 && path.split('/').every((s) => SEGMENT.test(s) && s !== '..');
}

/** Every regular file under `dir` (symbolic links, special files and private keys left out), sorted by path. */
export function readConfigFiles(dir: string): RevisionFile[] {
  const files: RevisionFile[] = [];
  const walk = (relative: string): void => {
    for (const name of readdirSync(join(dir, relative)).sort()) {
      const path = relative === '' ? name : `${relative}/${name}`;
      if (isLeftOut(path)) continue;
      const stats = lstatSync(join(dir, path));
      if (stats.isDirectory()) walk(path);
      else if (stats.isFile()) {
        const bytes = readFileSync(join(dir, path));
        if (!isPrivateKey(bytes)) files.push({ path, data: bytes.toString('base64') });
      }
    }
  };
  walk('');
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** sha256 over every path and content, in path order: equal sets have equal hashes wherever they were read. */
export function revisionHash(files: readonly RevisionFile[]): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) hash.update(f.path).update('\0').update(Buffer.from(f.data, 'base64')).update('\0');
  return hash.digest('hex');
}

export function newRevision(files: RevisionFile[], fields: { author: string; message: string; canary: string[]; rollbackOf: number | null; at: number }): RevisionRecord {
  return { v: REVISION_VERSION, hash: revisionHash(files), ...fields, files };
}

/** A fresh key for a new revision: its number is only known once the bucket has stored it. */
export const newRevisionKey = (): string => `set.${randomBytes(8).toString('hex')}`;
export const promotionKey = (revision: number): string => `promoted.${revision}`;

export function encodeRevision(record: RevisionRecord | PromotionRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}

export function newPromotion(author: string, at: number): PromotionRecord {
  return { v: REVISION_VERSION, author, at };
}

function parse(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) && (value as { v?: unknown }).v === REVISION_VERSION
      ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

const isTime = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
const isStringList = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
const isFile = (f: unknown): f is RevisionFile => f !== null && typeof f === 'object'
  && typeof (f as RevisionFile).path === 'string' && isSafeRevisionPath((f as RevisionFile).path) && typeof (f as RevisionFile).data === 'string';

/** The record, or null when it is not one this popsteer can apply (fields, paths, or a hash that does not match its files). */
export function decodeRevision(bytes: Uint8Array): RevisionRecord | null {
  const r = parse(bytes);
  if (r === null) return null;
  const valid = typeof r.hash === 'string' && typeof r.author === 'string' && typeof r.message === 'string' && isTime(r.at)
    && isStringList(r.canary) && (r.rollbackOf === null || (Number.isInteger(r.rollbackOf) && (r.rollbackOf as number) > 0))
    && Array.isArray(r.files) && r.files.every(isFile) && new Set((r.files as RevisionFile[]).map((f) => f.path)).size === r.files.length;
  if (!valid) return null;
  const record = r as unknown as RevisionRecord;
  return revisionHash(record.files) === record.hash ? record : null;
}

export function decodePromotion(bytes: Uint8Array): PromotionRecord | null {
  const r = parse(bytes);
  return r !== null && typeof r.author === 'string' && isTime(r.at) ? r as unknown as PromotionRecord : null;
}

/** Whether an instance of PoP `pop` applies this revision now. */
export function isMeantFor(record: RevisionRecord, promoted: boolean, pop: string): boolean {
  return record.canary.length === 0 || promoted || record.canary.includes(pop);
}
