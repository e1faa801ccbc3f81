// Fleet benchmark with five instances (README "Running a fleet", measured):
// a real 3-server JetStream cluster (test/helpers/nats.ts) and five popsteer
// instances with --fleet (lhr, ams, fra, iad, sin), beside five without it
// on the same data, all on loopback. Prints one table:
//
//   - drain → last instance: an override posted to one instance (each round
//     through the next one) until the last of the five applied it, by its
//     "fleet: override applied" log line's own timestamp; and POST → 200
//   - publish → last instance: a policy revision put in the bucket (what
//     `popsteer publish` does once the set is validated) until the last of
//     the five logged "fleet: policy revision applied"
//   - probes per target per interval: HTTP hits counted by the targets
//     themselves over a window, for the fleet and for the plain instances
//     (each group probes its own copy of the targets)
//   - RSS and CPU added by the fleet layer: the mean of the five instances
//     with --fleet minus the mean of the five without, over the same window
//     (started in pairs, one of each, so start-up order favours neither)
//
//   node test/bench/fleet.bench.ts [--rounds 30] [--publishes 8] [--window-s 30]

import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import { encodeRevision, newRevision, newRevisionKey, readConfigFiles } from '../../server/fleet/revision-record.ts';
import { startNatsCluster } from '../helpers/nats.ts';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, publishes: { type: 'string' }, 'window-s': { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 30);
const PUBLISHES = Number(values.publishes ?? 8);
const WINDOW_MS = Number(values['window-s'] ?? 30) * 1000;
const POPS = ['lhr', 'ams', 'fra', 'iad', 'sin'];
const INTERVAL_MS = 1000;
const TOKEN = 'fleet-bench';
const WAIT_MS = 120_000;

/** An HTTP target per PoP on one server; counts the probes each receives. */
async function countingTargets(): Promise<{ server: Server; port: number; hits: Map<string, number> }> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as { port: number }).port, hits };
}

/** A copy of the example geo data whose PoPs are probed over HTTP at `port`, every INTERVAL_MS. */
function geoDataProbing(port: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  cpSync(join(REPO_ROOT, 'geo-data'), dir, { recursive: true });
  writeFileSync(join(dir, 'probes.yaml'), [
    `defaults: { interval: ${INTERVAL_MS}ms, timeout: 900ms, fall: 3, rise: 2 }`,
    'targets:',
    ...POPS.map((pop) => `  ${pop}-edge: { kind: http, host: 127.0.0.1, port: ${port}, path: /${pop} }`),
    'pops:',
    ...POPS.map((pop) => `  ${pop}: { probes: [${pop}-edge] }`),
    '',
  ].join('\n'));
  return dir;
}

/** Resident memory (kB) and CPU time used so far (clock ticks) of a process. */
function usage(pid: number): { rssKb: number; ticks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)![1]);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { rssKb, ticks: Number(fields[11]) + Number(fields[12]) };
}

const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const time = (line: Record<string, unknown>): number => Date.parse(String(line.time));

const fleetTargets = await countingTargets();
const plainTargets = await countingTargets();
const fleetGeo = geoDataProbing(fleetTargets.port);
const plainGeo = geoDataProbing(plainTargets.port);
const hub = await startNatsCluster();
const fleet: StartedServer[] = [];
const plain: StartedServer[] = [];
for (const pop of POPS) {
  const env = { POPSTEER_ADMIN_TOKEN: TOKEN };
  const [f, p] = await Promise.all([
    startServer({ env, args: ['--pop', pop, '--geo-data', fleetGeo, '--fleet', hub.urls, '--fleet-insecure-loopback'] }),
    startServer({ env, args: ['--pop', pop, '--geo-data', plainGeo] }),
  ]);
  fleet.push(f);
  plain.push(p);
}
await Promise.all(fleet.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS)));

// Steady state: probes, heartbeats and watches only.
const before = [...fleet, ...plain].map((s) => usage(s.process.pid!));
const hitsBefore = { fleet: new Map(fleetTargets.hits), plain: new Map(plainTargets.hits) };
await new Promise((r) => setTimeout(r, WINDOW_MS));
const afterUsage = [...fleet, ...plain].map((s) => usage(s.process.pid!));
const ticksPerSecond = 100;
const cpuPercent = afterUsage.map((u, i) => (u.ticks - before[i].ticks) / ticksPerSecond / (WINDOW_MS / 1000) * 100);
const probesPerInterval = (hits: Map<string, number>, was: Map<string, number>): number =>
  mean(POPS.map((pop) => ((hits.get(`/${pop}`) ?? 0) - (was.get(`/${pop}`) ?? 0)) / (WINDOW_MS / INTERVAL_MS)));
const probes = { fleet: probesPerInterval(fleetTargets.hits, hitsBefore.fleet), plain: probesPerInterval(plainTargets.hits, hitsBefore.plain) };
const rss = { fleet: mean(afterUsage.slice(0, 5).map((u) => u.rssKb)) / 1024, plain: mean(afterUsage.slice(5).map((u) => u.rssKb)) / 1024 };
const cpu = { fleet: mean(cpuPercent.slice(0, 5)), plain: mean(cpuPercent.slice(5)) };

// Drains and undrains of mad, each through the next instance.
const ack: number[] = [];
const drained: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const reason = `bench round ${i}`;
  const started = Date.now();
  const answer = await fetch(`http://127.0.0.1:${fleet[i % fleet.length].adminPort}/v1/pops/mad/${i % 2 === 0 ? 'drain' : 'undrain'}`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason }),
  });
  ack.push(Date.now() - started);
  if (answer.status !== 200) throw new Error(await answer.text());
  const lines = await Promise.all(fleet.map((s) => s.waitForLog((l) => l.msg === 'fleet: override applied' && l.reason === reason, WAIT_MS)));
  drained.push(Math.max(...lines.map(time)) - started);
}

// Policy revisions, each waited for everywhere before the next.
const config = mkdtempSync(join(tmpdir(), 'popsteer-bench-policies-'));
cpSync(join(REPO_ROOT, 'policies'), config, { recursive: true });
const zoneFile = join(config, 'zones', 'cdn.example.yaml');
const zone = readFileSync(zoneFile, 'utf8');
const nc = await connect({ servers: hub.urls.split(',') });
const revisions = await nc.jetstream().views.kv('popsteer-revisions');
const published: number[] = [];
for (let i = 0; i < PUBLISHES; i++) {
  writeFileSync(zoneFile, zone.replace('A: [203.0.113.80]', `A: [203.0.113.${100 + i}]`));
  const at = Date.now();
  const revision = await revisions.put(newRevisionKey(), encodeRevision(newRevision(readConfigFiles(config), { author: 'bench', message: `round ${i}`, canary: [], rollbackOf: null, at })));
  const lines = await Promise.all(fleet.map((s) => s.waitForLog((l) => l.msg === 'fleet: policy revision applied' && l.revision === revision, WAIT_MS)));
  published.push(Math.max(...lines.map(time)) - at);
}
await nc.close();

const ms = (xs: number[]): string => `p50 ${quantile(xs, 0.5)} ms, p99 ${quantile(xs, 0.99)} ms`;
const rows: Array<[string, string]> = [
  [`drain/undrain POST → 200 (acknowledged), ${ROUNDS} rounds`, ms(ack)],
  [`drain/undrain POST → last of 5 instances applied, ${ROUNDS} rounds`, ms(drained)],
  [`revision put → last of 5 instances serving it, ${PUBLISHES} revisions`, ms(published)],
  [`probes per target per ${INTERVAL_MS / 1000} s interval, 5 instances with --fleet`, probes.fleet.toFixed(2)],
  [`probes per target per ${INTERVAL_MS / 1000} s interval, 5 instances without`, probes.plain.toFixed(2)],
  [`RSS per instance, with --fleet / without (mean of 5)`, `${rss.fleet.toFixed(1)} MB / ${rss.plain.toFixed(1)} MB: +${(rss.fleet - rss.plain).toFixed(1)} MB`],
  [`CPU per instance over ${WINDOW_MS / 1000} s idle, with --fleet / without`, `${cpu.fleet.toFixed(2)}% / ${cpu.plain.toFixed(2)}%: +${(cpu.fleet - cpu.plain).toFixed(2)}% of a core`],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log('fleet benchmark: 3 hub servers (JetStream R3), 5 popsteer instances with --fleet, 5 without');
for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
await Promise.all([...fleet, ...plain].map((s) => s.stop()));
await hub.stop();
fleetTargets.server.close();
plainTargets.server.close();
process.exit(0);
