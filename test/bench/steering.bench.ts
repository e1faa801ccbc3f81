// Steering micro-benchmark (prints figures; not a test): the CPU per query of
// the whole engine (parse → name → steering hook → reply bytes) for steered
// names, single thread, over the real GeoLite2-City data:
//   - www (nearest, decision cache) and video (sticky weights, no cache),
//     with 65,536 distinct ECS networks sampled from the database;
//   - a policy whose first rule matches N `client_cidr` entries (N = 0,
//     10,000, 100,000), to show what an operator's long CIDR list costs.
//
//   node test/bench/steering.bench.ts          (STEERING_BENCH_QUERIES=1000000 to change the loop,
//                                               STEERING_BENCH_SKIP_CIDR=1 for the first two lines only)

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Counters } from '../../server/engine/counters.ts';
import { Engine, TRANSPORT_UDP } from '../../server/engine/engine.ts';
import { createSteering } from '../../server/engine/steering-hook.ts';
import { loadGeo } from '../../server/geo-context.ts';
import { createHealthTable } from '../../server/health/table.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { createSignals } from '../../server/steering/signals.ts';
import type { DnsSnapshot } from '../../server/snapshot/types.ts';
import { ecs, query, TYPE } from '../conformance/wire.ts';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { REPO_ROOT } from '../helpers/server.ts';
import { sampleByDescent, seededRandom } from '../unit/geo/helpers.ts';

const QUERIES = Number(process.env.STEERING_BENCH_QUERIES ?? 1_000_000);
const SAMPLE = 65_536;
const CPU_BUDGET_US = 10_000_000;

// STEERING_BENCH_ASN=<files> splices an ASN source into the index (the per-query cost of ASN data).
const asnDatabase = process.env.STEERING_BENCH_ASN ? process.env.STEERING_BENCH_ASN.split(',') : [];
const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase, cacheDir: null });
const random = seededRandom(0x57ee);
// Sampled from the GeoIP index itself, so runs with and without ASN data ask the same networks.
const networks = Array.from({ length: SAMPLE }, () => sampleByDescent(geo.database.index, 4, random).bytes);

function queriesFor(name: string): Uint8Array[] {
  return networks.map((b) => query(name, TYPE.A, { edns: { udpSize: 1232, options: [ecs(1, 24, 0, [b[0], b[1], b[2]])] } }));
}

function engineFor(snapshot: DnsSnapshot): Engine {
  const counters = new Counters(null, 0);
  const engine = new Engine(snapshot, { popId: 'ams', versionBind: null, counters });
  const health = new Int32Array(createHealthTable(geo.catalog.count));
  const signals = new Float64Array(createSignals(geo.catalog.count));
  engine.steering = createSteering({ tables: snapshot.steering!, health, signals, ecsTrust: [], counters });
  return engine;
}

/**
 * CPU microseconds per query (user + system of this process over the loop):
 * QUERIES queries, or fewer when they would take more than CPU_BUDGET_US
 * (checked every 1,024 queries), so a slow configuration still finishes.
 */
function cpuPerQuery(engine: Engine, packets: Uint8Array[]): number {
  const client = { address: '198.51.100.7', family: 0 };
  const warmUp = Math.min(packets.length, 4096);
  for (let i = 0; i < warmUp; i++) engine.handle(packets[i], packets[i].length, TRANSPORT_UDP, client);
  const mask = packets.length - 1;
  const started = process.cpuUsage();
  let q = 0;
  while (q < QUERIES) {
    for (let k = 0; k < 1024; k++, q++) {
      const p = packets[q & mask];
      if (engine.handle(p, p.length, TRANSPORT_UDP, client) === 0) throw new Error('no reply');
    }
    const spent = process.cpuUsage(started);
    if (spent.user + spent.system > CPU_BUDGET_US) break;
  }
  const used = process.cpuUsage(started);
  return (used.user + used.system) / q;
}

function line(label: string, value: string): void {
  process.stdout.write(`${label.padEnd(58)} ${value}\n`);
}

/** A config directory with the example zone and one policy whose first rule lists `count` client CIDRs. */
function cidrConfig(count: number): string {
  const dir = copyExampleConfig();
  const cidrs: string[] = [];
  // Distinct /24s spread over 11.0.0.0 – 74.255.255.0 (none of the sampled networks' exact edges).
  for (let i = 0; i < count; i++) {
    const n = 11 * 65536 + i * 41;
    cidrs.push(`            - ${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}.0/24`);
  }
  const rules = count === 0 ? '' : [
    '      - name: listed',
    '        match:',
    '          client_cidr:',
    ...cidrs,
    '        pool: edge',
    '        steps: [healthy, { first: 1 }]',
  ].join('\n') + '\n';
  writeFileSync(join(dir, 'steering', 'www.yaml'), [
    'policies:',
    '  - name: www.cdn.example',
    '    ttl: 60',
    '    pools:',
    '      edge: { pops: all }',
    '    rules:',
    rules + '      - name: nearest',
    '        match: default',
    '        pool: edge',
    '        steps: [healthy, nearest, { first: 1 }]',
    '',
  ].join('\n'));
  return dir;
}

process.stdout.write(`steering bench: ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${QUERIES} queries per line, ${SAMPLE} distinct ECS /24s\n`);
const examples = loadSnapshot(join(REPO_ROOT, 'policies'), geo.context, 'ams');
if (!examples.snapshot) throw new Error(examples.errors.map((e) => e.format()).join('\n'));
line('www (nearest, decision cache), ECS', `${cpuPerQuery(engineFor(examples.snapshot), queriesFor('www.cdn.example')).toFixed(3)} µs CPU/query`);
line('video (sticky weights, no cache), ECS', `${cpuPerQuery(engineFor(examples.snapshot), queriesFor('video.cdn.example')).toFixed(3)} µs CPU/query`);

const www = queriesFor('www.cdn.example');
const figures: number[] = [];
for (const count of process.env.STEERING_BENCH_SKIP_CIDR === '1' ? [] : [0, 10_000, 100_000]) {
  const dir = cidrConfig(count);
  const started = performance.now();
  const loaded = loadSnapshot(dir, geo.context, 'ams');
  const loadMs = performance.now() - started;
  if (!loaded.snapshot) throw new Error(loaded.errors.map((e) => e.format()).join('\n'));
  const cpu = cpuPerQuery(engineFor(loaded.snapshot), www);
  figures.push(cpu);
  line(`client_cidr entries: ${count.toLocaleString('en')} (load ${loadMs.toFixed(0)} ms)`, `${cpu.toFixed(3)} µs CPU/query${count > 0 ? `  (${(cpu / figures[0]).toFixed(2)}× none)` : ''}`);
  rmSync(dir, { recursive: true, force: true });
}
