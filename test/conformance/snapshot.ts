// A snapshot of zones only (no steering policies, no geo data) for tests that
// drive the Engine in-process: the same zone compiler `serve` runs.

import assert from 'node:assert/strict';
import { compileZones, zoneFilesIn } from '../../server/policy/zones.ts';
import type { DnsSnapshot } from '../../server/snapshot/types.ts';

export function zonesOnlySnapshot(configDir: string): DnsSnapshot {
  const { result, errors } = compileZones(zoneFilesIn(configDir), []);
  assert.ok(result && errors.length === 0, errors.map((e) => e.format()).join('\n'));
  const snapshot = { names: result.names, zones: result.zones, steering: null, hash: 'zones-only', loadedAt: 0 };
  return Object.freeze(snapshot);
}
