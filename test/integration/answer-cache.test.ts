// The answer cache at a running server: a repeated query is answered from it
// (popsteer_answer_cache_total), every answer it sends is still counted as a
// request, a response, an ECS use and a steering decision, and a drain made
// through the admin API changes the answer to the very same query bytes at
// once. With --answer-cache-entries 0 nothing is looked up.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'answer-cache-test-token';
/** A Berlin network: the www policy answers it from fra while fra is up. */
const BERLIN = '85.214.0.0/24';
const REPEATS = 20;

let server: StartedServer;
let uncached: StartedServer;
before(async () => {
  [server, uncached] = await Promise.all([
    startServer({ env: { POPSTEER_ADMIN_TOKEN: TOKEN } }),
    startServer({ args: ['--answer-cache-entries', '0'] }),
  ]);
});
after(async () => {
  await Promise.all([server?.stop(), uncached?.stop()]);
});

/** Sums of the samples of `name` whose labels contain every `labels` pair. */
async function metric(target: StartedServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${target.adminPort}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(' ').pop());
  }
  return total;
}

/** The same query bytes each time: a fresh client starts its IDs at the same number. */
async function askBerlin(target: StartedServer): Promise<string> {
  const dns = new TestDnsClient(target.dnsPort);
  try {
    return popOf(firstAnswer(await dns.query('www.cdn.example', 'A', { subnet: BERLIN })));
  } finally {
    dns.close();
  }
}

async function snapshotOf(target: StartedServer): Promise<Record<string, number>> {
  return {
    hits: await metric(target, 'popsteer_answer_cache_total', { result: 'hit' }),
    misses: await metric(target, 'popsteer_answer_cache_total', { result: 'miss' }),
    requests: await metric(target, 'popsteer_dns_requests_total', { transport: 'udp', qtype: 'A' }),
    noerror: await metric(target, 'popsteer_dns_responses_total', { rcode: 'NOERROR' }),
    ecsUsed: await metric(target, 'popsteer_dns_ecs_total', { outcome: 'used' }),
    decisionsFra: await metric(target, 'popsteer_steering_decisions_total', { name: 'www.cdn.example', endpoint: 'fra' }),
  };
}

const post = async (path: string, body: unknown): Promise<number> => (await fetch(`http://127.0.0.1:${server.adminPort}${path}`, {
  method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
})).status;

test('repeated queries are answered from the cache and every one is counted', async () => {
  // This server has answered nothing before this test, and /metrics was not read yet: the admin thread
  // keeps its sum of the steering decision counters for 200 ms (admin/server.ts), so the first read is
  // the one to count from zero.
  for (let i = 0; i < REPEATS; i++) assert.equal(await askBerlin(server), 'fra');
  const now = await snapshotOf(server);
  assert.ok(now.hits >= REPEATS - 1, `${now.hits} hits for ${REPEATS} identical queries`);
  assert.equal(now.hits + now.misses, REPEATS, 'one lookup per UDP query');
  assert.equal(now.requests, REPEATS, 'requests');
  assert.equal(now.noerror, REPEATS, 'responses');
  assert.equal(now.ecsUsed, REPEATS, 'ECS used');
  assert.equal(now.decisionsFra, REPEATS, 'steering decisions, cache hits included');
});

test('a drain changes the answer to the same query bytes at once, and undrain brings it back', async () => {
  assert.equal(await askBerlin(server), 'fra');
  assert.equal(await askBerlin(server), 'fra');
  assert.equal(await post('/v1/pops/fra/drain', { reason: 'answer cache test' }), 200);
  const drained = await askBerlin(server);
  assert.notEqual(drained, 'fra', 'the cached fra answer is not sent after the drain');
  assert.equal(await askBerlin(server), drained);
  assert.equal(await post('/v1/pops/fra/undrain', { reason: 'done' }), 200);
  assert.equal(await askBerlin(server), 'fra');
});

test('with --answer-cache-entries 0 nothing is looked up and the answers are the same', async () => {
  for (let i = 0; i < 3; i++) assert.equal(await askBerlin(uncached), 'fra');
  assert.equal(await metric(uncached, 'popsteer_answer_cache_total'), 0);
  assert.ok(await metric(uncached, 'popsteer_steering_decisions_total', { endpoint: 'fra' }) >= 3);
});
