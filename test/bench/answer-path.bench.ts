// The DNS worker's answer path in one thread, without sockets (prints figures;
// not a test): the ECS query file of the side-by-side benchmark
// (peers/queries.ts: 3,500 networks, each query with its own ECS option)
// answered over and over by the engine, the steering hook and the decision
// counters as dns-worker.ts runs them, with the example configuration, with
// and without the answer cache in front (alternating). CPU time per query,
// the class memo's hit rate once every network was seen, and the answer
// cache's.
// On a machine others are loading this moves far less than q/s or the CPU
// per query of a server under dnsperf, so it is the figure to compare a
// change to the answer path by (alternate before and after).
//
//   node test/bench/answer-path.bench.ts      (ANSWER_BENCH_QUERIES, default 1,000,000 per run; ANSWER_BENCH_RUNS, default 5)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AnswerCache, ReplyFacts } from '../../server/engine/answer-cache.ts';
import { ClassMemo } from '../../server/engine/class-memo.ts';
import { Counters } from '../../server/engine/counters.ts';
import { createDecisionCounterBuffer, DecisionRecorder } from '../../server/engine/decision-counters.ts';
import { Engine, TRANSPORT_UDP } from '../../server/engine/engine.ts';
import { createSteering } from '../../server/engine/steering-hook.ts';
import { loadGeo } from '../../server/geo-context.ts';
import { createHealthTable } from '../../server/health/table.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { createSignals } from '../../server/steering/signals.ts';
import { REPO_ROOT } from '../helpers/server.ts';
import { writeQuerySets } from './peers/queries.ts';
import { loadScenario } from './peers/scenario.ts';

const QUERIES = Number(process.env.ANSWER_BENCH_QUERIES ?? 1_000_000);
const RUNS = Number(process.env.ANSWER_BENCH_RUNS ?? 5);

/** The packets of a dnsperf binary input file (each one preceded by its 2-octet length). */
function packetsOf(file: string): Uint8Array[] {
  const data = readFileSync(file);
  const packets: Uint8Array[] = [];
  for (let at = 0; at + 2 <= data.length;) {
    const length = data.readUInt16BE(at);
    packets.push(new Uint8Array(data.subarray(at + 2, at + 2 + length)));
    at += 2 + length;
  }
  return packets;
}

const work = mkdtempSync(join(tmpdir(), 'popsteer-answer-bench-'));
try {
  const packets = packetsOf(writeQuerySets(loadScenario(), work, 3500).ecs);
  const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase: [], cacheDir: null });
  const loaded = loadSnapshot(join(REPO_ROOT, 'policies'), geo.context, 'ams');
  if (!loaded.snapshot) throw new Error(loaded.errors.map((e) => e.format()).join('\n'));
  const snapshot = loaded.snapshot;
  const health = new Int32Array(createHealthTable(geo.catalog.count));
  const signals = new Float64Array(createSignals(geo.catalog.count));
  const peer = { address: '127.0.0.1', family: 0, port: 53000 };

  /**
   * A fresh engine, steering and memo (and answer cache when `cached`), warmed by two passes over the file;
   * returns µs of CPU per query, the memo's hit rate and the answer cache's.
   */
  const run = (cached: boolean): { cpu: number; hits: number; cacheHits: number } => {
    const counters = new Counters(null, 0);
    const engine = new Engine(snapshot, { popId: 'ams', versionBind: null, counters });
    const hook = createSteering({ tables: snapshot.steering!, health, signals, ecsTrust: [], counters });
    engine.steering = hook;
    const decisions = new DecisionRecorder(snapshot.steering!, createDecisionCounterBuffer(snapshot.steering!, 1), 0);
    const cache = cached ? new AnswerCache() : null;
    const facts = new ReplyFacts();
    const out = Buffer.alloc(65535);
    // As dns-worker.ts: the cache first (its hit replays the counters), else the engine, whose reusable reply is stored.
    const answer = (packet: Uint8Array): number => {
      const started = performance.now();
      if (cache !== null) {
        const size = cache.answer(packet, packet.length, peer.address, health[0], out);
        if (size > 0) {
          counters.request(TRANSPORT_UDP, 0, cache.facts.qtype);
          counters.response(cache.facts.rcode);
          if (cache.facts.decisionSlot >= 0) decisions.countAgain(cache.facts.decisionSlot, cache.facts.outcomeSlot);
          counters.duration((performance.now() - started) / 1000);
          return size;
        }
      }
      const size = engine.handle(packet, packet.length, TRANSPORT_UDP, peer);
      if (engine.lastSteered >= 0) decisions.record(hook.last);
      if (cache !== null && engine.reusable) {
        facts.reset();
        facts.qtype = engine.view.qtype;
        facts.rcode = engine.writer.buf[3] & 0x0f;
        facts.decisionSlot = decisions.decisionSlot;
        facts.outcomeSlot = decisions.outcomeSlot;
        cache.store(packet, packet.length, peer.address, health[0], engine.writer.buf, size, facts);
      }
      counters.duration((performance.now() - started) / 1000);
      return size;
    };
    for (let i = 0; i < 2 * packets.length; i++) answer(packets[i % packets.length]);
    const started = process.cpuUsage();
    for (let i = 0; i < QUERIES; i++) if (answer(packets[i % packets.length]) === 0) throw new Error('no reply');
    const used = process.cpuUsage(started);
    const lookups = cache === null ? 0 : cache.hits + cache.misses;
    const cacheHits = cache === null ? 0 : cache.hits / lookups;
    const hits = memoHitRate(() => {
      for (const packet of packets) answer(packet);
    });
    return { cpu: (used.user + used.system) / QUERIES, hits, cacheHits };
  };

  process.stdout.write(`answer path bench: ${new Date().toISOString()}, load average ${loadavg()[0].toFixed(1)}, node ${process.version}, ${packets.length} ECS queries, ${QUERIES} per run\n`);
  const figures = { engine: [] as number[], cached: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    // Alternating, so that a change in the machine's load falls on both.
    for (const cached of r % 2 === 0 ? [false, true] : [true, false]) {
      const { cpu, hits, cacheHits } = run(cached);
      (cached ? figures.cached : figures.engine).push(cpu);
      const cacheNote = cached ? `, answer cache hits ${(100 * cacheHits).toFixed(1)}%` : '';
      process.stdout.write(`run ${r + 1} ${cached ? 'with the answer cache' : 'engine only'}: ${cpu.toFixed(3)} µs CPU/query, class memo hits ${Number.isNaN(hits) ? '– (no lookups)' : `${(100 * hits).toFixed(1)}%`}${cacheNote}\n`);
    }
  }
  for (const [label, values] of [['engine only', figures.engine], ['with the answer cache', figures.cached]] as const) {
    const sorted = [...values].sort((a, b) => a - b);
    process.stdout.write(`${label}: median ${sorted[sorted.length >> 1].toFixed(3)} µs CPU/query (range ${sorted[0].toFixed(3)}–${sorted[sorted.length - 1].toFixed(3)})\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** The share of the class memo's lookups that hit during `pass` (counted on the prototype, for that pass only). */
function memoHitRate(pass: () => void): number {
  const find = ClassMemo.prototype.find;
  let lookups = 0;
  let hits = 0;
  ClassMemo.prototype.find = function counted(this: ClassMemo, ...args: Parameters<ClassMemo['find']>): boolean {
    lookups++;
    const hit = find.apply(this, args);
    if (hit) hits++;
    return hit;
  };
  try {
    pass();
  } finally {
    ClassMemo.prototype.find = find;
  }
  return lookups === 0 ? NaN : hits / lookups;
}
