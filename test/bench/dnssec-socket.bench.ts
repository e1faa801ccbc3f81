// DO=1 against DO=0 on real sockets (issue 21): popsteer serving the example
// configuration with cdn.example signed, dnsperf on loopback sending the
// same ECS query stream for the steered www.cdn.example (the peers
// benchmark's sampled client networks), once with the DO bit clear and once
// with it set, in alternating pairs (ABBA order, so drift on a shared
// machine falls on both sides); prints q/s of each run, the medians and
// their ratio. Then what signing costs at compile time for the example and
// a large generated set (test/bench/scale/generate.ts): compile time,
// signature count, heap and the server's resident memory. Not a test.
//
// BENCH_DNSSEC_PAIRS (4), BENCH_DNSSEC_SECONDS (10), BENCH_POPSTEER_WORKERS
// and the dnsperf settings of peers/dnsperf.ts apply.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { generateKey, ALG_ECDSAP256SHA256 } from '../../server/dnssec/keys.ts';
import { loadGeo } from '../../server/geo-context.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { benchLoad, envNumber, runDnsperf } from './peers/dnsperf.ts';
import { encodeQuery, sampleNetworks } from './peers/queries.ts';
import { loadScenario } from './peers/scenario.ts';
import { popsteer, residentKiB, startBenchServer, type ServerDefinition } from './peers/servers.ts';
import { generateConfig } from './scale/generate.ts';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const PAIRS = envNumber(process.env, 'BENCH_DNSSEC_PAIRS', 4);
const SECONDS = envNumber(process.env, 'BENCH_DNSSEC_SECONDS', 10);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Signs a configuration directory's zone: a fresh CSK and the dnssec: line. */
function signZone(configDir: string, zone: string): void {
  generateKey(join(configDir, 'keys'), zone, ALG_ECDSAP256SHA256);
  const file = join(configDir, 'zones', `${zone}.yaml`);
  writeFileSync(file, readFileSync(file, 'utf8').replace(new RegExp(`^zone: ${zone.replace(/\./g, '\\.')}$`, 'm'), `zone: ${zone}\ndnssec: { keys: keys }`));
}

/** The query file with the DO bit set in every packet's OPT record (dnsperf -B framing: 2-byte length, packet). */
function withDo(packets: Buffer[]): Buffer[] {
  return packets.map((p) => {
    const q = Buffer.from(p);
    let at = 12;
    while (q[at] !== 0) at += q[at] + 1;
    const opt = at + 1 + 4; // after the question's name, type and class
    q.writeUInt16BE(0x8000, opt + 7); // OPT TTL: ext-rcode, version, then the flags with DO
    return q;
  });
}

function framed(packets: Buffer[]): Buffer {
  return Buffer.concat(packets.flatMap((p) => [Buffer.from([p.length >> 8, p.length & 0xff]), p]));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** DO=0 against DO=1 through dnsperf, alternating; returns the medians. */
async function socketRuns(dir: string): Promise<void> {
  const configDir = join(dir, 'signed');
  cpSync(join(REPO_ROOT, 'policies'), configDir, { recursive: true });
  signZone(configDir, 'cdn.example');
  const scenario = loadScenario();
  const packets = sampleNetworks(scenario, 2000, 0.2).map((s) => encodeQuery(`${scenario.steeredLabel}.${scenario.zone}`, s));
  const files = { 'DO=0': join(dir, 'do0.bin'), 'DO=1': join(dir, 'do1.bin') };
  writeFileSync(files['DO=0'], framed(packets));
  writeFileSync(files['DO=1'], framed(withDo(packets)));
  const signed: ServerDefinition = {
    ...popsteer,
    name: 'popsteer-signed',
    prepare: (s, d, port) => {
      const { command, args } = popsteer.prepare(s, d, port);
      return { command, args: args.map((a) => (a === `${REPO_ROOT}policies` ? configDir : a)) };
    },
  };
  const server = await startBenchServer(signed, scenario, join(dir, 'run'));
  const load = benchLoad(process.env);
  const qps: Record<'DO=0' | 'DO=1', number[]> = { 'DO=0': [], 'DO=1': [] };
  try {
    await runDnsperf({ port: server.port, dataFile: files['DO=1'], seconds: 3, load }); // warm-up: JIT, caches
    for (let pair = 0; pair < PAIRS; pair++) {
      const order: Array<'DO=0' | 'DO=1'> = pair % 2 === 0 ? ['DO=0', 'DO=1'] : ['DO=1', 'DO=0'];
      for (const kind of order) {
        const r = await runDnsperf({ port: server.port, dataFile: files[kind], seconds: SECONDS, load });
        qps[kind].push(r.qps);
        process.stdout.write(`  pair ${pair + 1} ${kind}: ${Math.round(r.qps).toLocaleString('en')} q/s, lost ${r.lost}, rcodes ${JSON.stringify(r.rcodes)}, avg ${r.avgLatencyMs.toFixed(3)} ms\n`);
      }
    }
    process.stdout.write(`server resident memory after the runs: ${(residentKiB(server.pid) / 1024).toFixed(0)} MiB (all processes)\n`);
  } finally {
    await server.stop();
  }
  const [plain, signedQps] = [median(qps['DO=0']), median(qps['DO=1'])];
  process.stdout.write(`median of ${PAIRS}: DO=0 ${Math.round(plain).toLocaleString('en')} q/s, DO=1 ${Math.round(signedQps).toLocaleString('en')} q/s, DO=1/DO=0 = ${(signedQps / plain).toFixed(3)}\n`);
}

/** Compile time (median of `runs`), signatures and heap growth of one signed configuration. */
function compileCost(label: string, configDir: string, geoDataDir: string, runs: number): void {
  const geo = loadGeo({ geoDataDir, geoipDatabase: [], asnDatabase: [], cacheDir: null });
  const times: number[] = [];
  let last: ReturnType<typeof loadSnapshot> | null = null;
  gc();
  const baseline = process.memoryUsage().heapUsed;
  for (let i = 0; i < runs; i++) {
    last = null;
    gc();
    const started = performance.now();
    last = loadSnapshot(configDir, geo.context, 'ams');
    times.push(performance.now() - started);
    if (!last.snapshot) throw new Error(last.errors.map((e) => e.format()).join('\n'));
  }
  gc();
  const heap = process.memoryUsage().heapUsed - baseline;
  const signatures = last?.snapshot?.dnssec?.signatures.size ?? 0;
  process.stdout.write(`${label.padEnd(52)} compile ${median(times).toFixed(0).padStart(6)} ms  signatures ${String(signatures).padStart(7)}  heap held +${(heap / 1048576).toFixed(1)} MiB\n`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-socket-'));
  try {
    process.stdout.write(`DNSSEC on sockets, ${new Date().toISOString().slice(0, 16)} UTC, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} (node test/bench/dnssec-socket.bench.ts)\n`);
    process.stdout.write(`same ECS stream (2,000 client networks, www.cdn.example A), ${PAIRS} alternating pairs of ${SECONDS} s, dnsperf ${JSON.stringify(benchLoad(process.env))}\n`);
    await socketRuns(dir);
    process.stdout.write('compile cost, P-256 (in-process; heap held by the last snapshot):\n');
    compileCost('example config (cdn.example), median of 3', join(dir, 'signed'), join(REPO_ROOT, 'geo-data'), 3);
    // The scale benchmark's second size; its larger ones (10,000 names, about 400,000 sets) take minutes to sign.
    const large = generateConfig(join(dir, 'large'), { pops: 64, policies: 60, customNetworks: 0, names: 600 });
    signZone(large.configDir, large.zone);
    compileCost('generated: 64 PoPs, 60 policies, 600 names, 1 run', large.configDir, large.geoDataDir, 1);
    process.stdout.write(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
