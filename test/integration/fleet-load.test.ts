// Declared load fleet-wide, on a real 3-server NATS JetStream cluster: a
// load posted to one instance (POST /v1/load) moves the capacity step's
// share of networks on another instance too, network by network the same
// on both (checked with dig); an instance started later applies the loads
// already in the bucket; a load posted to the other instance brings every
// network back; an unknown PoP is refused without writing anything.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { popOf } from '../helpers/pops.ts';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const TOKEN = 'fleet-load-token';
const WAIT_MS = 60_000;
const MARK = 0.8;
/** Frankfurt's networks checked with dig. */
const NETWORKS = 120;

let hub: NatsCluster;
let config: string;
let servers: StartedServer[] = [];
/** Client networks (NETWORKS of them) the example sends to Frankfurt with no load declared. */
let fraNetworks: string[] = [];

const start = (pop: string): Promise<StartedServer> => startServer({
  env: { POPSTEER_ADMIN_TOKEN: TOKEN }, args: ['--pop', pop, '--config', config, '--fleet', hub.urls, '--fleet-insecure-loopback'],
});
const following = (s: StartedServer): Promise<unknown> => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS);

before(async () => {
  config = copyExampleConfig();
  const www = join(config, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('steps: [healthy, nearest, { first: 1 }]', `steps: [healthy, nearest, { capacity: { mark: ${MARK} } }, { first: 1 }]`));
  hub = await startNatsCluster();
  servers = await Promise.all(['lhr', 'ams'].map(start));
  await Promise.all(servers.map(following));
  // Found with the test client (2,500 queries); the checks below ask with dig.
  const sample = readFileSync(join(REPO_ROOT, 'policies/samples/geolite2-networks.txt'), 'utf8').split('\n').filter((l) => /^\d/.test(l));
  const client = new TestDnsClient(servers[0].dnsPort);
  const replies = await client.queryAll(sample, (n) => client.query('www.cdn.example', 'A', { subnet: n }));
  client.close();
  fraNetworks = sample.filter((_, i) => popOf(firstAnswer(replies[i])) === 'fra').slice(0, NETWORKS);
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await hub?.stop();
});

/** The PoP each network gets for www.cdn.example from this instance: one dig in batch mode (-f), one query per network, with ECS. */
async function answersOf(server: StartedServer, networks: string[]): Promise<string[]> {
  const batch = join(mkdtempSync(join(tmpdir(), 'popsteer-dig-')), 'queries');
  writeFileSync(batch, networks.map((n) => `+short +subnet=${n} www.cdn.example A\n`).join(''));
  const { stdout } = await exec('dig', ['+time=5', '+tries=3', '@127.0.0.1', '-p', String(server.dnsPort), '-f', batch], { maxBuffer: 1 << 20 });
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, networks.length, `one answer per query from dig:\n${stdout}`);
  return lines.map((l) => popOf(/^\d+\.\d+\.\d+\.\d+$/.test(l.trim()) ? l.trim() : null));
}

async function postLoad(server: StartedServer, pop: string, load: number): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.adminPort}/v1/load`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ pop, load }),
  });
}

const loadApplied = (s: StartedServer, pop: string, load: number): Promise<Record<string, unknown>> =>
  s.waitForLog((l) => l.msg === 'fleet: declared load applied' && l.pop === pop && l.load === load, WAIT_MS);

type FleetView = { loads: Array<{ pop: string; load: number; author: string; at: string; via: string }> };

test('a load posted to one instance moves the same networks on another instance (dig)', async () => {
  assert.equal(fraNetworks.length, NETWORKS, 'enough networks go to Frankfurt');
  const quiet = await answersOf(servers[1], fraNetworks);
  assert.ok(quiet.every((p) => p === 'fra'), 'with no load declared, the other instance sends them all to Frankfurt');

  const answer = await postLoad(servers[0], 'fra', 1.6); // (1.6 − 0.8) / 1.6: half of fra's networks move on
  assert.equal(answer.status, 200, await answer.clone().text());
  assert.deepEqual(await answer.json(), { pop: 'fra', load: 1.6 });
  await Promise.all(servers.map((s) => loadApplied(s, 'fra', 1.6)));

  const [writer, other] = await Promise.all(servers.map((s) => answersOf(s, fraNetworks)));
  const moved = other.filter((p) => p !== 'fra').length / fraNetworks.length;
  assert.ok(moved > 0.3 && moved < 0.7, `${(moved * 100).toFixed(0)}% moved on the instance that was not asked`);
  assert.deepEqual(other, writer, 'both instances move the same networks');

  const view = await (await fetch(`http://127.0.0.1:${servers[1].adminPort}/v1/fleet`)).json() as FleetView;
  const fra = view.loads.find((l) => l.pop === 'fra');
  assert.equal(fra?.load, 1.6);
  assert.equal(fra?.via, 'lhr');
  assert.match(String(fra?.author), /^admin API \(.* via lhr\)$/);
});

test('an instance started later applies the loads already declared', async () => {
  const late = await start('fra');
  servers.push(late);
  await following(late);
  await loadApplied(late, 'fra', 1.6);
  const [first, third] = await Promise.all([answersOf(servers[0], fraNetworks), answersOf(late, fraNetworks)]);
  assert.deepEqual(third, first);
  assert.ok(third.some((p) => p !== 'fra'));
});

test('a load posted to another instance brings every network back everywhere', async () => {
  const answer = await postLoad(servers[1], 'fra', 0);
  assert.equal(answer.status, 200, await answer.clone().text());
  await Promise.all(servers.map((s) => loadApplied(s, 'fra', 0)));
  for (const s of servers) {
    const pops = await answersOf(s, fraNetworks);
    assert.ok(pops.every((p) => p === 'fra'), `every network back to Frankfurt on the ${s.adminPort} instance`);
  }
});

test('an unknown PoP is refused (404) and nothing is written; no token, 401', async () => {
  const unknown = await postLoad(servers[0], 'atlantis', 1);
  assert.equal(unknown.status, 404);
  assert.match(((await unknown.json()) as { message: string }).message, /unknown PoP "atlantis"/);
  const anonymous = await fetch(`http://127.0.0.1:${servers[0].adminPort}/v1/load`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pop: 'fra', load: 1 }),
  });
  assert.equal(anonymous.status, 401);
  const view = await (await fetch(`http://127.0.0.1:${servers[2].adminPort}/v1/fleet`)).json() as FleetView;
  assert.deepEqual(view.loads.map((l) => [l.pop, l.load]), [['fra', 0]]);
});
