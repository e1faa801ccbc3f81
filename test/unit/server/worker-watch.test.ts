// How the main thread watches a DNS worker, on real worker threads: a crash
// after start-up is logged with its message and stack, then the server is
// told it lost the worker (it stops, exit 1); a crash while the server is
// stopping anyway is logged but not reported again; a worker that cannot
// listen fails start-up with a settings error (exit 2).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { watchWorker } from '../../../server/worker-watch.ts';
import { captureLogger } from '../health/helpers.ts';

/** A worker thread running `body` after telling the main thread it listens. */
const workerThat = (body: string): Worker => new Worker(`
  const { parentPort } = require('node:worker_threads');
  parentPort.postMessage({ type: 'listening', index: 0, udp: [], tcp: [] });
  ${body}`, { eval: true });

test('a worker that crashes after start-up: error and stack logged, then the server is told (exit 1 follows)', async () => {
  const { log, lines } = captureLogger();
  const worker = workerThat(`setTimeout(function answerQueries() { throw new Error('index out of range in the decision cache'); }, 10);`);
  const lost = new Promise<number>((resolve) => {
    const watch = watchWorker(worker, 0, log, () => false, resolve);
    void watch.listening.then(() => lines.push({ msg: 'listened' }));
  });
  assert.equal(await lost, 1, 'exit code of the crashed thread');
  const crash = lines.find((l) => l.level === 60 && String(l.msg).startsWith('DNS worker crashed'));
  assert.ok(crash, JSON.stringify(lines));
  assert.equal(crash.err, 'index out of range in the decision cache');
  assert.match(String(crash.stack), /answerQueries/, 'the stack names where it happened');
  assert.match(String(crash.msg), /stopping the server \(exit 1\)/);
  assert.ok(lines.findIndex((l) => l.msg === 'listened') < lines.indexOf(crash), 'it had listened first');
});

test('a worker ending while the server stops anyway is not reported as lost', async () => {
  const { log } = captureLogger();
  const worker = workerThat('');
  let lost = false;
  const watch = watchWorker(worker, 0, log, () => true, () => { lost = true; });
  await watch.listening;
  await worker.terminate();
  assert.equal(lost, false);
});

test('a worker that cannot listen fails start-up with a settings error', async () => {
  const { log } = captureLogger();
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads');
    parentPort.postMessage({ type: 'error', index: 0, message: 'cannot listen: listen EACCES: permission denied 0.0.0.0:53' });
    setTimeout(() => process.exit(1), 10);`, { eval: true });
  // Listened for before anything is awaited: the thread may be gone before the rejection is seen.
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const watch = watchWorker(worker, 0, log, () => false, () => assert.fail('not lost: it never listened'));
  await assert.rejects(watch.listening, (err: unknown) => err instanceof ConfigErrors && /EACCES/.test(err.errors[0].message));
  await exited;
});
