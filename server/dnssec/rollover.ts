// CSK rollover by pre-publication (RFC 6781 §4.1.1, RFC 7583 terms), as
// three commands and a state record beside the keys:
//
//   start     a new CSK is made and published in DNSKEY; the old key still
//             signs the zone. CDS/CDNSKEY list both keys, so the parent
//             may carry both DS records from now on.
//   activate  the new key signs the zone; the old one stays published (and
//             still signs the DNSKEY set, for resolvers that only have the
//             old DS). Refused until the DNSKEY TTL has passed since start:
//             before that, caches may hold a DNSKEY set without the new key
//             and could not validate its signatures. CDS/CDNSKEY: new only.
//   finish    the old key leaves DNSKEY. Refused until the zone's largest TTL
//             has passed since activate (cached answers signed by the old
//             key must be gone), and until the operator confirms with the
//             new key's tag that the parent's DS set holds the new DS: this
//             program cannot see the parent (registrars differ), so it says
//             what to check (dig DS at the parent's servers) and asks.
//
// The DNSKEY, CDS and CDNSKEY sets are signed by every published key, all
// other data by the active key only. The state record <zone>.rollover.json
// names the key files; without one the zone's key is <zone>.csk.pem. After
// finish the record stays (phase "done") and names the key in use; the old
// key file is left on disk, no longer read.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileSafely, readFileSafely } from '../fsutil/safe-files.ts';
import { generateKey, KeyError, keyFileOf, loadKeyFile, zoneFileStem, type ZoneKey } from './keys.ts';
import { loadPublishedKeySet } from './presigned.ts';

type RolloverPhase = 'published' | 'active' | 'done';

export interface RolloverState {
  phase: RolloverPhase;
  /** Key file names inside the keys directory. */
  oldKey: string;
  newKey: string;
  /** ms since the epoch. */
  startedAt: number;
  activatedAt: number | null;
  finishedAt: number | null;
  /** The DNSKEY TTL when the rollover started (s): activate waits this long after start. */
  dnskeyTtl: number;
  /** The zone's largest TTL when the rollover started (s): finish waits this long after activate. */
  maxTtl: number;
}

/** The keys a zone is signed with at this point of its rollover (or outside one). */
export interface KeySet {
  /** Signs every RRset. */
  active: ZoneKey;
  /** In the DNSKEY set; each also signs DNSKEY, CDS and CDNSKEY. */
  published: ZoneKey[];
  /** Listed in CDS/CDNSKEY: the DS set the parent should have. */
  parentKeys: ZoneKey[];
}

/** A step refused: the message says why and what to do (exit 2). */
export class RolloverRefused extends Error {}

function stateFileOf(keysDir: string, zone: string): string {
  return join(keysDir, `${zoneFileStem(zone)}.rollover.json`);
}

/** The state record of a zone's rollover, or null when it never had one. */
export function readRolloverState(keysDir: string, zone: string): RolloverState | null {
  const file = stateFileOf(keysDir, zone);
  const bytes = readFileSafely(file);
  if (bytes === null) return null;
  let state: RolloverState;
  try {
    state = JSON.parse(bytes.toString('utf8')) as RolloverState;
  } catch (e) {
    throw new KeyError(`${file} is not valid JSON (${(e as Error).message}): restore it from a backup; it names the key files of the rollover`);
  }
  if (!['published', 'active', 'done'].includes(state.phase) || typeof state.oldKey !== 'string' || typeof state.newKey !== 'string') {
    throw new KeyError(`${file} does not hold a rollover state (phase, oldKey, newKey): restore it from a backup`);
  }
  return state;
}

function writeRolloverState(keysDir: string, zone: string, state: RolloverState): void {
  writeFileSafely(stateFileOf(keysDir, zone), [`${JSON.stringify(state, null, 2)}\n`], 0o600);
}

/**
 * The keys the zone signs with now; throws KeyError (saying what to do) when
 * one is missing or unsafe. Without any private key but with the signature
 * file a published revision brought (presigned.ts): the public keys, with
 * those signatures to serve.
 */
export function loadKeySet(keysDir: string, zone: string, algorithm: number | null): KeySet {
  const state = readRolloverState(keysDir, zone);
  const published = loadPublishedKeySet(keysDir, zone, algorithm, state === null ? [] : [join(keysDir, state.newKey), join(keysDir, state.oldKey)]);
  if (published !== null) return published;
  if (state === null) {
    const key = loadKeyFile(keyFileOf(keysDir, zone), zone, algorithm);
    return { active: key, published: [key], parentKeys: [key] };
  }
  const newKey = loadKeyFile(join(keysDir, state.newKey), zone, algorithm);
  if (state.phase === 'done') return { active: newKey, published: [newKey], parentKeys: [newKey] };
  const oldKey = loadKeyFile(join(keysDir, state.oldKey), zone, algorithm);
  return state.phase === 'published'
    ? { active: oldKey, published: [oldKey, newKey], parentKeys: [oldKey, newKey] }
    : { active: newKey, published: [oldKey, newKey], parentKeys: [newKey] };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The file of the key in use outside a rollover. */
function currentKeyFile(state: RolloverState | null, zone: string): string {
  return state === null ? `${zoneFileStem(zone)}.csk.pem` : state.newKey;
}

/** `start` from a zone's state: the record to write once the new key (file `newKey`) exists. */
export function startState(state: RolloverState | null, zone: string, newKey: string, now: number, ttls: { dnskeyTtl: number; maxTtl: number }): RolloverState {
  if (state !== null && state.phase !== 'done') {
    throw new RolloverRefused(`a rollover of ${zone} is already under way (phase "${state.phase}", new key ${state.newKey}): continue it with "popsteer dnssec rollover ${state.phase === 'published' ? 'activate' : 'finish'}"`);
  }
  return { phase: 'published', oldKey: currentKeyFile(state, zone), newKey, startedAt: now, activatedAt: null, finishedAt: null, ...ttls };
}

/** `activate`: refused before the DNSKEY TTL has passed since start, unless forced. */
export function activateState(state: RolloverState | null, zone: string, now: number, force: boolean): RolloverState {
  if (state === null || state.phase === 'done') throw new RolloverRefused(`no rollover of ${zone} is under way: begin one with "popsteer dnssec rollover start"`);
  if (state.phase === 'active') throw new RolloverRefused(`the new key of ${zone} already signs (activated ${iso(state.activatedAt!)}): the next step is "popsteer dnssec rollover finish"`);
  const ready = state.startedAt + state.dnskeyTtl * 1000;
  if (now < ready && !force) {
    throw new RolloverRefused(`the new DNSKEY of ${zone} was published at ${iso(state.startedAt)}; resolvers may cache the DNSKEY set without it until ${iso(ready)} (its TTL, ${state.dnskeyTtl} s). Reload every instance, then run activate again after ${iso(ready)}, or pass --force if no resolver can have the old set cached`);
  }
  return { ...state, phase: 'active', activatedAt: now };
}

/** `finish`: refused before the zone's largest TTL has passed since activate, and without the parent's new DS confirmed by its key tag. */
export function finishState(state: RolloverState | null, zone: string, now: number, options: { force: boolean; parentDs: number | null; oldTag: number; newTag: number; newDs: string }): RolloverState {
  if (state === null || state.phase === 'done') throw new RolloverRefused(`no rollover of ${zone} is under way: begin one with "popsteer dnssec rollover start"`);
  if (state.phase === 'published') throw new RolloverRefused(`the new key of ${zone} does not sign yet: run "popsteer dnssec rollover activate" first`);
  const ready = state.activatedAt! + state.maxTtl * 1000;
  if (now < ready && !options.force) {
    throw new RolloverRefused(`the new key of ${zone} signs since ${iso(state.activatedAt!)}; answers signed by the old key may stay cached until ${iso(ready)} (the zone's largest TTL, ${state.maxTtl} s). Run finish again after ${iso(ready)}, or pass --force`);
  }
  if (options.parentDs !== options.newTag) {
    throw new RolloverRefused(`finish removes the old DNSKEY: if the parent still has only the old DS, ${zone} turns bogus. Publish this DS at the parent and remove the old one (key tag ${options.oldTag}):\n  ${options.newDs}\ncheck with "dig +norec DS ${zone.replace(/\.$/, '')} @<a parent server>" that only key tag ${options.newTag} is listed, wait the DS record's TTL, then run finish with --parent-ds ${options.newTag}`);
  }
  return { ...state, phase: 'done', finishedAt: now };
}

/** Runs `start`: makes the next key (0600, never over an existing file) and records the published phase. Returns the state. */
export function startRollover(keysDir: string, zone: string, algorithm: number, now: number, ttls: { dnskeyTtl: number; maxTtl: number }): RolloverState {
  const state = readRolloverState(keysDir, zone);
  startState(state, zone, 'checked', now, ttls);
  const current = loadKeyFile(join(keysDir, currentKeyFile(state, zone)), zone, algorithm);
  const file = generateKey(keysDir, zone, algorithm, (tag) => join(keysDir, `${zoneFileStem(zone)}.csk.${tag}.pem`), current.keyTag);
  const next = startState(state, zone, file.slice(keysDir.length + 1), now, ttls);
  writeRolloverState(keysDir, zone, next);
  return next;
}

/** Runs `activate` or `finish` on the recorded state; returns the new state. */
export function advanceRollover(keysDir: string, zone: string, step: (state: RolloverState | null) => RolloverState): RolloverState {
  const next = step(readRolloverState(keysDir, zone));
  if (!existsSync(join(keysDir, next.newKey))) throw new KeyError(`${join(keysDir, next.newKey)} is missing: restore it from a backup`);
  writeRolloverState(keysDir, zone, next);
  return next;
}
