// Figures, not verdicts: 200 targets at 1 s intervals probed in real time by
// the real scheduler, as seen at a real HTTP server on loopback that notes
// when each request arrives. Prints how evenly the starts fill the interval,
// the busiest 10 ms window and how far each target's pace strays from 1 s on
// this machine. The exact schedule is proved in test/unit/health/spread.test.ts.
//   node test/bench/health-spread.bench.ts

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseYamlText } from '../../server/config/yaml-source.ts';
import { parseProbesConfig } from '../../server/health/config.ts';
import { HealthService } from '../../server/health/service.ts';
import { createHealthTable } from '../../server/health/table.ts';
import { startHttpTarget } from '../fixtures/health/targets.ts';
import { captureLogger } from '../unit/health/helpers.ts';

const TARGETS = 200;
const INTERVAL_MS = 1000;
const BUCKETS = 10;
const ROUNDS = 3;

const target = await startHttpTarget();
const stateDir = mkdtempSync(join(tmpdir(), 'popsteer-spread-bench-'));
const targets = Array.from({ length: TARGETS }, (_, i) => `  t${i}: { kind: http, host: 127.0.0.1, port: ${target.port}, path: /t${i} }`);
const config = parseProbesConfig(parseYamlText('probes.yaml', `defaults: { interval: 1s, timeout: 500ms }\ntargets:\n${targets.join('\n')}\n`), []);
const service = new HealthService({ subjects: [], config, stateFile: join(stateDir, 'state.json'), log: captureLogger().log, table: createHealthTable(0) });
const started = performance.now();
service.start();
await new Promise((resolve) => setTimeout(resolve, ROUNDS * INTERVAL_MS + 150));
service.stop();
await target.kill();
rmSync(stateDir, { recursive: true, force: true });

const arrivals = target.seen.at.map((at) => at - started);
const counts = new Array(BUCKETS).fill(0);
const lastRound = arrivals.filter((t) => t >= (ROUNDS - 1) * INTERVAL_MS && t < ROUNDS * INTERVAL_MS);
for (const t of lastRound) counts[Math.floor(((t % INTERVAL_MS) / INTERVAL_MS) * BUCKETS)]++;
const sorted = [...arrivals].sort((a, b) => a - b);
let busiest = 0;
for (let i = 0, j = 0; i < sorted.length; i++) {
  while (sorted[i] - sorted[j] > 10) j++;
  busiest = Math.max(busiest, i - j + 1);
}
const byPath = new Map<string, number[]>();
target.seen.paths.forEach((path, i) => { const list = byPath.get(path) ?? []; list.push(target.seen.at[i]); byPath.set(path, list); });
const strays = [...byPath.values()].flatMap((list) => list.slice(1).map((at, i) => Math.abs(at - list[i] - INTERVAL_MS))).sort((a, b) => a - b);
const quantile = (q: number): number => strays[Math.min(strays.length - 1, Math.floor(q * strays.length))] ?? NaN;

process.stdout.write(`health scheduler, ${TARGETS} HTTP targets at ${INTERVAL_MS} ms, ${ROUNDS} rounds in real time (${new Date().toISOString()})\n`);
process.stdout.write(`  arrivals per ${INTERVAL_MS / BUCKETS} ms of round ${ROUNDS}: ${counts.join(' ')} (ideal ${TARGETS / BUCKETS} each; ${lastRound.length} of ${TARGETS})\n`);
process.stdout.write(`  busiest 10 ms window: ${busiest} arrivals (ideal ${TARGETS / (INTERVAL_MS / 10)})\n`);
process.stdout.write(`  pace: |gap − 1 s| median ${quantile(0.5).toFixed(1)} ms, p99 ${quantile(0.99).toFixed(1)} ms, max ${quantile(1).toFixed(1)} ms over ${strays.length} gaps\n`);
