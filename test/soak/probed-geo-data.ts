// A private copy of the example geo data whose probes.yaml probes some PoPs
// at local HTTP targets (the others keep their external monitors), for tests
// and the soak that flap those targets under a running server.

import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/server.ts';

/** `targets`: PoP id → port of its HTTP health target on 127.0.0.1 (GET /healthz); `fall`: failures in a row to go down. */
export function geoDataWithHttpProbes(targets: Record<string, number>, intervalMs = 200, fall = 1): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  cpSync(join(REPO_ROOT, 'geo-data'), dir, { recursive: true });
  const lines = [
    `defaults: { interval: ${intervalMs}ms, timeout: ${Math.round(intervalMs / 2)}ms, fall: ${fall}, rise: 1 }`,
    // Flapping several PoPs at once must not read as "this instance is cut off".
    'cut_off: { enabled: false }',
    'targets:',
    ...Object.entries(targets).map(([pop, port]) => `  ${pop}-http: { kind: http, host: 127.0.0.1, port: ${port}, path: /healthz }`),
    'pops:',
    ...Object.keys(targets).map((pop) => `  ${pop}: { probes: [${pop}-http] }`),
    '',
  ];
  writeFileSync(join(dir, 'probes.yaml'), lines.join('\n'));
  return dir;
}
