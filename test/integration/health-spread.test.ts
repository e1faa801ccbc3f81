// 200 targets at 1 s intervals: probe start times must be spread over the
// interval (no thundering herd), measured where it matters — at the target,
// a real HTTP server on loopback that notes when each request arrives.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseYamlText } from '../../server/config/yaml-source.ts';
import { parseProbesConfig } from '../../server/health/config.ts';
import { HealthService } from '../../server/health/service.ts';
import { createHealthTable } from '../../server/health/table.ts';
import { startHttpTarget } from '../fixtures/health/targets.ts';
import { captureLogger, tempStateFile } from '../unit/health/helpers.ts';

const TARGETS = 200;
const INTERVAL_MS = 1000;
const BUCKETS = 10;

test('200 targets at 1 s intervals: start offsets fill every tenth of the interval evenly, each target once per second', async () => {
  const target = await startHttpTarget();
  const targets = Array.from({ length: TARGETS }, (_, i) => `  t${i}: { kind: http, host: 127.0.0.1, port: ${target.port}, path: /t${i} }`);
  const config = parseProbesConfig(parseYamlText('probes.yaml', `defaults: { interval: 1s, timeout: 500ms }\ntargets:\n${targets.join('\n')}\n`), []);
  assert.equal(config.targets.length, TARGETS, 'distinct paths are distinct targets');
  const service = new HealthService({ subjects: [], config, stateFile: tempStateFile(), log: captureLogger().log, table: createHealthTable(0) });
  const started = performance.now();
  service.start();
  // Two full rounds; the second shows the schedule keeps its spread.
  await new Promise((r) => setTimeout(r, 2 * INTERVAL_MS + 150));
  service.stop();
  await target.kill();

  const arrivals = target.seen.at.map((at) => at - started);
  const secondRound = arrivals.filter((t) => t >= INTERVAL_MS && t < 2 * INTERVAL_MS);
  const counts = new Array(BUCKETS).fill(0);
  for (const t of secondRound) counts[Math.floor(((t % INTERVAL_MS) / INTERVAL_MS) * BUCKETS)]++;
  const expected = TARGETS / BUCKETS;
  process.stdout.write(`# arrivals per ${INTERVAL_MS / BUCKETS} ms of the second interval: ${counts.join(' ')} (ideal ${expected})\n`);
  assert.ok(secondRound.length >= TARGETS * 0.95 && secondRound.length <= TARGETS * 1.05, `about one probe per target in one interval, got ${secondRound.length}`);
  for (const [i, n] of counts.entries()) {
    assert.ok(n >= expected * 0.5 && n <= expected * 1.5, `bucket ${i} holds ${n} starts; expected about ${expected}: ${counts.join(' ')}`);
  }
  // No burst: the busiest 10 ms window holds a handful of starts, not a herd.
  const sorted = [...arrivals].sort((a, b) => a - b);
  let busiest = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] > 10) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  process.stdout.write(`# busiest 10 ms window: ${busiest} probe starts (ideal ${TARGETS / (INTERVAL_MS / 10)})\n`);
  assert.ok(busiest <= 12, `at most 12 starts in any 10 ms window, saw ${busiest}`);
  // Every target keeps its one-second pace.
  const byPath = new Map<string, number[]>();
  target.seen.paths.forEach((path, i) => { const list = byPath.get(path) ?? []; list.push(target.seen.at[i]); byPath.set(path, list); });
  const gaps = [...byPath.values()].flatMap((list) => list.slice(1).map((at, i) => at - list[i]));
  assert.ok(gaps.length >= TARGETS, `each target was probed at least twice (${gaps.length} gaps)`);
  const offPace = gaps.filter((g) => Math.abs(g - INTERVAL_MS) > 150);
  assert.ok(offPace.length <= gaps.length * 0.02, `${offPace.length} of ${gaps.length} gaps strayed over 150 ms from 1 s`);
});
