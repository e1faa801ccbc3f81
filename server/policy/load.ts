// The slow path's front door: read every file under the config directory,
// validate, compile, and return one immutable snapshot (or every error found).
// `popsteer validate` and `popsteer serve` both call this, so a set that
// validates is exactly a set that serves.

import { createHash } from 'node:crypto';
import { ConfigError } from '../config/errors.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import { compileZones, zoneFilesIn, type SteeredName } from './zones.ts';

export interface LoadResult {
  snapshot: DnsSnapshot | null;
  errors: ConfigError[];
  files: string[];
}

export function loadSnapshot(configDir: string): LoadResult {
  let zoneFiles: string[];
  try {
    zoneFiles = zoneFilesIn(configDir);
  } catch (err) {
    if (err instanceof ConfigError) return { snapshot: null, errors: [err], files: [] };
    throw err;
  }
  const steered: SteeredName[] = [];
  const { result, errors } = compileZones(zoneFiles, steered);
  if (!result || errors.length > 0) return { snapshot: null, errors, files: zoneFiles };
  const hash = createHash('sha256');
  for (const f of result.files) hash.update(f.file.slice(configDir.length)).update('\0').update(f.text).update('\0');
  const snapshot: DnsSnapshot = {
    names: result.names,
    zones: result.zones,
    hash: hash.digest('hex').slice(0, 16),
    loadedAt: Date.now(),
  };
  return { snapshot: Object.freeze(snapshot), errors: [], files: zoneFiles };
}
