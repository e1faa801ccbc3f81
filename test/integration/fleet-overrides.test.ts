// Fleet-wide overrides on a real 3-server NATS JetStream cluster with three
// popsteer instances (lhr, ams, fra): a drain through one instance leaves
// every instance's answers (checked with dig); a killed hub server changes
// nothing; with the whole hub stopped every instance keeps answering from
// the last fleet state, refuses new overrides (503), and once the hub is
// back an override made through any instance is applied everywhere.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { connect } from 'nats';
import { retryWhileElecting, startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { fleetViewWhen } from '../helpers/fleet-view.ts';
import { popOf } from '../helpers/pops.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const TOKEN = 'fleet-test-token';
/** A UK client: lhr unless lhr is out, then ams. */
const UK = '81.2.69.0/24';
const WAIT_MS = 60_000;

let hub: NatsCluster;
let servers: StartedServer[] = [];

before(async () => {
  hub = await startNatsCluster();
  servers = await Promise.all(['lhr', 'ams', 'fra'].map((pop) => startServer({
    env: { POPSTEER_ADMIN_TOKEN: TOKEN },
    args: ['--pop', pop, '--fleet', hub.urls, '--fleet-insecure-loopback'],
  })));
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS)));
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await hub?.stop();
});

async function dig(server: StartedServer): Promise<string> {
  const { stdout } = await exec('dig', ['+short', '+time=2', '+tries=2', `+subnet=${UK}`, '@127.0.0.1', '-p', String(server.dnsPort), 'www.cdn.example', 'A']);
  const address = stdout.trim().split('\n').find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)) ?? null;
  return popOf(address);
}

async function override(server: StartedServer, pop: string, action: string, reason: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.adminPort}/v1/pops/${pop}/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason, author: 'fleet test' }),
  });
}

/** Every instance has applied the override with this reason (its log says so). */
async function appliedEverywhere(reason: string, subject = 'lhr'): Promise<void> {
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: override applied' && l.subject === subject && l.reason === reason, WAIT_MS)));
}

test('a drain through one instance leaves every instance\'s answers, with who and why', async () => {
  for (const s of servers) assert.equal(await dig(s), 'lhr');
  const answer = await override(servers[1], 'lhr', 'drain', 'fleet drain one');
  assert.equal(answer.status, 200, await answer.clone().text());
  await appliedEverywhere('fleet drain one');
  for (const s of servers) assert.equal(await dig(s), 'ams', `answer of ${s.adminPort}`);
  const pops = await (await fetch(`http://127.0.0.1:${servers[2].adminPort}/v1/pops`)).json() as { pops: Array<{ id: string; override: { kind: string; author?: string } | null }> };
  const lhr = pops.pops.find((p) => p.id === 'lhr')!;
  assert.equal(lhr.override?.kind, 'drain');
  assert.match(String(lhr.override?.author), /^fleet test \(.* via ams\)$/);
});

test('GET /v1/fleet and `popsteer fleet status` list every instance; the connected gauge is 1', async () => {
  type View = { connected: boolean; instances: Array<{ pop: string; connected: boolean; self: boolean }>; overrides: Array<{ subject: string; action: string }> };
  // Heartbeats arrive within a couple of seconds: wait for all three.
  const view = await fleetViewWhen<View>(servers[0], (v) => v.instances.length === 3);
  assert.equal(view.connected, true);
  assert.deepEqual(view.instances.map((i) => i.pop), ['ams', 'fra', 'lhr']);
  assert.ok(view.instances.every((i) => i.connected));
  assert.deepEqual(view.instances.filter((i) => i.self).map((i) => i.pop), ['lhr']);
  assert.ok(view.overrides.some((o) => o.subject === 'lhr' && o.action === 'drain'));
  const cli = await runCli(['fleet', 'status', '--admin', `127.0.0.1:${servers[0].adminPort}`]);
  assert.equal(cli.code, 0, cli.stderr);
  for (const pop of ['lhr', 'ams', 'fra']) assert.match(cli.stdout, new RegExp(`^\\s*${pop}\\s+\\S+\\s+connected`, 'm'));
  const metrics = await (await fetch(`http://127.0.0.1:${servers[0].adminPort}/metrics`)).text();
  assert.match(metrics, /^popsteer_fleet_connected(\{[^}]*\})? 1$/m);
});

test('`popsteer pop undrain` through another instance lifts it everywhere', async () => {
  const r = await runCli(['pop', 'undrain', 'lhr', '--reason', 'fleet undrain one', '--admin', `127.0.0.1:${servers[2].adminPort}`], { env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  assert.equal(r.code, 0, r.stderr);
  await appliedEverywhere('fleet undrain one');
  for (const s of servers) assert.equal(await dig(s), 'lhr');
});

test('an expiry is one absolute time: every instance lifts the drain at the same moment', async () => {
  const answer = await fetch(`http://127.0.0.1:${servers[0].adminPort}/v1/pops/lhr/drain`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'fleet drain for 3s', expires: '3s' }),
  });
  assert.equal(answer.status, 200, await answer.clone().text());
  await appliedEverywhere('fleet drain for 3s');
  const expiries = await Promise.all(servers.map(async (s) => {
    const pops = await (await fetch(`http://127.0.0.1:${s.adminPort}/v1/pops`)).json() as { pops: Array<{ id: string; override: { expires: string | null } | null }> };
    return pops.pops.find((p) => p.id === 'lhr')!.override?.expires ?? null;
  }));
  assert.ok(expiries[0] !== null);
  assert.deepEqual(expiries, [expiries[0], expiries[0], expiries[0]]);
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'health override expired' && l.subject === 'lhr', WAIT_MS)));
  for (const s of servers) assert.equal(await dig(s), 'lhr');
});

/**
 * Resolves once every popsteer stream has a leader again (asked of a surviving server). A write during the
 * hub's own election is retried for 6 s, then answered 503; on a loaded machine the election alone can take
 * longer, so the override is made once the hub has recovered, as an operator retrying would.
 */
async function leadersElected(survivor: string): Promise<void> {
  const nc = await connect({ servers: survivor });
  try {
    for (const bucket of ['overrides', 'instances', 'observations', 'revisions', 'load']) {
      await retryWhileElecting(async () => {
        const jsm = await nc.jetstreamManager({ timeout: 5000 });
        const info = await jsm.streams.info(`KV_popsteer-${bucket}`);
        if (!info.cluster?.leader) throw new Error(`KV_popsteer-${bucket}: no leader yet`);
      });
    }
  } finally {
    await nc.close();
  }
}

test('one hub server killed changes nothing', async () => {
  await hub.nodes[0].stop('SIGKILL');
  try {
    for (const s of servers) assert.equal(await dig(s), 'lhr', 'answers go on while the hub elects new leaders');
    await leadersElected(hub.nodes[1].url);
    const answer = await override(servers[0], 'lhr', 'force-down', 'fleet force-down with a hub server gone');
    assert.equal(answer.status, 200, await answer.clone().text());
    await appliedEverywhere('fleet force-down with a hub server gone');
    for (const s of servers) assert.equal(await dig(s), 'ams');
  } finally {
    await hub.nodes[0].start();
  }
});

test('the whole hub stopped: answers go on from the last fleet state; an override after it returns applies everywhere', async () => {
  const disconnected = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: disconnected; answering from the last known fleet state', WAIT_MS));
  await Promise.all(hub.nodes.map((n) => n.stop('SIGTERM')));
  await Promise.all(disconnected);
  for (const s of servers) assert.equal(await dig(s), 'ams', 'the force-down holds while the hub is gone');
  const refused = await override(servers[1], 'lhr', 'undrain', 'during the outage');
  assert.equal(refused.status, 503);
  assert.equal((await refused.json() as { error: string }).error, 'fleet_unavailable');
  const metrics = await (await fetch(`http://127.0.0.1:${servers[1].adminPort}/metrics`)).text();
  assert.match(metrics, /^popsteer_fleet_connected(\{[^}]*\})? 0$/m);

  const following = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS));
  await Promise.all(hub.nodes.map((n) => n.start()));
  await Promise.all(following);
  // Connected is not elected: a cold-started hub elects its stream leaders after the clients are back.
  await leadersElected(hub.nodes[0].url);
  const answer = await override(servers[2], 'lhr', 'undrain', 'fleet undrain after the outage');
  assert.equal(answer.status, 200, await answer.clone().text());
  await appliedEverywhere('fleet undrain after the outage');
  for (const s of servers) assert.equal(await dig(s), 'lhr');
});
