// Side-by-side throughput: popsteer against gdnsd, Knot and PowerDNS on the
// same scenario, the same query files and the same dnsperf settings.
//
//   node test/bench/peers/run-peers.ts          full run (15 s per run, 2 rounds)
//   BENCH_SECONDS=3 node test/bench/peers/run-peers.ts     smoke run
//   BENCH_CALIBRATE=1 node test/bench/peers/run-peers.ts   compare dnsperf settings
//
// Environment: BENCH_SECONDS (15), BENCH_ROUNDS (2), BENCH_LATENCY_SECONDS
// (min(10, BENCH_SECONDS)), BENCH_SERVERS (popsteer,gdnsd,knot,powerdns),
// BENCH_SETS (ecs,no-ecs,mixed), BENCH_NETWORKS (3500), BENCH_AGREEMENT (200),
// BENCH_CLIENTS / BENCH_THREADS / BENCH_OUTSTANDING (dnsperf -c/-T/-q),
// BENCH_SKIP_INSTALL=1, BENCH_OUT (test-results/bench), BENCH_POPSTEER_WORKERS,
// BENCH_WARMUP_SECONDS (2: unmeasured load on each fresh server, dnsperf.ts).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { askAll, spreadSample, summarize, type AgreementSample, type AgreementSummary } from './agreement.ts';
import { benchLoad, envNumber, runDnsperf, warmUp, warmupSeconds, type DnsperfResult, type LoadSettings } from './dnsperf.ts';
import { ensurePackages } from './install.ts';
import { writeQuerySets, type QuerySets } from './queries.ts';
import { loadScenario, REPO_ROOT, type Scenario } from './scenario.ts';
import { ALL_SERVERS, residentKiB, startBenchServer, type RunningServer, type ServerDefinition } from './servers.ts';

const env = process.env;
const intEnv = (name: string, fallback: number): number => envNumber(env, name, fallback);

const SECONDS = intEnv('BENCH_SECONDS', 15);
const ROUNDS = intEnv('BENCH_ROUNDS', 2);
const LATENCY_SECONDS = intEnv('BENCH_LATENCY_SECONDS', Math.min(10, SECONDS));
const NETWORKS = intEnv('BENCH_NETWORKS', 3500);
const AGREEMENT_SAMPLES = intEnv('BENCH_AGREEMENT', 200);
const LOAD: LoadSettings = benchLoad(env);
const WARMUP_SECONDS = warmupSeconds(env);
const OUT_DIR = env.BENCH_OUT ?? join(REPO_ROOT, 'test-results', 'bench');

type SetName = 'ecs' | 'no-ecs' | 'mixed';
const SET_NAMES: SetName[] = (env.BENCH_SETS ?? 'ecs,no-ecs,mixed').split(',').map((s) => s.trim() as SetName);
for (const set of SET_NAMES) if (!['ecs', 'no-ecs', 'mixed'].includes(set)) throw new Error(`unknown BENCH_SETS entry "${set}"`);

const SERVERS: ServerDefinition[] = env.BENCH_SERVERS
  ? env.BENCH_SERVERS.split(',').map((name) => {
    const found = ALL_SERVERS.find((s) => s.name === name.trim());
    if (!found) throw new Error(`unknown server "${name}" in BENCH_SERVERS (know ${ALL_SERVERS.map((s) => s.name).join(', ')})`);
    return found;
  })
  : ALL_SERVERS;

const dataFileOf = (sets: QuerySets, set: SetName): string => (set === 'ecs' ? sets.ecs : set === 'no-ecs' ? sets.noEcs : sets.mixed);

interface ServerResults {
  runs: Map<SetName, DnsperfResult[]>;
  startupMs: number[];
  rssKiB: number[];
  halfPeak: DnsperfResult | null;
  eightyPercent: DnsperfResult | null;
  agreement: AgreementSample[] | null;
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;
const peakOf = (results: ServerResults): number => Math.max(...(results.runs.get('ecs') ?? []).map((r) => r.qps));

async function withServer<T>(definition: ServerDefinition, scenario: Scenario, work: string, use: (server: RunningServer) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(work, `${definition.name}-`));
  const server = await startBenchServer(definition, scenario, dir);
  try {
    return await use(server);
  } finally {
    await server.stop();
  }
}

async function calibrate(scenario: Scenario, sets: QuerySets, work: string): Promise<void> {
  const candidates: LoadSettings[] = [
    { clients: 1, threads: 1, outstanding: 100, timeoutSeconds: 2 },
    { clients: 4, threads: 1, outstanding: 100, timeoutSeconds: 2 },
    { clients: 2, threads: 2, outstanding: 100, timeoutSeconds: 2 },
    { clients: 4, threads: 2, outstanding: 100, timeoutSeconds: 2 },
    { clients: 4, threads: 2, outstanding: 200, timeoutSeconds: 2 },
    { clients: 8, threads: 2, outstanding: 200, timeoutSeconds: 2 },
    { clients: 8, threads: 1, outstanding: 500, timeoutSeconds: 2 },
  ];
  const seconds = Math.min(SECONDS, 5);
  log(`calibration: ${seconds} s per run, ECS query set; the server's own rate is what each setting lets through`);
  log('| server | -c | -T | -q | queries/s | avg ms | lost |');
  log('|---|---|---|---|---|---|---|');
  for (const definition of SERVERS.filter((s) => s.name !== 'powerdns')) {
    await withServer(definition, scenario, work, async (server) => {
      for (const load of candidates) {
        const r = await runDnsperf({ port: server.port, dataFile: sets.ecs, seconds, load });
        log(`| ${definition.name} | ${load.clients} | ${load.threads} | ${load.outstanding} | ${Math.round(r.qps)} | ${r.avgLatencyMs.toFixed(3)} | ${r.lost} |`);
      }
    });
  }
}

function formatQps(qps: number): string {
  return qps >= 10000 ? `${(qps / 1000).toFixed(1)}k` : String(Math.round(qps));
}

function renderReport(scenario: Scenario, sets: QuerySets, results: Map<string, ServerResults>, agreement: AgreementSummary[], startedAt: Date, loadBefore: number[]): string {
  const lines: string[] = [];
  const popsteerResults = results.get('popsteer');
  lines.push(`popsteer side-by-side benchmark — ${startedAt.toISOString()}`);
  lines.push(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores shared by the server under test and dnsperf, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}`);
  lines.push(`load average before / after: ${loadBefore.map((l) => l.toFixed(2)).join(' ')} / ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  lines.push(`runs: ${ROUNDS} rounds × ${SECONDS} s per server and query set, servers interleaved (${SERVERS.map((s) => s.name).join(', ')}, then again), each started fresh and given ${WARMUP_SECONDS} s of unmeasured ECS load first`);
  lines.push(`dnsperf: -c ${LOAD.clients} -T ${LOAD.threads} -q ${LOAD.outstanding} -t ${LOAD.timeoutSeconds}, binary input (-B), loopback UDP`);
  lines.push(`query sets: ecs = www A with ${sets.samples.length} distinct ECS subnets (${sets.samples.filter((s) => s.family === 1).length} IPv4 /24, ${sets.samples.filter((s) => s.family === 2).length} IPv6 /48) from GeoLite2-City; no-ecs = www A from 127.0.0.1; mixed = ${Math.round(sets.mixShares.steered * 100)}% ECS www, ${Math.round(sets.mixShares.staticName * 100)}% static name, ${Math.round(sets.mixShares.nxdomain * 100)}% NXDOMAIN, ${Math.round(sets.mixShares.outOfZone * 100)}% outside the zones`);
  lines.push('');
  lines.push('| set | server | queries/s (each run) | queries/s mean | lost | avg ms at peak | avg / p99 ms at ½ own peak | popsteer ÷ server |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const set of SET_NAMES) {
    const popsteerMean = popsteerResults?.runs.get(set) ? mean(popsteerResults.runs.get(set)!.map((r) => r.qps)) : NaN;
    for (const definition of SERVERS) {
      const r = results.get(definition.name);
      const runs = r?.runs.get(set) ?? [];
      if (runs.length === 0) continue;
      const qpsMean = mean(runs.map((x) => x.qps));
      const lost = runs.reduce((a, x) => a + x.lost, 0);
      const sent = runs.reduce((a, x) => a + x.sent, 0);
      const half = set === 'ecs' && r!.halfPeak ? `${r!.halfPeak.avgLatencyMs.toFixed(3)} / ${r!.halfPeak.p99Ms!.toFixed(3)}` : '–';
      const ratio = definition.name === 'popsteer' || !Number.isFinite(popsteerMean) ? '–' : (popsteerMean / qpsMean).toFixed(2);
      lines.push(`| ${set} | ${definition.name} | ${runs.map((x) => formatQps(x.qps)).join(' / ')} | ${formatQps(qpsMean)} | ${lost} of ${sent} (${((lost / Math.max(1, sent)) * 100).toFixed(2)}%) | ${mean(runs.map((x) => x.avgLatencyMs)).toFixed(3)} | ${half} | ${ratio} |`);
    }
  }
  lines.push('');
  if (popsteerResults?.eightyPercent) {
    const e = popsteerResults.eightyPercent;
    lines.push(`popsteer at 80% of its own peak (${formatQps(peakOf(popsteerResults) * 0.8)} q/s offered, ${LATENCY_SECONDS} s): ${formatQps(e.qps)} q/s answered, lost ${e.lost} of ${e.sent}, avg ${e.avgLatencyMs.toFixed(3)} ms, p99 ${e.p99Ms!.toFixed(3)} ms`);
  }
  for (const definition of SERVERS) {
    const r = results.get(definition.name)!;
    const rss = r.rssKiB.length ? `${(Math.max(...r.rssKiB) / 1024).toFixed(1)} MiB RSS after the ECS load` : 'RSS not measured';
    lines.push(`${definition.name} (${definition.version()}): start-up to first answer ${r.startupMs.map((ms) => `${Math.round(ms)} ms`).join(' / ')}; ${rss}`);
  }
  lines.push('');
  lines.push(`answer agreement on ${agreement[0]?.asked ?? 0} sampled ECS queries (reference: the PoP nearest to the database location, haversine):`);
  for (const a of agreement) {
    const peers = Object.entries(a.matchesPeer).map(([peer, n]) => `${peer} ${n}`).join(', ');
    lines.push(`  ${a.server}: reference ${a.matchesReference}/${a.asked}; same answer as ${peers}`);
    for (const example of a.examples) lines.push(`      e.g. ${example}`);
  }
  lines.push('');
  lines.push('servers:');
  for (const definition of SERVERS) lines.push(`  ${definition.name}: ${definition.describe}`);
  lines.push(`zone ${scenario.zone}, ${scenario.pops.length} PoPs from geo-data/pops.yaml, database ${scenario.mmdb.replace(REPO_ROOT, '')}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (env.BENCH_SKIP_INSTALL !== '1') ensurePackages();
  const startedAt = new Date();
  const loadBefore = loadavg();
  const scenario = loadScenario();
  const work = mkdtempSync(join(tmpdir(), 'popsteer-bench-'));
  try {
    const sets = writeQuerySets(scenario, work, NETWORKS);
    if (env.BENCH_CALIBRATE === '1') {
      await calibrate(scenario, sets, work);
      return;
    }
    const agreementNetworks = spreadSample(sets.samples, AGREEMENT_SAMPLES);
    const steeredName = `${scenario.steeredLabel}.${scenario.zone}`;
    const results = new Map<string, ServerResults>();
    for (const definition of SERVERS) {
      results.set(definition.name, { runs: new Map(), startupMs: [], rssKiB: [], halfPeak: null, eightyPercent: null, agreement: null });
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const definition of SERVERS) {
        const r = results.get(definition.name)!;
        await withServer(definition, scenario, work, async (server) => {
          r.startupMs.push(server.startupMs);
          if (!r.agreement) r.agreement = await askAll(server.port, steeredName, agreementNetworks);
          await warmUp(server.port, sets.ecs, LOAD, WARMUP_SECONDS);
          for (const set of SET_NAMES) {
            const result = await runDnsperf({ port: server.port, dataFile: dataFileOf(sets, set), seconds: SECONDS, load: LOAD });
            log(`round ${round} ${definition.name} ${set}: ${Math.round(result.qps)} q/s, lost ${result.lost}, avg ${result.avgLatencyMs.toFixed(3)} ms, rcodes ${JSON.stringify(result.rcodes)}`);
            if (!r.runs.has(set)) r.runs.set(set, []);
            r.runs.get(set)!.push(result);
            if (set === 'ecs') r.rssKiB.push(residentKiB(server.pid));
          }
        });
      }
    }
    // Latency where the targets are stated: at half of each server's own peak
    // (and popsteer at 80% of its peak, where no query may be lost).
    if (SET_NAMES.includes('ecs')) {
      for (const definition of SERVERS) {
        const r = results.get(definition.name)!;
        const peak = peakOf(r);
        await withServer(definition, scenario, work, async (server) => {
          r.halfPeak = await runDnsperf({ port: server.port, dataFile: sets.ecs, seconds: LATENCY_SECONDS, load: LOAD, maxQps: peak / 2, verbose: true });
          log(`${definition.name} at ½ peak (${Math.round(peak / 2)} q/s): avg ${r.halfPeak.avgLatencyMs.toFixed(3)} ms, p99 ${r.halfPeak.p99Ms!.toFixed(3)} ms, lost ${r.halfPeak.lost}`);
          if (definition.name === 'popsteer') {
            r.eightyPercent = await runDnsperf({ port: server.port, dataFile: sets.ecs, seconds: LATENCY_SECONDS, load: LOAD, maxQps: peak * 0.8, verbose: true });
          }
        });
      }
    }
    const popIdByAddress = new Map(scenario.pops.map((p) => [p.ipv4, p.id]));
    const agreement = summarize(new Map([...results].map(([name, r]) => [name, r.agreement ?? []])), popIdByAddress);
    const report = renderReport(scenario, sets, results, agreement, startedAt, loadBefore);
    log(`\n${report}\n`);
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'peers.md'), `${report}\n`);
    const exampleCommand = [...results.values()][0]?.runs.get(SET_NAMES[0])?.[0]?.commandLine ?? '';
    writeFileSync(join(OUT_DIR, 'peers.json'), JSON.stringify({
      startedAt, seconds: SECONDS, rounds: ROUNDS, load: LOAD, exampleCommand,
      results: Object.fromEntries([...results].map(([name, r]) => [name, {
        runs: Object.fromEntries(r.runs), startupMs: r.startupMs, rssKiB: r.rssKiB, halfPeak: r.halfPeak, eightyPercent: r.eightyPercent,
      }])),
      agreement,
    }, null, 2));
    log(`report written to ${join(OUT_DIR, 'peers.md')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
