// The soak: the real server under steady load for a long time while the
// world around it changes.
//
//   node test/soak/soak.ts            (make soak; not part of make test)
//
// - load: dnsperf at 70% of the measured peak (SOAK_QPS sets the peak instead
//   of measuring it), a mix of steered names with distinct ECS subnets,
//   static names and NXDOMAINs;
// - probes flapping: three PoPs are probed at local HTTP targets that go
//   down and up in turn every SOAK_FLAP_MS (default 2500);
// - a policy reload every 10 s: the video canary weight alternates 10 ↔ 20;
// - a checking client asks www, api and a static name all along.
//
// Passes when dnsperf lost no query (RRL is off), the checking client saw no
// timeout or wrong answer, every edit was reloaded, the server's RSS grew
// under 10% after warm-up, and nothing was logged at error level or above.
// Prints a summary and exits 0 (pass) or 1.
//
// Settings (environment): SOAK_SECONDS (default 600), SOAK_QPS (peak; default
// measured for 5 s), SOAK_LOAD_SHARE (default 0.7), SOAK_WORKERS (default 2),
// SOAK_FLAP_MS (default 2500), SOAK_RELOAD_MS (default 10000).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/server.ts';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer } from '../helpers/dns-client.ts';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { runDnsperf, type LoadSettings } from '../bench/peers/dnsperf.ts';
import { residentBytes, writeWireQueries } from './dnsperf-once.ts';
import { geoDataWithHttpProbes } from './probed-geo-data.ts';
import { QueryLoop, answered } from './query-loop.ts';
import { soakMix } from './queries.ts';

const env = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const SECONDS = Math.round(env('SOAK_SECONDS', 600));
const LOAD_SHARE = env('SOAK_LOAD_SHARE', 0.7);
const WORKERS = Math.round(env('SOAK_WORKERS', 2));
const FLAP_MS = env('SOAK_FLAP_MS', 2500);
const RELOAD_MS = env('SOAK_RELOAD_MS', 10_000);
const PEAK_SECONDS = 5;
/** RSS is the baseline after this share of the run (at least 10 s, at most 60 s). */
const WARM_UP_SECONDS = Math.min(60, Math.max(10, Math.round(SECONDS * 0.15)));
const RSS_GROWTH_LIMIT = 0.10;
const FLAPPED_POPS = ['lhr', 'fra', 'sin'];
const LOAD: LoadSettings = { clients: 4, threads: 1, outstanding: 200, timeoutSeconds: 2 };
const ERROR_LEVEL = 50; // pino: error 50, fatal 60
const CANARY = '{ pop: mad, weight: 10 }';
const CANARY_EDITED = '{ pop: mad, weight: 20 }';

interface Summary {
  pass: boolean;
  date: string;
  command: string;
  seconds: number;
  workers: number;
  peakQps: number;
  peakMeasured: boolean;
  targetQps: number;
  dnsperf: { sent: number; completed: number; lost: number; qps: number; avgLatencyMs: number; maxLatencyMs: number; rcodes: Record<string, number> };
  checkingClient: { sent: number; answered: number; timeouts: number; wrong: number; problems: string[] };
  flaps: number;
  healthTransitions: number;
  edits: number;
  reloads: number;
  rssMb: { afterWarmUp: number; end: number; max: number; growthPercent: number };
  errorsLogged: Array<Record<string, unknown>>;
  failures: string[];
}

async function main(): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'popsteer-soak-'));
  const targets: Target[] = await Promise.all(FLAPPED_POPS.map(() => startHttpTarget()));
  const config = copyExampleConfig();
  const videoFile = join(config, 'steering', 'video.yaml');
  if (!readFileSync(videoFile, 'utf8').includes(CANARY)) throw new Error(`${videoFile} lacks "${CANARY}"; update the soak's edit`);
  const geoData = geoDataWithHttpProbes(Object.fromEntries(FLAPPED_POPS.map((pop, i) => [pop, targets[i].port])));
  const server = await startServer({ workers: WORKERS, args: ['--config', config, '--geo-data', geoData, '--log-level', 'info'] });
  const pid = server.process.pid!;
  const dataFile = join(work, 'soak-queries.bin');
  writeWireQueries(dataFile, soakMix(20_000));
  const timers: NodeJS.Timeout[] = [];
  const failures: string[] = [];
  try {
    let peakQps = Number(process.env.SOAK_QPS ?? 0);
    const peakMeasured = !(peakQps > 0);
    if (peakMeasured) {
      const peak = await runDnsperf({ port: server.dnsPort, dataFile, seconds: PEAK_SECONDS, load: LOAD });
      peakQps = peak.qps;
      log(`peak: ${Math.round(peakQps)} qps over ${PEAK_SECONDS} s (${peak.lost} lost)`);
    }
    const targetQps = Math.round(peakQps * LOAD_SHARE);
    log(`soak: ${SECONDS} s at ${targetQps} qps (${Math.round(LOAD_SHARE * 100)}% of ${Math.round(peakQps)}), ${WORKERS} workers, flaps every ${FLAP_MS} ms, reload every ${RELOAD_MS} ms`);

    // Logs from here on count; the peak run is not part of the soak.
    const logsFrom = server.logs.length;
    const loop = QueryLoop.start({
      port: server.dnsPort, everyMs: 50, maxMs: (SECONDS + 30) * 1000, timeoutMs: 2000,
      questions: [
        { name: 'www.cdn.example', subnet: '81.2.69.0/24', check: answered },
        { name: 'api.cdn.example', check: answered },
        { name: 'status.cdn.example', check: (r) => answered(r) ?? (firstAnswer(r) === '203.0.113.80' ? null : `status ${firstAnswer(r)}`) },
      ],
    });

    let flaps = 0;
    const down = new Set<number>();
    timers.push(setInterval(() => {
      const i = flaps++ % targets.length;
      const target = targets[i];
      if (down.has(i)) void target.restore().then(() => down.delete(i));
      else void target.kill().then(() => down.add(i));
    }, FLAP_MS));

    let edits = 0;
    timers.push(setInterval(() => {
      const text = readFileSync(videoFile, 'utf8');
      writeFileSync(videoFile, edits % 2 === 0 ? text.replace(CANARY, CANARY_EDITED) : text.replace(CANARY_EDITED, CANARY));
      edits++;
    }, RELOAD_MS));

    let rssAfterWarmUp = 0;
    let rssMax = 0;
    const started = performance.now();
    timers.push(setInterval(() => {
      const rss = residentBytes(pid);
      rssMax = Math.max(rssMax, rss);
      if (rssAfterWarmUp === 0 && performance.now() - started >= WARM_UP_SECONDS * 1000) rssAfterWarmUp = rss;
    }, 1000));

    const load = await runDnsperf({ port: server.dnsPort, dataFile, seconds: SECONDS, load: LOAD, maxQps: targetQps });
    const rssEnd = residentBytes(pid);
    for (const timer of timers) clearInterval(timer);
    // The last edit's reload and the last flap settle before the counts are read.
    await loop.rounds(10);
    const stats = await loop.stop();

    const soakLogs = server.logs.slice(logsFrom);
    const reloads = soakLogs.filter((l) => l.msg === 'configuration reloaded').length;
    const transitions = soakLogs.filter((l) => typeof l.msg === 'string' && /^health: \S+ (up|down)$/.test(l.msg)).length;
    const errorsLogged = soakLogs.filter((l) => Number(l.level) >= ERROR_LEVEL);
    const growth = rssAfterWarmUp > 0 ? (rssEnd - rssAfterWarmUp) / rssAfterWarmUp : NaN;

    if (load.lost > 0) failures.push(`dnsperf lost ${load.lost} of ${load.sent} queries`);
    if (load.completed < load.sent) failures.push(`dnsperf: ${load.sent - load.completed} queries unanswered`);
    if (stats.timeouts + stats.wrong > 0) failures.push(`checking client: ${stats.timeouts} timeouts, ${stats.wrong} wrong answers: ${stats.problems.join('; ')}`);
    if (reloads < edits) failures.push(`${edits} edits but ${reloads} reloads`);
    if (edits === 0) failures.push('no policy edit happened (soak shorter than the reload period)');
    if (transitions === 0) failures.push('no health transition happened');
    if (!(growth < RSS_GROWTH_LIMIT)) failures.push(`RSS grew ${(growth * 100).toFixed(1)}% after warm-up (limit ${RSS_GROWTH_LIMIT * 100}%)`);
    if (errorsLogged.length > 0) failures.push(`${errorsLogged.length} error lines logged`);

    const mb = (bytes: number): number => Math.round(bytes / 1024 / 102.4) / 10;
    const summary: Summary = {
      pass: failures.length === 0,
      date: new Date().toISOString(),
      command: `SOAK_SECONDS=${SECONDS}${peakMeasured ? '' : ` SOAK_QPS=${peakQps}`} node test/soak/soak.ts`,
      seconds: SECONDS,
      workers: WORKERS,
      peakQps: Math.round(peakQps),
      peakMeasured,
      targetQps,
      dnsperf: { sent: load.sent, completed: load.completed, lost: load.lost, qps: Math.round(load.qps), avgLatencyMs: round3(load.avgLatencyMs), maxLatencyMs: round3(load.maxLatencyMs), rcodes: load.rcodes },
      checkingClient: { sent: stats.sent, answered: stats.answered, timeouts: stats.timeouts, wrong: stats.wrong, problems: stats.problems },
      flaps,
      healthTransitions: transitions,
      edits,
      reloads,
      rssMb: { afterWarmUp: mb(rssAfterWarmUp), end: mb(rssEnd), max: mb(rssMax), growthPercent: Math.round(growth * 1000) / 10 },
      errorsLogged: errorsLogged.slice(0, 10),
      failures,
    };
    printSummary(summary);
    return summary.pass ? 0 : 1;
  } finally {
    for (const timer of timers) clearInterval(timer);
    await server.stop();
    for (const target of targets) await target.kill().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  }
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function printSummary(s: Summary): void {
  const lines = [
    `popsteer soak — ${s.pass ? 'PASS' : 'FAIL'} — ${s.date}`,
    `command:   ${s.command}`,
    `load:      ${s.targetQps} qps target (${Math.round(LOAD_SHARE * 100)}% of ${s.peakMeasured ? 'measured' : 'given'} peak ${s.peakQps}) for ${s.seconds} s, ${s.workers} workers`,
    `dnsperf:   sent ${s.dnsperf.sent}, completed ${s.dnsperf.completed}, lost ${s.dnsperf.lost}, ${s.dnsperf.qps} qps, latency avg ${s.dnsperf.avgLatencyMs} ms max ${s.dnsperf.maxLatencyMs} ms`,
    `rcodes:    ${Object.entries(s.dnsperf.rcodes).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `checker:   ${s.checkingClient.answered}/${s.checkingClient.sent} answered, ${s.checkingClient.timeouts} timeouts, ${s.checkingClient.wrong} wrong`,
    `faults:    ${s.flaps} probe flaps → ${s.healthTransitions} health transitions; ${s.edits} policy edits → ${s.reloads} reloads`,
    `memory:    RSS ${s.rssMb.afterWarmUp} MB after warm-up, ${s.rssMb.end} MB at the end (max ${s.rssMb.max} MB), growth ${s.rssMb.growthPercent}%`,
    `errors:    ${s.errorsLogged.length} logged at error level`,
    ...s.failures.map((f) => `FAILED:    ${f}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(s)}\n`);
}

main().then((code) => { process.exitCode = code; }, (err: Error) => {
  process.stderr.write(`soak: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
