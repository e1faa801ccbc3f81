// popsteer dnssec keygen|ds|rollover: the zone's CSK, the DS records for its
// parent, and the CSK rollover by pre-publication (dnssec/rollover.ts).

import { resolve, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { readYamlFile } from '../config/yaml-source.ts';
import { ALG_ECDSAP256SHA256, ALG_ED25519, dnskeyRecord, dsRecord, generateKey, KeyError, loadKey, type ZoneKey } from '../dnssec/keys.ts';
import { signingClock } from '../dnssec/refresh.ts';
import {
  activateState, advanceRollover, finishState, loadKeySet, RolloverRefused, startRollover, type KeySet, type RolloverState,
} from '../dnssec/rollover.ts';
import { zoneFilesIn } from '../policy/zones.ts';
import { ConfigError } from '../config/errors.ts';

export const DNSSEC_HELP = `Usage:
  popsteer dnssec keygen --config DIR --zone ZONE [--algorithm 13|15]
  popsteer dnssec ds --config DIR --zone ZONE
  popsteer dnssec rollover start|activate|finish --config DIR --zone ZONE [--force] [--parent-ds TAG]

keygen creates the zone's CSK (one combined signing key, flags 257) in the
keys directory its zone file names under dnssec.keys (relative to the config
directory; "keys" when the file has no dnssec block yet), written 0600.
Algorithm 13 is ECDSA P-256 SHA-256 (the default), 15 Ed25519.
ds prints the DS records (SHA-256) the parent should have (during a rollover
those the zone's CDS lists), and the published DNSKEYs.

rollover replaces the CSK by pre-publication; reload every instance after
each step (SIGHUP or POST /v1/reload):
  start     makes the next key and publishes it; the old key still signs.
  activate  the next key signs; refused until the DNSKEY TTL has passed
            since start (--force skips the wait).
  finish    the old key leaves DNSKEY; refused until the zone's largest TTL
            has passed since activate (--force skips the wait) and until
            --parent-ds names the new key's tag, confirming the parent's DS
            set holds the new DS (check with dig DS at the parent).

Exit status: 0 done, 1 a key is missing, unsafe or already exists,
2 bad usage or a rollover step refused (the message says what to do).`;

interface ZoneFacts {
  keysDir: string;
  algorithm: number;
  dnskeyTtl: number;
  maxTtl: number;
}

/** The largest TTL a zone file sets (zone default, SOA, negative, per-owner TTLs). */
function largestTtl(doc: { ttl?: number; soa?: { ttl?: number; minimum?: number }; records?: Record<string, { ttl?: unknown }> }): number {
  const ttls = [doc.ttl ?? 0, doc.soa?.ttl ?? 0, doc.soa?.minimum ?? 0];
  for (const rrsets of Object.values(doc.records ?? {})) if (typeof rrsets.ttl === 'number') ttls.push(rrsets.ttl);
  return Math.max(...ttls);
}

/** What the commands need of a zone file: its keys directory (absolute), algorithm and TTLs. */
function zoneFactsOf(configDir: string, zone: string): ZoneFacts {
  const want = zone.replace(/\.$/, '').toLowerCase();
  for (const file of zoneFilesIn(configDir)) {
    const doc = readYamlFile(file).data as { zone?: string; ttl?: number; soa?: { ttl?: number; minimum?: number }; dnssec?: { keys?: string; algorithm?: number }; records?: Record<string, { ttl?: unknown }> };
    if (typeof doc.zone === 'string' && doc.zone.replace(/\.$/, '').toLowerCase() === want) {
      return {
        keysDir: resolve(dirname(dirname(file)), doc.dnssec?.keys ?? 'keys'),
        algorithm: doc.dnssec?.algorithm ?? ALG_ECDSAP256SHA256,
        dnskeyTtl: doc.soa?.ttl ?? 3600,
        maxTtl: largestTtl(doc),
      };
    }
  }
  throw new KeyError(`no zone file under ${configDir}/zones serves ${zone}`);
}

const records = (zone: string, keys: ZoneKey[], form: (zone: string, key: ZoneKey) => string): string => keys.map((k) => `${form(zone, k)}\n`).join('');

/** The DS set for the parent and the DNSKEY set the zone publishes. */
function printKeySet(zone: string, set: KeySet): void {
  process.stdout.write(`${records(zone, set.parentKeys, dsRecord)}${records(zone, set.published, dnskeyRecord)}`);
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** One rollover step, then what the zone publishes now and what to do next. */
function runRollover(step: string | undefined, zone: string, facts: ZoneFacts, values: { force?: boolean; 'parent-ds'?: string }): number {
  const now = signingClock()();
  const force = values.force === true;
  let state: RolloverState;
  if (step === 'start') {
    state = startRollover(facts.keysDir, zone, facts.algorithm, now, { dnskeyTtl: facts.dnskeyTtl, maxTtl: facts.maxTtl });
  } else if (step === 'activate') {
    state = advanceRollover(facts.keysDir, zone, (s) => activateState(s, zone, now, force));
  } else if (step === 'finish') {
    const published = loadKeySet(facts.keysDir, zone, facts.algorithm).published;
    const [old, next] = [published[0], published.at(-1)!];
    const parentDs = values['parent-ds'] === undefined ? null : Number(values['parent-ds']);
    state = advanceRollover(facts.keysDir, zone, (s) => finishState(s, zone, now, { force, parentDs, oldTag: old.keyTag, newTag: next.keyTag, newDs: dsRecord(zone, next) }));
  } else {
    process.stderr.write(`${DNSSEC_HELP}\n`);
    return 2;
  }
  const set = loadKeySet(facts.keysDir, zone, facts.algorithm);
  process.stdout.write(`${zone}: rollover ${step} done (phase "${state.phase}", key tag ${set.active.keyTag} signs; new key ${state.newKey}).\n`);
  process.stdout.write(`${nextSteps(zone, state)}\nDS records the parent should have now (the zone's CDS/CDNSKEY list the same keys), then the published DNSKEYs:\n`);
  printKeySet(zone, set);
  return 0;
}

/** The operator's next steps after a rollover step. */
function nextSteps(zone: string, state: RolloverState): string {
  const reload = 'Reload every instance now (SIGHUP or POST /v1/reload).';
  if (state.phase === 'published') {
    return `${reload} You may add the new DS at the parent beside the old one. After ${iso(state.startedAt + state.dnskeyTtl * 1000)} run "popsteer dnssec rollover activate --zone ${zone}".`;
  }
  if (state.phase === 'active') {
    return `${reload} Replace the old DS at the parent with the new one below. After ${iso(state.activatedAt! + state.maxTtl * 1000)}, once "dig DS ${zone} @<parent server>" shows only the new key tag and its TTL has passed, run "popsteer dnssec rollover finish --zone ${zone} --parent-ds <new key tag>".`;
  }
  return `${reload} The old key file ${state.oldKey} is no longer read; delete or archive it.`;
}

function parse(args: string[]): ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof OPTIONS }>> | null {
  try {
    return parseArgs({ args, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    process.stderr.write(`popsteer dnssec: ${(err as Error).message}\n\n${DNSSEC_HELP}\n`);
    return null;
  }
}

const OPTIONS = {
  config: { type: 'string', default: 'policies' }, zone: { type: 'string' }, algorithm: { type: 'string', default: '13' },
  force: { type: 'boolean' }, 'parent-ds': { type: 'string' },
} as const;

export function runDnssecCommand(args: string[]): number {
  const parsed = parse(args);
  if (parsed === null) return 2;
  const [action, step] = parsed.positionals;
  const { config, zone, algorithm } = parsed.values;
  const alg = Number(algorithm);
  if (!['keygen', 'ds', 'rollover'].includes(action) || !zone || (alg !== ALG_ECDSAP256SHA256 && alg !== ALG_ED25519)) {
    process.stderr.write(`${DNSSEC_HELP}\n`);
    return 2;
  }
  try {
    const facts = zoneFactsOf(config, zone);
    if (action === 'rollover') return runRollover(step, zone, facts, parsed.values);
    if (action === 'keygen') {
      const file = generateKey(facts.keysDir, zone, alg);
      const key = loadKey(facts.keysDir, zone, alg);
      process.stdout.write(`created ${file} (algorithm ${alg}, key tag ${key.keyTag})\n`);
      return 0;
    }
    printKeySet(zone, loadKeySet(facts.keysDir, zone, null));
    return 0;
  } catch (err) {
    if (err instanceof RolloverRefused) {
      process.stderr.write(`popsteer dnssec rollover: ${err.message}\n`);
      return 2;
    }
    if (!(err instanceof KeyError) && !(err instanceof ConfigError)) throw err;
    process.stderr.write(`popsteer dnssec: ${err.message}\n`);
    return 1;
  }
}
