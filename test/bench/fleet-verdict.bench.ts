// Fleet health verdict with five instances (README "Running a fleet", One
// health verdict): a real 3-server JetStream cluster and five popsteer
// instances (lhr, ams, fra, iad, sin), each PoP with one real HTTP target on
// loopback, probed every second and called down after two failures, with
// the default k = 3 probers per target. Prints:
//
//   - probers per target, against N = 5 when every instance probes every target
//   - a target's death → the last of the five instances logging the fleet
//     verdict "down" (by that log line's own timestamp), over several deaths
//
//   node test/bench/fleet-verdict.bench.ts [--deaths 6]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { fleetViewWhen } from '../helpers/fleet-view.ts';
import { startNatsCluster } from '../helpers/nats.ts';
import { geoDataWithHttpProbes } from '../helpers/probe-geo.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const POPS = ['lhr', 'ams', 'fra', 'iad', 'sin'];
const WAIT_MS = 60_000;
const { values } = parseArgs({ options: { deaths: { type: 'string', default: '6' } } });
const DEATHS = Number(values.deaths);

interface FleetView { health: { observers_live: number; targets: Array<{ target: string; probers: string[]; observed_by: string[] }> } }

/** Geo data whose probes.yaml points each PoP at its own target. */
function geoDataFor(targets: Map<string, Target>, dir: string): string {
  return geoDataWithHttpProbes(join(dir, 'geo-data'), POPS.map((pop) => ({ pop, target: `${pop}-edge`, port: targets.get(pop)!.port, path: '/' })));
}

/** /v1/fleet once every instance is live and every target is reported by exactly its assigned probers. */
function settledView(server: StartedServer): Promise<FleetView> {
  return fleetViewWhen<FleetView>(server, (view) => view.health.observers_live === POPS.length && view.health.targets.length === POPS.length
    && view.health.targets.every((t) => t.observed_by.join() === t.probers.join()), WAIT_MS);
}

/** Kills `pop`'s target; returns ms until the last instance logged the verdict down, then restores it and waits for up. */
async function deathToVerdict(servers: StartedServer[], targets: Map<string, Target>, pop: string): Promise<number> {
  const verdict = (state: string, since: number) => Promise.all(servers.map((s) => s.waitForLog((l) =>
    l.msg === 'health: fleet verdict' && l.target === `${pop}-edge` && l.verdict === state && Date.parse(String(l.time)) >= since, WAIT_MS)));
  const killedAt = Date.now();
  await targets.get(pop)!.kill();
  const down = await verdict('down', killedAt);
  const restoredAt = Date.now();
  await targets.get(pop)!.restore();
  await verdict('up', restoredAt);
  return Math.max(...down.map((l) => Date.parse(String(l.time)))) - killedAt;
}

const dir = mkdtempSync(join(tmpdir(), 'popsteer-fleet-verdict-'));
const hub = await startNatsCluster();
const targets = new Map<string, Target>();
for (const pop of POPS) targets.set(pop, await startHttpTarget());
const geo = geoDataFor(targets, dir);
const servers = await Promise.all(POPS.map((pop) => startServer({ args: ['--pop', pop, '--fleet', hub.urls, '--fleet-insecure-loopback', '--geo-data', geo] })));
try {
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: health from the fleet verdict', WAIT_MS)));
  const view = await settledView(servers[0]);
  const probers = view.health.targets.map((t) => t.probers.length);
  console.log(`probers per target: ${view.health.targets.map((t) => `${t.target} ${t.probers.length}`).join(', ')} (${probers.reduce((a, b) => a + b, 0)} in all; ${POPS.length * POPS.length} when every instance probes every target)`);
  const delays: number[] = [];
  for (let i = 0; i < DEATHS; i++) delays.push(await deathToVerdict(servers, targets, POPS[i % POPS.length]));
  delays.sort((a, b) => a - b);
  console.log(`target death → last of ${POPS.length} instances with the verdict down, ${DEATHS} deaths: median ${delays[Math.floor(delays.length / 2)]} ms, range ${delays[0]}–${delays.at(-1)} ms`);
} finally {
  await Promise.all(servers.map((s) => s.stop()));
  await hub.stop();
  for (const t of targets.values()) await t.kill().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
