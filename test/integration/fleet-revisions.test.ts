// Versioned policy sets on a real 3-server NATS JetStream cluster with three
// popsteer instances (lhr, ams, fra), checked with dig: a published revision
// reaches every instance; publish refuses a set serve would refuse (exit 2,
// file and line); a revision that fails to compile on the instances (put in
// the bucket directly, past publish) is reported by each and the previous one
// keeps serving; rollback; a canary revision changes only the canary PoP's
// answers until promoted; an instance restarted while the hub is down serves
// the revision it kept on disk.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { connect } from 'nats';
import { encodeRevision, newRevision, newRevisionKey, readConfigFiles } from '../../server/fleet/revision-record.ts';
import { startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { fleetViewWhen } from '../helpers/fleet-view.ts';
import { REPO_ROOT, runCli, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const WAIT_MS = 60_000;
const POPS = ['lhr', 'ams', 'fra'];
const GEO = join(REPO_ROOT, 'geo-data');

let hub: NatsCluster;
let servers: StartedServer[] = [];
const stateFiles = POPS.map(() => join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json'));
/** The policy set the tests publish: a copy of the example, with the `status` name's address changed per revision. */
const configDir = join(mkdtempSync(join(tmpdir(), 'popsteer-revisions-')), 'policies');
const zoneFile = join(configDir, 'zones', 'cdn.example.yaml');
const exampleZone = readFileSync(join(REPO_ROOT, 'policies', 'zones', 'cdn.example.yaml'), 'utf8');

const serverArgs = (i: number): string[] => ['--pop', POPS[i], '--fleet', hub.urls, '--fleet-insecure-loopback', '--state-file', stateFiles[i]];

before(async () => {
  cpSync(join(REPO_ROOT, 'policies'), configDir, { recursive: true });
  hub = await startNatsCluster();
  servers = await Promise.all(POPS.map((_, i) => startServer({ args: serverArgs(i) })));
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS)));
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await hub?.stop();
});

async function statusAddress(server: StartedServer): Promise<string> {
  const { stdout } = await exec('dig', ['+short', '+time=2', '+tries=2', '@127.0.0.1', '-p', String(server.dnsPort), 'status.cdn.example', 'A']);
  return stdout.trim();
}

/** The set with `status` at `address`. */
function setStatusAddress(address: string): void {
  writeFileSync(zoneFile, exampleZone.replace('A: [203.0.113.80]', `A: [${address}]`));
}

const fleetArgs = (): string[] => ['--config', configDir, '--geo-data', GEO, '--fleet', hub.urls, '--fleet-insecure-loopback'];

/** Runs `popsteer publish` (or rollback …) and returns the revision number it printed. */
async function revisionFrom(args: string[]): Promise<number> {
  const r = await runCli([...args, ...fleetArgs()]);
  assert.equal(r.code, 0, r.stderr);
  const match = /revision (\d+):/.exec(r.stdout);
  assert.ok(match, r.stdout);
  return Number(match[1]);
}

const applied = (s: StartedServer, revision: number): Promise<Record<string, unknown>> =>
  s.waitForLog((l) => l.msg === 'fleet: policy revision applied' && l.revision === revision, WAIT_MS);

type FleetView = { instances: Array<{ pop: string; revision: number | null; revision_failed: { revision: number; errors: string[] } | null }> };


let first = 0;

test('a published revision reaches every instance: answers, GET /v1/fleet, fleet status and the metric show it', async (t) => {
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.80');
  setStatusAddress('203.0.113.81');
  first = await revisionFrom(['publish', '--message', 'status to .81', '--author', 'test']);
  const lines = await Promise.all(servers.map((s) => applied(s, first)));
  // From the record made (validated, before connecting) to the last instance serving it (README "Publishing policy sets").
  t.diagnostic(`publish → last of 3 instances serving: ${Math.max(...lines.map((l) => Date.parse(String(l.time)) - Date.parse(String(l.published))))} ms`);
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.81');
  // Every instance learns the others' revisions from their heartbeats (every 2 s): wait for each view, the CLI's included.
  const views = await Promise.all(servers.map((s) => fleetViewWhen<FleetView>(s, (v) => v.instances.length === 3 && v.instances.every((i) => i.revision === first))));
  for (const view of views) assert.deepEqual(view.instances.map((i) => [i.pop, i.revision]), [['ams', first], ['fra', first], ['lhr', first]]);
  const cli = await runCli(['fleet', 'status', '--admin', `127.0.0.1:${servers[1].adminPort}`]);
  assert.equal(cli.code, 0, cli.stderr);
  for (const pop of POPS) assert.match(cli.stdout, new RegExp(`^\\s*${pop}\\s+\\S+\\s+connected\\s+revision ${first},`, 'm'));
  const metrics = await (await fetch(`http://127.0.0.1:${servers[2].adminPort}/metrics`)).text();
  assert.match(metrics, new RegExp(`^popsteer_fleet_revision_served(\\{[^}]*\\})? ${first}$`, 'm'));
});

test('publish refuses a set serve would refuse: exit 2 naming file and line, nothing stored', async () => {
  writeFileSync(zoneFile, exampleZone.replace('A: [203.0.113.80]', 'A: [203.0.113.999]'));
  const r = await runCli(['publish', ...fleetArgs()]);
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stderr, /zones\/cdn\.example\.yaml:\d+:\d+: POPSTEER_ERR_/);
  // Read from the bucket itself (a `popsteer history` run costs seconds; the rollback test runs one).
  const nc = await connect({ servers: hub.urls.split(',') });
  const status = await (await nc.jetstream().views.kv('popsteer-revisions')).status();
  await nc.close();
  assert.equal(status.values, 1, 'only the first revision is stored');
});

test('a revision that fails to compile on the instances is reported by each; the previous one keeps serving', async () => {
  // Past publish's check, as a newer popsteer or another writer could: a zone serve refuses.
  writeFileSync(zoneFile, exampleZone.replace('A: [203.0.113.80]', 'A: [not-an-address]'));
  const record = newRevision(readConfigFiles(configDir), { author: 'direct put', message: 'broken', canary: [], rollbackOf: null, at: Date.now() });
  const nc = await connect({ servers: hub.urls.split(',') });
  const bad = await (await nc.jetstream().views.kv('popsteer-revisions')).put(newRevisionKey(), encodeRevision(record));
  await nc.close();
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: policy revision refused here; the previous policy set keeps serving' && l.revision === bad, WAIT_MS)));
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.81');
  const view = await fleetViewWhen<FleetView>(servers[2], (v) => v.instances.every((i) => i.revision_failed?.revision === bad));
  for (const i of view.instances) {
    assert.equal(i.revision, first, i.pop);
    assert.equal(i.revision_failed?.revision, bad, i.pop);
    assert.match(i.revision_failed!.errors.join('\n'), /cdn\.example\.yaml:\d+/);
  }
});

test('rollback publishes an old revision again as the newest', async () => {
  setStatusAddress('203.0.113.82');
  const second = await revisionFrom(['publish', '--message', 'status to .82']);
  await Promise.all(servers.map((s) => applied(s, second)));
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.82');
  const back = await revisionFrom(['rollback', String(first)]);
  assert.ok(back > second);
  await Promise.all(servers.map((s) => applied(s, back)));
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.81');
  const history = await runCli(['history', ...fleetArgs()]);
  assert.match(history.stdout, new RegExp(`^${back}\\s.*rollback to ${first}`, 'm'));
});

test('a canary revision changes only the canary PoP\'s answers until promoted', async () => {
  setStatusAddress('203.0.113.83');
  const canary = await revisionFrom(['publish', '--canary', 'lhr', '--message', 'canary .83']);
  await applied(servers[0], canary);
  assert.equal(await statusAddress(servers[0]), '203.0.113.83');
  // lhr's heartbeat names the canary while the others, which read the same record, still serve the rollback.
  const view = await fleetViewWhen<FleetView>(servers[1], (v) => v.instances.find((i) => i.pop === 'lhr')?.revision === canary);
  assert.equal(view.instances.find((i) => i.pop === 'lhr')?.revision, canary);
  for (const s of servers.slice(1)) {
    assert.equal(await statusAddress(s), '203.0.113.81');
    assert.ok(!s.logs.some((l) => l.msg === 'fleet: policy revision applied' && l.revision === canary));
  }
  const r = await runCli(['promote', String(canary), ...fleetArgs()]);
  assert.equal(r.code, 0, r.stderr);
  await Promise.all(servers.slice(1).map((s) => applied(s, canary)));
  for (const s of servers) assert.equal(await statusAddress(s), '203.0.113.83');
});

test('restarted with the hub down, an instance serves the revision it kept on disk', async () => {
  const served = (await fleetViewWhen<FleetView>(servers[2], () => true)).instances.find((i) => i.pop === 'fra')!.revision;
  await servers[2].stop();
  await Promise.all(hub.nodes.map((n) => n.stop('SIGTERM')));
  servers[2] = await startServer({ args: serverArgs(2) });
  const kept = await servers[2].waitForLog((l) => l.msg === 'fleet: serving the policy revision kept on disk until the fleet says otherwise', WAIT_MS);
  assert.equal(kept.revision, served);
  assert.equal(await statusAddress(servers[2]), '203.0.113.83');
  const metrics = await (await fetch(`http://127.0.0.1:${servers[2].adminPort}/metrics`)).text();
  assert.match(metrics, new RegExp(`^popsteer_fleet_revision_served(\\{[^}]*\\})? ${served}$`, 'm'));
});
