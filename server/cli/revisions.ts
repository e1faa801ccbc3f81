// popsteer publish | history | rollback | promote: versioned policy sets in
// the fleet's `<name>-revisions` bucket (server/fleet/revision-record.ts),
// written straight to NATS with the fleet settings serve uses (--fleet,
// --fleet-name, --fleet-creds). publish validates the set exactly as serve
// would (the same loader and compiler, against --geo-data) before storing
// it: a set that serve would refuse never reaches the fleet.

import { hostname, userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { connect, type KV, type NatsConnection } from 'nats';
import type { Settings } from '../config/settings.ts';
import { readCredentials, tlsOptions } from '../fleet/credentials.ts';
import {
  decodePromotion, decodeRevision, encodeRevision, newPromotion, newRevision, newRevisionKey, promotionKey, readConfigFiles, type RevisionRecord,
} from '../fleet/revision-record.ts';
import { openRevisionBucket } from '../fleet/revisions.ts';
import { readYamlFile } from '../config/yaml-source.ts';
import { ALG_ECDSAP256SHA256, KeyError, zoneFileStem } from '../dnssec/keys.ts';
import { encodeSignatureSet, keysDirInConfig } from '../dnssec/presigned.ts';
import { loadKeySet } from '../dnssec/rollover.ts';
import { loadSnapshot } from '../policy/load.ts';
import { zoneFilesIn } from '../policy/zones.ts';
import { loadGeoForCommand, resolveCommand } from './common.ts';

export const REVISIONS_HELP = `Usage:
  popsteer publish --config DIR [--message TEXT] [--canary lhr,fra] [--author NAME] --fleet nats://… [--fleet-creds FILE]
  popsteer history [--json] --fleet nats://…
  popsteer rollback REV [--message TEXT] --fleet nats://…
  popsteer promote REV --fleet nats://…

publish validates the policy set in DIR as "serve" would (against --geo-data)
and stores every file of it (but popsteer.yaml, an instance's own settings,
and private keys) as the fleet's newest revision. A signed zone is signed
here, with the keys in its keys directory, and its signatures travel in the
revision (<keys dir>/<zone>.signatures): instances without the private key
serve them, and need a new publish before they expire (14 days); every instance applies it (with --canary,
only the instances of those PoPs until "promote REV"). history lists the
revisions; rollback REV publishes REV's files again as the newest revision.
The fleet options (--fleet, --fleet-name, --fleet-creds,
--fleet-insecure-loopback) are serve's, from flags, POPSTEER_* or popsteer.yaml.

Exit status: 0 done, 1 the fleet unreachable or no such revision,
2 bad usage or a policy set serve would refuse (its errors on standard error).`;

const CONNECT_TIMEOUT_MS = 5000;
/** NATS refuses larger messages by default (max_payload 1 MB); the record is JSON with base64 content. */
const MAX_RECORD_BYTES = 1024 * 1024 - 4096;

const EXTRA = { message: { type: 'string' }, canary: { type: 'string' }, author: { type: 'string' }, json: { type: 'boolean' } } as const;

interface Revision { revision: number; record: RevisionRecord; promoted: boolean }

export async function runRevisionsCommand(command: 'publish' | 'history' | 'rollback' | 'promote', args: string[]): Promise<number> {
  const resolved = resolveCommand(args, EXTRA);
  if (typeof resolved === 'number') return resolved;
  const { settings, extra, positionals } = resolved;
  if (settings.fleetServers.length === 0) return usage(command, 'name the fleet: --fleet nats://host:port (or POPSTEER_FLEET, or fleet.servers in popsteer.yaml)');
  const revision = Number(positionals[0]);
  if ((command === 'rollback' || command === 'promote') && !(Number.isInteger(revision) && revision > 0)) return usage(command, 'give the revision number (popsteer history lists them)');
  let record: RevisionRecord | null = null;
  if (command === 'publish') {
    const built = buildRevision(settings, extra);
    if (typeof built === 'number') return built;
    record = built;
  }
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: settings.fleetServers, authenticator: settings.fleetCreds === null ? undefined : readCredentials(settings.fleetCreds), tls: tlsOptions(settings.fleetCa), timeout: CONNECT_TIMEOUT_MS, maxReconnectAttempts: 0 });
  } catch (err) {
    process.stderr.write(`popsteer ${command}: cannot reach the fleet at ${settings.fleetServers.join(',')}: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    const kv = await openRevisionBucket(nc.jetstream({ timeout: CONNECT_TIMEOUT_MS }), settings.fleetName);
    if (command === 'publish') return await put(kv, record!, 'published');
    if (command === 'history') return history(await listRevisions(kv), extra.json === true);
    return command === 'rollback' ? await rollback(kv, revision, extra) : await promote(kv, revision, authorOf(extra));
  } catch (err) {
    process.stderr.write(`popsteer ${command}: the fleet did not answer: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await nc.close();
  }
}

function usage(command: string, message: string): number {
  process.stderr.write(`popsteer ${command}: ${message}\n\n${REVISIONS_HELP}\n`);
  return 2;
}

const authorOf = (extra: Record<string, unknown>): string => (typeof extra.author === 'string' && extra.author.trim() !== '' ? extra.author.trim() : `${userInfo().username}@${hostname()}`);

/** The canary PoPs from --canary, or a usage error's exit code. */
function canaryOf(extra: Record<string, unknown>, command: string): string[] | number {
  if (typeof extra.canary !== 'string') return [];
  const pops = extra.canary.split(',').map((p) => p.trim()).filter((p) => p !== '');
  return pops.length === 0 ? usage(command, '--canary needs PoP ids, comma-separated (lhr,fra)') : pops;
}

/** Validates the configuration directory as serve would and makes the record; exit 2 with serve's errors when it would be refused. */
function buildRevision(settings: Settings, extra: Record<string, unknown>): RevisionRecord | number {
  const canary = canaryOf(extra, 'publish');
  if (typeof canary === 'number') return canary;
  const geo = loadGeoForCommand(settings);
  if (typeof geo === 'number') return 2;
  const result = loadSnapshot(settings.configDir, geo.context, settings.pop, { hashRecord: settings.hashRecord });
  if (!result.snapshot) {
    for (const e of result.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
    process.stderr.write(`popsteer publish: not published: ${result.errors.length} error(s) in ${settings.configDir}; serve would refuse this set\n`);
    return 2;
  }
  const unknown = canary.filter((pop) => !geo.catalog.ids.includes(pop));
  if (unknown.length > 0) return usage('publish', `--canary: no PoP ${unknown.join(', ')} in the geo data (${geo.catalog.ids.join(', ')})`);
  const signatures = signatureFiles(settings.configDir, result.snapshot);
  if (typeof signatures === 'number') return signatures;
  const made = new Set(signatures.map((f) => f.path));
  const files = [...readConfigFiles(settings.configDir).filter((f) => !made.has(f.path)), ...signatures].sort((a, b) => (a.path < b.path ? -1 : 1));
  const message = typeof extra.message === 'string' ? extra.message : '';
  return newRevision(files, { author: authorOf(extra), message, canary, rollbackOf: null, at: Date.now() });
}

/**
 * Per signed zone, the file of the signatures this compile made
 * (dnssec/presigned.ts), in the zone's keys directory; exit 2 when that
 * directory lies outside the configuration directory (a revision could not
 * carry the file where instances look for it).
 */
function signatureFiles(configDir: string, snapshot: NonNullable<ReturnType<typeof loadSnapshot>['snapshot']>): Array<{ path: string; data: string }> | number {
  if (snapshot.dnssec === undefined) return [];
  const files: Array<{ path: string; data: string }> = [];
  for (const file of zoneFilesIn(configDir)) {
    const doc = readYamlFile(file).data as { zone?: string; dnssec?: { keys?: string; algorithm?: number } };
    if (doc.dnssec === undefined || typeof doc.zone !== 'string' || typeof doc.dnssec.keys !== 'string') continue;
    const keysDir = resolve(dirname(dirname(file)), doc.dnssec.keys);
    const inConfig = keysDirInConfig(resolve(configDir), keysDir);
    if (inConfig === null) return usage('publish', `zone ${doc.zone} keeps its keys in ${keysDir}, outside ${configDir}: its signatures travel in the revision in that directory, so set dnssec.keys to a directory inside the config directory (the private key stays out of the revision)`);
    try {
      const set = encodeSignatureSet(doc.zone, loadKeySet(keysDir, doc.zone, doc.dnssec.algorithm ?? ALG_ECDSAP256SHA256), snapshot.dnssec.signatures);
      files.push({ path: `${inConfig}/${zoneFileStem(doc.zone)}.signatures`, data: set.bytes.toString('base64') });
      process.stdout.write(`signed ${doc.zone}: ${set.count} signatures, valid until ${new Date(set.expiration).toISOString()}, ${set.bytes.length} bytes compressed\n`);
    } catch (err) {
      if (!(err instanceof KeyError)) throw err;
      process.stderr.write(`popsteer publish: zone ${doc.zone}: ${err.message}\n`);
      return 2;
    }
  }
  return files;
}

async function put(kv: KV, record: RevisionRecord, verb: string): Promise<number> {
  const bytes = encodeRevision(record);
  if (bytes.length > MAX_RECORD_BYTES) {
    process.stderr.write(`popsteer: the policy set is ${bytes.length} bytes as a revision, over the ${MAX_RECORD_BYTES} NATS takes in one message; move large files (samples, databases) out of the config directory\n`);
    return 2;
  }
  const revision = await kv.put(newRevisionKey(), bytes);
  const scope = record.canary.length > 0 ? `canary ${record.canary.join(',')} until "popsteer promote ${revision}"` : 'every instance';
  process.stdout.write(`${verb} revision ${revision}: ${record.files.length} file(s), hash ${record.hash.slice(0, 12)}, for ${scope}\n`);
  return 0;
}

async function listRevisions(kv: KV): Promise<Revision[]> {
  const sets: Array<{ revision: number; record: RevisionRecord }> = [];
  const promoted = new Set<number>();
  // Every key first: reading values while the key listing runs cuts the listing short.
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  for (const key of keys) {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') continue;
    if (key.startsWith('set.')) {
      const record = decodeRevision(entry.value);
      if (record !== null) sets.push({ revision: entry.revision, record });
    } else if (key.startsWith('promoted.') && decodePromotion(entry.value) !== null) promoted.add(Number(key.slice('promoted.'.length)));
  }
  return sets.map((s) => ({ ...s, promoted: promoted.has(s.revision) })).sort((a, b) => a.revision - b.revision);
}

function history(revisions: Revision[], json: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify(revisions.map(({ revision, record, promoted }) => ({
      revision, at: new Date(record.at).toISOString(), author: record.author, message: record.message, hash: record.hash,
      canary: record.canary, promoted, rollback_of: record.rollbackOf, files: record.files.map((f) => f.path),
    })), null, 2)}\n`);
    return 0;
  }
  const lines = ['rev   time                      author                hash          scope                 message'];
  for (const { revision, record, promoted } of revisions) {
    const scope = record.canary.length === 0 ? 'all' : `canary ${record.canary.join(',')}${promoted ? ' promoted' : ''}`;
    const message = record.rollbackOf === null ? record.message : `rollback to ${record.rollbackOf}${record.message === '' ? '' : `: ${record.message}`}`;
    lines.push(`${String(revision).padEnd(5)} ${new Date(record.at).toISOString().padEnd(25)} ${record.author.padEnd(21)} ${record.hash.slice(0, 12).padEnd(13)} ${scope.padEnd(21)} ${message}`);
  }
  if (revisions.length === 0) lines.push('(no revisions published)');
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

/**
 * Publishes REV's files again as the newest revision (for every instance)
 * rather than marking REV current: "the newest revision meant for me" stays
 * the one rule every instance follows, and the history says who rolled back.
 */
async function rollback(kv: KV, revision: number, extra: Record<string, unknown>): Promise<number> {
  const target = (await listRevisions(kv)).find((r) => r.revision === revision);
  if (!target) return missing('rollback', revision);
  const message = typeof extra.message === 'string' ? extra.message : '';
  const record = newRevision(target.record.files, { author: authorOf(extra), message, canary: [], rollbackOf: revision, at: Date.now() });
  return put(kv, record, `rolled back to ${revision} as`);
}

async function promote(kv: KV, revision: number, author: string): Promise<number> {
  const target = (await listRevisions(kv)).find((r) => r.revision === revision);
  if (!target) return missing('promote', revision);
  if (target.record.canary.length === 0 || target.promoted) {
    process.stdout.write(`revision ${revision} already applies to every instance\n`);
    return 0;
  }
  await kv.put(promotionKey(revision), encodeRevision(newPromotion(author, Date.now())));
  process.stdout.write(`promoted revision ${revision}: every instance applies it unless a newer one is meant for it\n`);
  return 0;
}

function missing(command: string, revision: number): number {
  process.stderr.write(`popsteer ${command}: no revision ${revision} in the fleet (popsteer history lists them)\n`);
  return 1;
}
