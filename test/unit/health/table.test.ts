import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { bumpEpoch, createHealthTable, healthCutOff, healthEpoch, readHealth, writeCutOff, writeHealth } from '../../../server/health/table.ts';

test('a new table has the documented layout: epoch 0, no cut-off, the count, every subject up', () => {
  const view = new Int32Array(createHealthTable(4));
  assert.deepEqual([...view], [0, 0, 4, 1, 1, 1, 1]);
  for (let i = 0; i < 4; i++) assert.equal(readHealth(view, i), true);
});

test('writes are visible to readers and the epoch counts batches of changes', () => {
  const view = new Int32Array(createHealthTable(2));
  writeHealth(view, 1, false);
  bumpEpoch(view);
  writeCutOff(view, true);
  assert.equal(readHealth(view, 0), true);
  assert.equal(readHealth(view, 1), false);
  assert.equal(healthEpoch(view), 1);
  assert.equal(healthCutOff(view), true);
  assert.equal(readHealth(view, 7), true, 'out of range reads fail open');
});

test('a worker thread sees the main thread\'s writes through the shared buffer', async () => {
  const table = createHealthTable(3);
  const view = new Int32Array(table);
  writeHealth(view, 2, false);
  bumpEpoch(view);
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    const v = new Int32Array(workerData);
    parentPort.postMessage({ epoch: Atomics.load(v, 0), states: [3, 4, 5].map((s) => Atomics.load(v, s)) });`;
  const worker = new Worker(source, { eval: true, workerData: table });
  const seen = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
  await worker.terminate();
  assert.deepEqual(seen, { epoch: 1, states: [1, 1, 0] });
});
