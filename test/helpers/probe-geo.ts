// A copy of the example geo data whose probes.yaml probes each PoP through
// one HTTP target on loopback: what the health and fleet tests and benchmarks
// run their servers with.

import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './server.ts';

export interface HttpProbe {
  pop: string;
  /** The target's name in probes.yaml. */
  target: string;
  port: number;
  path: string;
}

/** Probe settings generous enough that a loaded machine does not make a real probe time out. */
export const LOOPBACK_PROBE_DEFAULTS = 'defaults: { interval: 1s, timeout: 900ms, fall: 2, rise: 2 }';

/**
 * Writes the example geo data to `dir` (made if missing) with a probes.yaml
 * whose first lines are `head` (the defaults, and any cut_off setting), then
 * one HTTP target per probe; returns `dir`.
 */
export function geoDataWithHttpProbes(dir: string, probes: HttpProbe[], head: string[] = [LOOPBACK_PROBE_DEFAULTS]): string {
  cpSync(join(REPO_ROOT, 'geo-data'), dir, { recursive: true });
  writeFileSync(join(dir, 'probes.yaml'), [
    ...head,
    'targets:',
    ...probes.map((p) => `  ${p.target}: { kind: http, host: 127.0.0.1, port: ${p.port}, path: ${p.path} }`),
    'pops:',
    ...probes.map((p) => `  ${p.pop}: { probes: [${p.target}] }`),
    '',
  ].join('\n'));
  return dir;
}
