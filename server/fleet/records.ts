// What the fleet stores, as JSON in NATS KV buckets, and how a stored value
// is read back. Every record is checked on the way in: a value written by a
// newer popsteer, or by anything else with write access, is skipped and
// logged, never applied half-understood.

import { OVERRIDE_ACTIONS, type Override, type OverrideAction } from '../health/overrides.ts';
import type { RevisionReport } from './revisions.ts';

/** Bumped with a reader for the old one. */
export const RECORD_VERSION = 1;

/**
 * One override as every instance applies it: the key is the PoP or endpoint
 * id; `expires` is absolute (ms since the epoch), so every instance lifts it
 * at the same moment whatever time it learnt of it. `undrain` is stored too,
 * so the bucket's history says who lifted an override and why.
 */
export interface OverrideRecord {
  v: number;
  action: OverrideAction;
  reason: string;
  author: string;
  /** ms since the epoch */
  at: number;
  expires: number | null;
  /** The PoP of the instance that accepted it. */
  via: string;
}

/** One instance's heartbeat, keyed by its instance id. */
export interface InstanceRecord {
  v: number;
  pop: string;
  instance: string;
  startedAt: number;
  /** ms since the epoch, at its last heartbeat */
  seenAt: number;
  version: string;
  /** The policy revision it serves and the newest that failed there (absent from instances without revisions). */
  revision?: RevisionReport;
}

export function encodeRecord(record: OverrideRecord | InstanceRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}

function parse(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) && (value as { v?: unknown }).v === RECORD_VERSION
      ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

const isTime = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

export function decodeOverride(bytes: Uint8Array): OverrideRecord | null {
  const r = parse(bytes);
  if (r === null) return null;
  const valid = (OVERRIDE_ACTIONS as readonly unknown[]).includes(r.action) && typeof r.reason === 'string' && typeof r.author === 'string'
    && isTime(r.at) && (r.expires === null || isTime(r.expires)) && typeof r.via === 'string';
  return valid ? r as unknown as OverrideRecord : null;
}

export function decodeInstance(bytes: Uint8Array): InstanceRecord | null {
  const r = parse(bytes);
  if (r === null) return null;
  const valid = typeof r.pop === 'string' && typeof r.instance === 'string' && isTime(r.startedAt) && isTime(r.seenAt) && typeof r.version === 'string'
    && (r.revision === undefined || isRevisionReport(r.revision));
  return valid ? r as unknown as InstanceRecord : null;
}

function isRevisionReport(x: unknown): x is RevisionReport {
  if (x === null || typeof x !== 'object') return false;
  const r = x as RevisionReport;
  const failed = r.failed === null || (typeof r.failed === 'object' && Number.isInteger(r.failed.revision) && Array.isArray(r.failed.errors));
  return (r.served === null || Number.isInteger(r.served)) && (r.hash === null || typeof r.hash === 'string') && failed;
}

/** The health service's form of a record: null when it lifts the override. */
export function overrideOf(record: OverrideRecord): Override | null {
  if (record.action === 'undrain') return null;
  return { kind: record.action, reason: record.reason, since: record.at, expires: record.expires, author: record.author };
}

/** KV keys are NATS subject tokens: PoP ids and instance ids are kept to these characters. */
export function isKeySafe(id: string): boolean {
  return /^[-/_=A-Za-z0-9]+(\.[-/_=A-Za-z0-9]+)*$/.test(id) && id.length <= 128;
}
