// What signing costs at compile time (issue 21): the example configuration
// compiled unsigned, signed with P-256 and with Ed25519, and with one more
// policy that can answer any 3 of all PoPs (`first: 3`), printing compile
// time (median of 5), distinct signatures and heap growth. Not a test.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { generateKey } from '../../server/dnssec/keys.ts';
import { loadGeo } from '../../server/geo-context.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { REPO_ROOT } from '../helpers/server.ts';

const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase: [], cacheDir: null });

function configWith(algorithm: number | null, extraPolicy: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-bench-'));
  cpSync(join(REPO_ROOT, 'policies'), dir, { recursive: true });
  if (algorithm !== null) {
    generateKey(join(dir, 'keys'), 'cdn.example', algorithm);
    const zone = join(dir, 'zones', 'cdn.example.yaml');
    writeFileSync(zone, readFileSync(zone, 'utf8').replace(/^zone: cdn\.example$/m, `zone: cdn.example\ndnssec: { keys: keys, algorithm: ${algorithm} }`));
  }
  if (extraPolicy) {
    writeFileSync(join(dir, 'steering', 'three.yaml'), `policies:
  - name: three.cdn.example
    ttl: 60
    pools: { edge: { pops: all } }
    rules: [{ name: three, match: default, pool: edge, steps: [healthy, nearest, { first: 3 }] }]
`);
  }
  return dir;
}

function measure(label: string, algorithm: number | null, extraPolicy: boolean): void {
  const dir = configWith(algorithm, extraPolicy);
  const times: number[] = [];
  let signatures = 0;
  let heap = 0;
  for (let i = 0; i < 5; i++) {
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    const started = performance.now();
    const result = loadSnapshot(dir, geo.context, 'ams');
    times.push(performance.now() - started);
    if (!result.snapshot) throw new Error(result.errors.map((e) => e.format()).join('\n'));
    signatures = result.snapshot.dnssec?.signatures.size ?? 0;
    heap = process.memoryUsage().heapUsed - before;
  }
  times.sort((a, b) => a - b);
  const mib = globalThis.gc ? `${(heap / 1048576).toFixed(1)} MiB` : 'n/a (run with --expose-gc)';
  process.stdout.write(`${label.padEnd(44)} compile ${times[2].toFixed(0).padStart(5)} ms  signatures ${String(signatures).padStart(6)}  heap +${mib}\n`);
  rmSync(dir, { recursive: true, force: true });
}

process.stdout.write(`DNSSEC compile, ${new Date().toISOString().slice(0, 10)} (node --expose-gc test/bench/dnssec.bench.ts)\n`);
measure('example config, unsigned', null, false);
measure('example config, P-256 (13)', 13, false);
measure('example config, Ed25519 (15)', 15, false);
measure('+ three.cdn.example (first: 3 of all PoPs), P-256', 13, true);
measure('+ three.cdn.example (first: 3 of all PoPs), Ed25519', 15, true);
