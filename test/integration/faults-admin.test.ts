// Faults around the admin API, each under a running query loop that counts
// every timeout and wrong answer: the admin port attacked (no token, a wrong
// token, bad JSON, wrong types, oversized bodies, unknown routes), the state
// file unwritable (its parent is a regular file: overrides still apply in
// memory), and every PoP forced down (each policy's declared behaviour: www
// fails open, api answers SERVFAIL; never silence).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { TestDnsClient, firstAnswer, type Decoded } from '../helpers/dns-client.ts';
import { POPS, popOf } from '../helpers/pops.ts';
import { answered, withQueryLoop, type LoopQuestion, type LoopStats, type QueryLoop } from '../soak/query-loop.ts';

const TOKEN = 'faults-test-token';
const UK = '81.2.69.0/24';

let server: StartedServer;
let stateFile: string;

before(async () => {
  // Once the server runs, the state file's directory is replaced by a regular file: every write
  // fails, for any user, root included. (At start-up that would be refused with exit 2.)
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-state-'));
  stateFile = join(dir, 'not-a-directory', 'state.json');
  server = await startServer({ args: ['--state-file', stateFile], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  rmSync(join(dir, 'not-a-directory'), { recursive: true });
  writeFileSync(join(dir, 'not-a-directory'), 'x');
});
after(async () => { await server?.stop(); });

interface AdminReply { status: number; body: Record<string, unknown> }

async function admin(method: string, path: string, options: { body?: string; token?: string | null; contentType?: string } = {}): Promise<AdminReply> {
  const headers: Record<string, string> = {};
  if (options.token !== null) headers.authorization = `Bearer ${options.token ?? TOKEN}`;
  if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(`http://127.0.0.1:${server.adminPort}${path}`, { method, headers, body: options.body });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: left empty */ }
  return { status: response.status, body };
}

const pop = (reply: Decoded): string => {
  try {
    return popOf(firstAnswer(reply));
  } catch {
    return String(firstAnswer(reply));
  }
};

/** Runs `during` under a query loop; returns the loop's stats after asserting no timeout or wrong answer. */
async function underLoad(questions: LoopQuestion[], during: (loop: QueryLoop) => Promise<void>): Promise<LoopStats> {
  const stats = await withQueryLoop({ port: server.dnsPort, questions, everyMs: 10, label: (q, r) => `${q.name.split('.')[0]}:${r.rcode === 'NOERROR' ? pop(r) : r.rcode}` }, during);
  assert.equal(stats.timeouts + stats.wrong, 0, `failures: ${JSON.stringify(stats)}`);
  return stats;
}

const STEADY: LoopQuestion[] = [
  { name: 'www.cdn.example', subnet: UK, check: answered },
  { name: 'status.cdn.example', check: (r) => answered(r) ?? (firstAnswer(r) === '203.0.113.80' ? null : `status ${firstAnswer(r)}`) },
];

test('an attacked admin port answers 4xx and DNS keeps answering', async () => {
  await underLoad(STEADY, async () => {
    const reason = JSON.stringify({ reason: 'test' });
    const cases: Array<{ what: string; call: () => Promise<AdminReply>; status: number }> = [
      { what: 'no token', call: () => admin('POST', '/v1/pops/lhr/drain', { body: reason, token: null }), status: 401 },
      { what: 'wrong token', call: () => admin('POST', '/v1/pops/lhr/drain', { body: reason, token: 'guess' }), status: 401 },
      { what: 'wrong token of the right length', call: () => admin('POST', '/v1/pops/lhr/drain', { body: reason, token: TOKEN.replace(/.$/, 'x') }), status: 401 },
      { what: 'no token on reload', call: () => admin('POST', '/v1/reload', { token: null }), status: 401 },
      { what: 'no token and no body', call: () => admin('POST', '/v1/pops/lhr/drain', { token: null }), status: 401 },
      { what: 'no token and a malformed body', call: () => admin('POST', '/v1/pops/lhr/drain', { body: '{"reason":', token: null }), status: 401 },
      { what: 'no token and a body over the limit', call: () => admin('POST', '/v1/pops/lhr/drain', { body: JSON.stringify({ reason: 'x'.repeat(100_000) }), token: null }), status: 401 },
      { what: 'no token on health push', call: () => admin('POST', '/v1/health', { body: JSON.stringify({ target: 'ams-monitor', state: 'down' }), token: null }), status: 401 },
      { what: 'bad JSON', call: () => admin('POST', '/v1/pops/lhr/drain', { body: '{"reason": "x",' }), status: 400 },
      { what: 'JSON of the wrong shape', call: () => admin('POST', '/v1/pops/lhr/drain', { body: '[1,2,3]' }), status: 400 },
      { what: 'a number where a string belongs', call: () => admin('POST', '/v1/pops/lhr/drain', { body: JSON.stringify({ reason: 42 }) }), status: 400 },
      { what: 'an unknown field', call: () => admin('POST', '/v1/pops/lhr/drain', { body: JSON.stringify({ reason: 'x', sudo: true }) }), status: 400 },
      { what: 'an unknown action', call: () => admin('POST', '/v1/pops/lhr/explode', { body: reason }), status: 400 },
      { what: 'an unknown PoP', call: () => admin('POST', '/v1/pops/atlantis/drain', { body: reason }), status: 404 },
      { what: 'a body over the limit', call: () => admin('POST', '/v1/pops/lhr/drain', { body: JSON.stringify({ reason: 'x'.repeat(100_000) }) }), status: 413 },
      { what: 'a form body', call: () => admin('POST', '/v1/pops/lhr/drain', { body: 'reason=x', contentType: 'application/x-www-form-urlencoded' }), status: 415 },
      { what: 'an unknown route', call: () => admin('DELETE', '/v1/everything'), status: 404 },
    ];
    for (const c of cases) {
      const reply = await c.call();
      assert.equal(reply.status, c.status, `${c.what}: ${JSON.stringify(reply)}`);
      assert.equal(typeof reply.body.error, 'string', `${c.what}: an error body`);
    }
    // A burst of garbage in parallel, more connections than the admin cap (64) holds: each one is
    // answered 400/401 or shed at the cap (its connection closed), never applied; then the API still serves.
    const burst = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => admin('POST', '/v1/pops/lhr/drain', { body: `{"reason":${'['.repeat(i)}`, token: i % 2 ? null : TOKEN })));
    const answeredBurst = burst.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    assert.ok(answeredBurst.length > 0 && answeredBurst.every((r) => r.status === 400 || r.status === 401), `statuses: ${[...new Set(answeredBurst.map((r) => r.status))]}`);
    const metrics = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    const shed = [...metrics.matchAll(/^popsteer_admin_connections_shed_total\{[^}]*\} (\S+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(shed >= burst.length - answeredBurst.length, `${burst.length - answeredBurst.length} requests unanswered, ${shed} connections shed at the cap`);
    assert.equal((await admin('GET', '/healthz')).status, 200);
  });
  const { pops } = (await admin('GET', '/v1/pops')).body as unknown as { pops: Array<{ id: string; override: unknown }> };
  assert.equal(pops.length, POPS.length);
  assert.deepEqual(pops.filter((p) => p.override !== null), [], 'no refused call set an override');
});

test('with the state file unwritable, a drain still applies in memory and DNS keeps answering', async () => {
  const stats = await underLoad(STEADY, async (loop) => {
    const drained = await admin('POST', '/v1/pops/lhr/drain', { body: JSON.stringify({ reason: 'maintenance' }) });
    assert.equal(drained.status, 200, JSON.stringify(drained));
    await server.waitForLog((l) => l.msg === 'cannot write the health state file; the override applies until restart only');
    await loop.rounds(3);
    const undrained = await admin('POST', '/v1/pops/lhr/undrain', { body: JSON.stringify({ reason: 'done' }) });
    assert.equal(undrained.status, 200, JSON.stringify(undrained));
  });
  assert.ok((stats.labels['www:lhr'] ?? 0) > 0 && (stats.labels['www:ams'] ?? 0) > 0, `www for the UK from London, then elsewhere while drained: ${JSON.stringify(stats.labels)}`);
  // A scrape reuses the health figures for 200 ms: wait (bounded) for one that counts both failed writes.
  let failures = 0;
  for (const started = performance.now(); failures < 2 && performance.now() - started < 10_000;) {
    const metrics = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    failures = Number(/^popsteer_health_state_file_write_failures_total\{[^}]*\} (\S+)/m.exec(metrics)?.[1]);
    if (failures < 2) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(failures >= 2, `state file write failures counted: ${failures}`);
});

test('every PoP down: www fails open, api answers SERVFAIL, never silence', async () => {
  const questions: LoopQuestion[] = [
    { name: 'www.cdn.example', subnet: UK, check: answered },
    { name: 'api.cdn.example', check: (r) => (r.rcode === 'SERVFAIL' ? null : answered(r)) },
    ...STEADY.slice(1),
  ];
  const stats = await underLoad(questions, async (loop) => {
    for (const p of POPS) {
      const reply = await admin('POST', `/v1/pops/${p.id}/force-down`, { body: JSON.stringify({ reason: 'all down test' }) });
      assert.equal(reply.status, 200, JSON.stringify(reply));
    }
    await loop.rounds(5);
    for (const p of POPS) await admin('POST', `/v1/pops/${p.id}/undrain`, { body: JSON.stringify({ reason: 'back' }) });
  });
  assert.ok((stats.labels['api:SERVFAIL'] ?? 0) > 0, `api SERVFAIL while all were down: ${JSON.stringify(stats.labels)}`);
  assert.ok((stats.labels['api:fra'] ?? 0) > 0, `api from Frankfurt before: ${JSON.stringify(stats.labels)}`);
  const { pops } = (await admin('GET', '/v1/pops')).body as unknown as { pops: Array<{ id: string; state: string; override: unknown }> };
  assert.deepEqual(pops.filter((p) => p.override !== null || p.state !== 'up').map((p) => p.id), [], 'every override lifted');
  const client = new TestDnsClient(server.dnsPort);
  try {
    assert.equal(pop(await client.query('api.cdn.example', 'A')), 'fra', 'api back on Frankfurt');
  } finally {
    client.close();
  }
});
