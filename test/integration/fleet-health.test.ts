// One health verdict for the fleet, on a real 3-server NATS JetStream
// cluster with four popsteer instances (lhr, ams, fra, iad) probing real
// HTTP targets on loopback. Each instance reaches the targets through its
// own HTTP relay (its "vantage point"): killing a relay cuts that instance
// off from every target while the others still see them. With 2 probers per
// target (plus the target's own PoP) no target is probed by all four.
// Scenarios: a killed target is seen down by its probers and every
// instance's answers change; an observer cut off is left out and nothing
// fails over; the hub stopped: answers go on, every instance falls back to
// its own probes after the grace, and follows the verdict again once the
// hub is back.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { fleetViewWhen } from '../helpers/fleet-view.ts';
import { popOf } from '../helpers/pops.ts';
import { geoDataWithHttpProbes } from '../helpers/probe-geo.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
/** A UK client: lhr unless lhr is out, then ams. */
const UK = '81.2.69.0/24';
const WAIT_MS = 60_000;
const POPS = ['lhr', 'ams', 'fra', 'iad'];
const TARGET_POPS = ['lhr', 'ams', 'fra'];
const PROBERS = 2;

let hub: NatsCluster;
const targets = new Map<string, Target>();
const relays = new Map<string, Target>();
let servers: StartedServer[] = [];

/** An HTTP relay for one instance: GET /<pop> is passed on to that PoP's target; a target that does not answer is a 502. */
function relay(): Promise<Target> {
  return startHttpTarget((req, res) => {
    const port = targets.get((req.url ?? '').slice(1))?.port;
    const upstream = request({ host: '127.0.0.1', port, path: '/', agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502).end();
      answer.resume();
    });
    upstream.on('error', () => res.writeHead(502).end('target unreachable\n'));
    upstream.end();
  });
}

/** A copy of the example geo data whose probes.yaml reaches every target through `via`. */
function geoDataVia(via: Target): string {
  const probes = TARGET_POPS.map((pop) => ({ pop, target: `${pop}-edge`, port: via.port, path: `/${pop}` }));
  return geoDataWithHttpProbes(mkdtempSync(join(tmpdir(), 'popsteer-geo-')), probes);
}

before(async () => {
  hub = await startNatsCluster();
  for (const pop of TARGET_POPS) targets.set(pop, await startHttpTarget());
  for (const pop of POPS) relays.set(pop, await relay());
  servers = await Promise.all(POPS.map((pop) => startServer({
    args: ['--pop', pop, '--fleet', hub.urls, '--fleet-insecure-loopback', '--geo-data', geoDataVia(relays.get(pop)!),
      '--fleet-probers', String(PROBERS), '--fleet-grace', '3s'],
  })));
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: health from the fleet verdict', WAIT_MS)));
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await hub?.stop();
  for (const t of [...targets.values(), ...relays.values()]) await t.kill().catch(() => {});
});

async function dig(server: StartedServer): Promise<string> {
  const { stdout } = await exec('dig', ['+short', '+time=2', '+tries=2', `+subnet=${UK}`, '@127.0.0.1', '-p', String(server.dnsPort), 'www.cdn.example', 'A']);
  return popOf(stdout.trim().split('\n').find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l)) ?? null);
}

interface FleetHealthView {
  source: 'fleet' | 'local';
  observers_live: number;
  probers: number;
  targets: Array<{ target: string; state: string; evidence: string; probers: string[]; observed_by: string[]; probed_here: boolean }>;
}
const fleetHealth = async (s: StartedServer): Promise<FleetHealthView> =>
  ((await (await fetch(`http://127.0.0.1:${s.adminPort}/v1/fleet`)).json()) as { health: FleetHealthView }).health;

/** `target` in a server's /v1/fleet once `settled` holds of it (asked again every 200 ms, for a minute at most). */
async function settledTarget(s: StartedServer, target: string, settled: (t: FleetHealthView['targets'][number]) => boolean): Promise<FleetHealthView['targets'][number]> {
  const find = (v: { health: FleetHealthView }) => v.health.targets.find((t) => t.target === target);
  const found = find(await fleetViewWhen<{ health: FleetHealthView }>(s, (v) => { const t = find(v); return t !== undefined && settled(t); }));
  assert.ok(found !== undefined && settled(found), `${target} never settled: ${JSON.stringify(found)}`);
  return found;
}

/** The verdict on `target` in a server's log: resolves on the first "health: fleet verdict" line saying `state` after `from`. */
function verdictLogged(s: StartedServer, target: string, state: 'up' | 'down', from: number): Promise<Record<string, unknown>> {
  return s.waitForLog((l) => l.msg === 'health: fleet verdict' && l.target === target && l.verdict === state && Date.parse(String(l.time)) >= from, WAIT_MS);
}

test('each target is probed by its 2 rendezvous probers plus its own PoP, not by every instance; all agree on who', async () => {
  // Heartbeats and first observations arrive within a few seconds: wait for all four, bounded.
  const settled = (v: FleetHealthView): boolean => v.observers_live === POPS.length && v.targets.length === TARGET_POPS.length
    && v.targets.every((t) => t.state === 'up' && t.observed_by.join() === t.probers.join());
  const views = (await Promise.all(servers.map((s) => fleetViewWhen<{ health: FleetHealthView }>(s, (v) => settled(v.health))))).map((v) => v.health);
  assert.ok(views.every(settled), JSON.stringify(views));
  for (const v of views) assert.deepEqual(v.targets.map((t) => [t.target, t.probers]), views[0].targets.map((t) => [t.target, t.probers]));
  for (const t of views[0].targets) {
    assert.ok(t.probers.includes(t.target.replace('-edge', '')), `${t.target} is probed by its own PoP`);
    assert.ok(t.probers.length >= PROBERS && t.probers.length <= PROBERS + 1 && t.probers.length < POPS.length, `${t.target}: ${t.probers.join(', ')}`);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${servers[0].adminPort}/metrics`)).text();
  assert.match(metrics, /^popsteer_fleet_observers_live(\{[^}]*\})? 4$/m);
  assert.match(metrics, /^popsteer_fleet_local_health(\{[^}]*\})? 0$/m);
  for (const s of servers) assert.equal(await dig(s), 'lhr');
});

test('a real target killed is seen down by its probers, and every instance\'s answers change', async () => {
  const from = Date.now();
  await targets.get('lhr')!.kill();
  try {
    await seenDownEverywhere(from);
  } finally {
    const back = Date.now();
    await targets.get('lhr')!.restore();
    await Promise.all(servers.map((s) => verdictLogged(s, 'lhr-edge', 'up', back)));
  }
  for (const s of servers) assert.equal(await dig(s), 'lhr');
});

async function seenDownEverywhere(from: number): Promise<void> {
  await Promise.all(servers.map((s) => verdictLogged(s, 'lhr-edge', 'down', from)));
  for (const s of servers) assert.equal(await dig(s), 'ams', `answer of ${s.adminPort}`);
  // The verdict turns down at a quorum of probers; the evidence settles once every prober has seen the death.
  const lhr = await settledTarget(servers[3], 'lhr-edge', (t) => t.evidence === `down: seen down by ${t.probers.join(', ')}`);
  const pops = await (await fetch(`http://127.0.0.1:${servers[3].adminPort}/v1/pops`)).json() as { pops: Array<{ id: string; state: string; targets: Array<{ verdict: { evidence: string } | null }> }> };
  const pop = pops.pops.find((p) => p.id === 'lhr')!;
  assert.equal(pop.state, 'down');
  assert.equal(pop.targets[0].verdict?.evidence, lhr.evidence);
  const explain = await (await fetch(`http://127.0.0.1:${servers[3].adminPort}/v1/explain?name=www.cdn.example&client=${encodeURIComponent(UK)}`)).text();
  assert.ok(explain.includes(lhr.evidence), explain);
  const cli = await runCli(['explain', '--live', '--admin', `127.0.0.1:${servers[3].adminPort}`, '--name', 'www.cdn.example', '--client', UK]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.ok(cli.stdout.includes(`lhr-edge ${lhr.evidence}`), cli.stdout);
  const status = await runCli(['fleet', 'status', '--admin', `127.0.0.1:${servers[3].adminPort}`]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^health: from the fleet verdict \(\d observers live\)$/m);
  assert.ok(status.stdout.split('\n').some((l) => l.trim().startsWith(`lhr-edge`) && l.includes(`${lhr.evidence} (probed by ${lhr.probers.join(', ')})`)), status.stdout);
}

test('an observer cut off from every target is left out: nothing fails over', async () => {
  // The instance that probes the most targets: at least 2 of them (3 targets × ≥ 2 probers over 4 instances).
  const views = await Promise.all(servers.map(fleetHealth));
  const counts = views.map((v) => v.targets.filter((t) => t.probed_here).length);
  const cut = counts.indexOf(Math.max(...counts));
  assert.ok(counts[cut] >= 2);
  const pop = POPS[cut];
  const excluded = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: observer excluded' && l.observer === pop && l.why === 'cut off', WAIT_MS));
  await relays.get(pop)!.kill();
  try {
    await Promise.all(excluded);
    for (const s of servers) assert.equal(await dig(s), 'lhr', `answer of ${s.adminPort}`);
    const probed = views[cut].targets.find((t) => t.probed_here)!.target;
    const after = (await fleetHealth(servers[0])).targets.find((t) => t.target === probed)!;
    assert.equal(after.state, 'up');
    assert.match(after.evidence, new RegExp(`^up: seen up by [a-z, ]+; ${pop} excluded \\(cut off\\)$`));
    // Every instance is listed with its view where it differs from the verdict: the cut-off one sees targets down.
    const fleet = await (await fetch(`http://127.0.0.1:${servers[0].adminPort}/v1/fleet`)).json() as { instances: Array<{ pop: string; disagrees_with_verdict: Array<{ sees: string; verdict: string }> }> };
    assert.ok(fleet.instances.find((i) => i.pop === pop)!.disagrees_with_verdict.some((d) => d.sees === 'down' && d.verdict === 'up'), JSON.stringify(fleet.instances));
    assert.deepEqual(fleet.instances.filter((i) => i.pop !== pop).flatMap((i) => i.disagrees_with_verdict), []);
  } finally {
    const included = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: observer counts again' && l.observer === pop, WAIT_MS));
    await relays.get(pop)!.restore();
    await Promise.all(included);
  }
});

test('the hub stopped: answers go on, local probes after the grace, the fleet verdict again once it is back', async () => {
  const local = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: out of reach for longer than the grace; health from local probes until it is back', WAIT_MS));
  await Promise.all(hub.nodes.map((n) => n.stop('SIGTERM')));
  try {
    await localAfterTheGrace(local);
  } finally {
    const back = servers.map((s) => s.waitForNextLog((l) => l.msg === 'fleet: health from the fleet verdict' && l.after === 'partition', WAIT_MS));
    await Promise.all(hub.nodes.map((n) => n.start()));
    await Promise.all(back);
  }
  for (const s of servers) {
    assert.equal((await fleetHealth(s)).source, 'fleet');
    assert.equal(await dig(s), 'lhr');
  }
});

async function localAfterTheGrace(local: Array<Promise<unknown>>): Promise<void> {
  await Promise.all(local);
  for (const s of servers) {
    assert.equal(await dig(s), 'lhr');
    assert.equal((await fleetHealth(s)).source, 'local');
    const fitness = await fetch(`http://127.0.0.1:${s.adminPort}/v1/fitness`);
    assert.equal(fitness.status, 200, await fitness.text());
  }
  const metrics = await (await fetch(`http://127.0.0.1:${servers[1].adminPort}/metrics`)).text();
  assert.match(metrics, /^popsteer_fleet_local_health(\{[^}]*\})? 1$/m);
}
