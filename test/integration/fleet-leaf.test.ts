// A PoP-local leaf node with mirrors of the fleet's buckets (README "Running
// a fleet", topology): a real 3-server hub cluster (JetStream domain "hub")
// and a leaf nats-server (its own domain) holding a mirror of each popsteer
// bucket. lhr's instance connects only to its leaf, ams's to the hub. A
// drain through ams reaches lhr through the mirror; a drain through lhr is
// written through the leaf to the hub. With the leaf frozen (the PoP cut off
// from the hub), a drain through ams is accepted and reaches lhr once the
// leaf resumes. Then the whole hub is stopped: lhr
// keeps answering with the drains, and an lhr instance started afresh (a new
// state file: nothing on disk) still reads them from the leaf's mirror.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { connect } from 'nats';
import { startNatsCluster, startNatsLeaf, type NatsCluster, type NatsNode, retryWhileElecting } from '../helpers/nats.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const TOKEN = 'fleet-leaf-token';
const WAIT_MS = 60_000;
/** A UK client: lhr unless lhr is out, then ams; ams out too: fra. */
const UK = '81.2.69.0/24';
/** Each bucket popsteer reads, with the settings popsteer gives it on the hub. */
const BUCKETS: Array<[string, { history: number; ttl?: number }]> = [
  ['popsteer-overrides', { history: 64 }], ['popsteer-instances', { history: 1, ttl: 24 * 3600 * 1000 }],
  ['popsteer-observations', { history: 1, ttl: 24 * 3600 * 1000 }],
  ['popsteer-revisions', { history: 1 }], ['popsteer-load', { history: 16 }],
];

let hub: NatsCluster;
let leaf: NatsNode;
let lhr: StartedServer;
let ams: StartedServer;
const started: StartedServer[] = [];

const instance = async (pop: string, fleet: string): Promise<StartedServer> => {
  const server = await startServer({
    env: { POPSTEER_ADMIN_TOKEN: TOKEN },
    args: ['--pop', pop, '--fleet', fleet, '--fleet-insecure-loopback', '--state-file', join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json')],
  });
  started.push(server);
  await server.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS);
  return server;
};

before(async () => {
  hub = await startNatsCluster({ domain: 'hub', leafnodes: true });
  leaf = await startNatsLeaf(hub, { domain: 'lhr' });
  await leaf.waitForOutput(/Leafnode connection created/);
  // The fleet's administrator makes the buckets on the hub, then a mirror of each on the leaf.
  const onHub = await connect({ servers: hub.urls.split(',') });
  for (const [bucket, limits] of BUCKETS) await retryWhileElecting(() => onHub.jetstream().views.kv(bucket, { ...limits, replicas: 3 }));
  await onHub.close();
  const onLeaf = await connect({ servers: leaf.url });
  for (const [bucket, limits] of BUCKETS) await retryWhileElecting(() => onLeaf.jetstream().views.kv(bucket, { ...limits, mirror: { name: bucket, domain: 'hub' } }));
  await onLeaf.close();
  [lhr, ams] = await Promise.all([instance('lhr', leaf.url), instance('ams', hub.urls)]);
});
after(async () => {
  await Promise.all(started.map((s) => s.stop()));
  await leaf?.stop('SIGKILL');
  await hub?.stop();
});

async function dig(server: StartedServer): Promise<string> {
  const { stdout } = await exec('dig', ['+short', '+time=5', '+tries=3', `+subnet=${UK}`, '@127.0.0.1', '-p', String(server.dnsPort), 'www.cdn.example', 'A']);
  return popOf(stdout.trim().split('\n').find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)) ?? null);
}

async function drain(server: StartedServer, pop: string, reason: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.adminPort}/v1/pops/${pop}/drain`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason }),
  });
}

const applied = (s: StartedServer, subject: string, reason: string): Promise<Record<string, unknown>> =>
  s.waitForLog((l) => l.msg === 'fleet: override applied' && l.subject === subject && l.reason === reason, WAIT_MS);

test('through the leaf: a drain at the hub reaches the PoP through the mirror, and one at the PoP reaches the hub', async () => {
  assert.equal(await dig(lhr), 'lhr');
  const atHub = await drain(ams, 'lhr', 'drained at the hub');
  assert.equal(atHub.status, 200, await atHub.clone().text());
  await applied(lhr, 'lhr', 'drained at the hub');
  assert.equal(await dig(lhr), 'ams');

  const atPop = await drain(lhr, 'ams', 'drained at the PoP');
  assert.equal(atPop.status, 200, await atPop.clone().text());
  await Promise.all([applied(ams, 'ams', 'drained at the PoP'), applied(lhr, 'ams', 'drained at the PoP')]);
  assert.equal(await dig(ams), 'fra');
  assert.equal(await dig(lhr), 'fra');
});

test('the leaf cut off from the hub (frozen): an override made meanwhile on the hub side is applied at the PoP once the link is back', async () => {
  const reason = 'drained while the PoP was cut off';
  leaf.freeze();
  try {
    const atHub = await drain(ams, 'sin', reason);
    assert.equal(atHub.status, 200, await atHub.clone().text());
    await applied(ams, 'sin', reason);
    // The leaf holds lhr's only link to the fleet: nothing can have reached it.
    assert.ok(!lhr.logs.some((l) => l.msg === 'fleet: override applied' && l.reason === reason), 'not applied across the cut');
  } finally {
    leaf.thaw();
  }
  await applied(lhr, 'sin', reason);
  const pops = (await (await fetch(`http://127.0.0.1:${lhr.adminPort}/v1/pops`)).json()) as { pops: Array<{ id: string; override?: { kind: string; reason: string } }> };
  const sin = pops.pops.find((p) => p.id === 'sin');
  assert.deepEqual([sin?.override?.kind, sin?.override?.reason], ['drain', reason]);
});

test('the hub stopped: the PoP keeps answering, and an instance started afresh reads the fleet state from the leaf\'s mirror', async () => {
  await hub.stop();
  assert.equal(await dig(lhr), 'fra', 'the drains hold while the hub is gone');
  await lhr.stop();
  // A new state file: whatever it applies comes from the fleet, here the leaf.
  const fresh = await instance('lhr', leaf.url);
  await Promise.all([applied(fresh, 'lhr', 'drained at the hub'), applied(fresh, 'ams', 'drained at the PoP')]);
  assert.equal(await dig(fresh), 'fra');
  // Writes need the hub: refused (503), not lost silently.
  const refused = await drain(fresh, 'fra', 'no hub');
  assert.equal(refused.status, 503, await refused.clone().text());
});
