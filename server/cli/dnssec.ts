// popsteer dnssec keygen|ds: the zone's CSK and the DS records for its parent.

import { resolve, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { readYamlFile } from '../config/yaml-source.ts';
import { ALG_ECDSAP256SHA256, ALG_ED25519, dnskeyRecord, dsRecord, generateKey, KeyError, loadKey } from '../dnssec/keys.ts';
import { zoneFilesIn } from '../policy/zones.ts';
import { ConfigError } from '../config/errors.ts';

export const DNSSEC_HELP = `Usage:
  popsteer dnssec keygen --config DIR --zone ZONE [--algorithm 13|15]
  popsteer dnssec ds --config DIR --zone ZONE

keygen creates the zone's CSK (one combined signing key, flags 257) in the
keys directory its zone file names under dnssec.keys (relative to the config
directory; "keys" when the file has no dnssec block yet), written 0600.
Algorithm 13 is ECDSA P-256 SHA-256 (the default), 15 Ed25519.
ds prints the DS record (SHA-256) to hand to the parent zone, and the DNSKEY.

Exit status: 0 done, 1 the key is missing, unsafe or already exists, 2 bad usage.`;

/** The keys directory a zone file names (or the default), absolute. */
function keysDirOf(configDir: string, zone: string): string {
  const want = zone.replace(/\.$/, '').toLowerCase();
  for (const file of zoneFilesIn(configDir)) {
    const doc = readYamlFile(file).data as { zone?: string; dnssec?: { keys?: string } };
    if (typeof doc.zone === 'string' && doc.zone.replace(/\.$/, '').toLowerCase() === want) {
      return resolve(dirname(dirname(file)), doc.dnssec?.keys ?? 'keys');
    }
  }
  throw new KeyError(`no zone file under ${configDir}/zones serves ${zone}`);
}

export function runDnssecCommand(args: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args, allowPositionals: true,
      options: { config: { type: 'string', default: 'policies' }, zone: { type: 'string' }, algorithm: { type: 'string', default: '13' } },
    });
  } catch (err) {
    process.stderr.write(`popsteer dnssec: ${(err as Error).message}\n\n${DNSSEC_HELP}\n`);
    return 2;
  }
  const [action] = parsed.positionals;
  const { config, zone, algorithm } = parsed.values;
  const alg = Number(algorithm);
  if ((action !== 'keygen' && action !== 'ds') || !zone || (alg !== ALG_ECDSAP256SHA256 && alg !== ALG_ED25519)) {
    process.stderr.write(`${DNSSEC_HELP}\n`);
    return 2;
  }
  try {
    const keysDir = keysDirOf(config, zone);
    if (action === 'keygen') {
      const file = generateKey(keysDir, zone, alg);
      const key = loadKey(keysDir, zone, alg);
      process.stdout.write(`created ${file} (algorithm ${alg}, key tag ${key.keyTag})\n`);
      return 0;
    }
    const key = loadKey(keysDir, zone, null);
    process.stdout.write(`${dsRecord(zone, key)}\n${dnskeyRecord(zone, key)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof KeyError) && !(err instanceof ConfigError)) throw err;
    process.stderr.write(`popsteer dnssec: ${err.message}\n`);
    return 1;
  }
}
