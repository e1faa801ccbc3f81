// The compiled name table of the last reload, reused when its inputs did not
// change. A one-policy reload at 300 PoPs / 1,000 policies / 10,000 names
// compiled the zones again (about 140 ms of CPU and most of the garbage the
// reload left behind) only to get the same table: the zone files and the
// steered names with their policy positions were the same. The key is the
// one the snapshot already carries for posting by reference (zonesKey,
// snapshot/zone-reuse.ts), computed here from the files as read now.
//
// Only unsigned tables without a hash record are kept: a hash record is
// written into the table at each load (it carries the content hash), and a
// signed table depends on the policies' answers and on the signing clock.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConfigError } from '../config/errors.ts';
import type { CompiledPolicy } from '../steering/types.ts';
import { compileZones, type CompiledZones, type SteeredName } from './zones.ts';

/**
 * What an unsigned name table is compiled from: the zone files, each steered
 * name with its policy position, and the hash record (which carries the
 * content hash). Equal keys compile to equal tables.
 */
export function zonesKeyOf(files: ReadonlyArray<{ file: string; text: string }>, steered: ReadonlyArray<SteeredName>, hashRecord: string): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(f.file).update('\0').update(f.text).update('\0');
  for (const s of steered) hash.update(s.name).update('\0').update(String(s.index)).update('\0');
  hash.update(hashRecord);
  return hash.digest('hex').slice(0, 16);
}

/** The last unsigned table compiled without a hash record, by the key of what it was compiled from. */
let kept: { key: string; result: CompiledZones } | null = null;

/** The key of the zone files as they read now (null: one cannot be read; the compile reports it). */
function currentKey(zoneFiles: string[], steered: ReadonlyArray<SteeredName>): string | null {
  try {
    return zonesKeyOf(zoneFiles.map((file) => ({ file, text: readFileSync(file, 'utf8') })), steered, '');
  } catch {
    return null;
  }
}

/**
 * compileZones, or the table compiled last time from the same zone texts and
 * steered names. `reusable` false (a hash record is configured) compiles
 * afresh and keeps nothing, since the record is added to the table after.
 */
export function compileZonesReusing(zoneFiles: string[], steered: SteeredName[], options: { policies: readonly CompiledPolicy[]; validityDays?: number },
  reusable: boolean):
  { result: CompiledZones | null; errors: ConfigError[]; reused: boolean } {
  const key = reusable && kept !== null ? currentKey(zoneFiles, steered) : null;
  if (key !== null && key === kept?.key) return { result: kept.result, errors: [], reused: true };
  const compiled = compileZones(zoneFiles, steered, options);
  const result = compiled.result;
  if (reusable && result && compiled.errors.length === 0 && result.dnssec === null) kept = { key: zonesKeyOf(result.files, steered, ''), result };
  else if (!reusable || result?.dnssec) kept = null;
  return { ...compiled, reused: false };
}
