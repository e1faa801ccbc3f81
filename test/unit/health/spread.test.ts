// 200 targets at 1 s intervals: probe start times are spread evenly over the
// interval (no thundering herd) and every target keeps its pace. The
// scheduler runs on a manual clock, so the times asserted are the times it
// chose, exactly, whatever the machine's load; the same schedule against a
// real HTTP target in real time is test/bench/health-spread.bench.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../helpers/manual-clock.ts';
import { driveScripted, makeService, scriptedTransport } from './helpers.ts';

const TARGETS = 200;
const INTERVAL_MS = 1000;
const BUCKETS = 10;

test('200 targets at 1 s intervals: starts fill every tenth of the interval evenly, never more than 2 in 10 ms, each target exactly once per second', async () => {
  const clock = new ManualClock();
  const origin = clock.now();
  const starts = new Map<string, number[]>();
  const transport = scriptedTransport((target) => {
    const list = starts.get(target.id) ?? [];
    list.push(clock.now() - origin);
    starts.set(target.id, list);
    return true;
  });
  const targets = Array.from({ length: TARGETS }, (_, i) => `  t${i}: { kind: http, host: 127.0.0.1, port: 80, path: /t${i} }`);
  const { service } = makeService(`defaults: { interval: 1s, timeout: 500ms }\ncut_off: { enabled: false }\ntargets:\n${targets.join('\n')}\n`, [], transport, { clock });
  service.start();
  try {
    // Three full rounds: the later ones show the schedule keeps its spread.
    await driveScripted(clock, () => clock.now() - origin >= 3 * INTERVAL_MS);
  } finally {
    service.stop();
  }

  assert.equal(starts.size, TARGETS, 'every target was probed');
  const all = [...starts.values()].flat().sort((a, b) => a - b);
  for (const round of [0, 1, 2]) {
    const inRound = all.filter((t) => t >= round * INTERVAL_MS && t < (round + 1) * INTERVAL_MS);
    assert.equal(inRound.length, TARGETS, `round ${round}: one probe per target`);
    const counts = new Array(BUCKETS).fill(0);
    for (const t of inRound) counts[Math.floor(((t % INTERVAL_MS) / INTERVAL_MS) * BUCKETS)]++;
    assert.deepEqual(counts, new Array(BUCKETS).fill(TARGETS / BUCKETS), `round ${round}: starts per tenth of the interval`);
  }
  let busiest = 0;
  for (let i = 0, j = 0; i < all.length; i++) {
    while (all[i] - all[j] >= 10) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  assert.ok(busiest <= 2, `at most 2 starts in any 10 ms window (one per 5 ms slot), saw ${busiest}`);
  for (const [id, list] of starts) {
    const gaps = list.slice(1).map((at, i) => at - list[i]);
    assert.ok(gaps.every((g) => g === INTERVAL_MS), `${id} is probed every ${INTERVAL_MS} ms exactly: ${gaps.join(' ')}`);
  }
});

test('a late wake-up skips the missed slots and keeps each target\'s phase, instead of bursting', async () => {
  const clock = new ManualClock();
  const origin = clock.now();
  const starts: number[] = [];
  const { service } = makeService('defaults: { interval: 100ms, timeout: 50ms }\ncut_off: { enabled: false }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\n', [], scriptedTransport(() => {
    starts.push(clock.now() - origin);
    return true;
  }), { clock });
  service.start();
  try {
    await driveScripted(clock, () => starts.length >= 2);
    // At 100 ms the process stalls for 350 ms (a long GC, a stopped VM): the timer fires late, once.
    assert.equal(clock.now() - origin, 100);
    clock.stall(350);
    await driveScripted(clock, () => starts.length >= 5);
  } finally {
    service.stop();
  }
  assert.deepEqual(starts, [0, 100, 450, 500, 600], 'one probe on waking (the slots at 200, 300, 400 ms are skipped), then back on the 100 ms grid');
});
