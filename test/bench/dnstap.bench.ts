// dnstap benchmark (prints figures; not a test):
//   1. the cost of encoding one dnstap message: popsteer's hand encoder
//      against protobufjs (the library it would otherwise use), and the
//      whole per-query logging path of a DNS worker (both frames into the
//      ring, drained in between as the writer thread would);
//   2. throughput with dnstap on (every query and response, to fstrm_capture
//      on a unix socket) against off: two popsteer servers on the bench's
//      ECS query file and dnsperf settings, measured in alternating pairs.
//
//   node test/bench/dnstap.bench.ts       (about 2 minutes; in `make bench`)
//   BENCH_DNSTAP_PAIRS (5), BENCH_DNSTAP_SECONDS (8), BENCH_DNSTAP_WORKERS (cores), BENCH_CODEC_SECONDS (1.5),
//   BENCH_DNSTAP_MICRO_ONLY=1 (part 1 only)

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import protobuf from 'protobufjs';
import { createControl } from '../../server/dnstap/control.ts';
import { AUTH_RESPONSE, DnstapExchange, INET, SOCKET_UDP } from '../../server/dnstap/message.ts';
import { DnstapProducer } from '../../server/dnstap/producer.ts';
import { RingConsumer, createRing } from '../../server/dnstap/ring.ts';
import { TYPE, ecs, query } from '../conformance/wire.ts';
import { benchLoad, envNumber, runDnsperf, type DnsperfResult } from './peers/dnsperf.ts';
import { writeQuerySets } from './peers/queries.ts';
import { loadScenario } from './peers/scenario.ts';
import { cpuSeconds, freePort, popsteer, startBenchServer, type ServerDefinition } from './peers/servers.ts';

const env = process.env;
const PAIRS = envNumber(env, 'BENCH_DNSTAP_PAIRS', 5);
const SECONDS = envNumber(env, 'BENCH_DNSTAP_SECONDS', 8);
const MICRO_SECONDS = envNumber(env, 'BENCH_CODEC_SECONDS', 1.5);
const WORKERS = envNumber(env, 'BENCH_DNSTAP_WORKERS', availableParallelism());

const log = (line: string): void => { process.stdout.write(`${line}\n`); };

const QUERY = Buffer.from(query('www.cdn.example', TYPE.A, { id: 0x4242, edns: { udpSize: 1232, options: [ecs(1, 24, 0, [81, 2, 69])] } }));
// The reply popsteer sends for it: header, question, one A record, OPT with the ECS echo and scope.
const REPLY = Buffer.concat([QUERY.subarray(0, QUERY.length - 19), Buffer.alloc(16, 1), QUERY.subarray(QUERY.length - 19)]);

/** Runs `fn` for about `seconds`, three rounds; the median rate in operations per second. */
function rate(fn: () => number, seconds: number): number {
  const rates: number[] = [];
  let sink = 0;
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < 1000; i++) sink += fn();
      n += 1000;
    }
    rates.push(n / ((performance.now() - start) / 1000));
  }
  if (sink === -1) log('');
  return rates.sort((a, b) => a - b)[1];
}

function microBenchmarks(): void {
  const exchange = new DnstapExchange();
  exchange.identity = Buffer.from('ams');
  exchange.version = Buffer.from('popsteer 0.1.0');
  exchange.family = INET;
  exchange.protocol = SOCKET_UDP;
  exchange.queryAddress.set([127, 0, 0, 1]);
  exchange.responseAddress.set([127, 0, 0, 1]);
  exchange.responseAddressLength = 4;
  exchange.queryPort = 53124;
  exchange.responsePort = 53;
  exchange.querySeconds = 1_796_000_000;
  exchange.queryNanoseconds = 123_456_789;
  exchange.responseSeconds = 1_796_000_000;
  exchange.responseNanoseconds = 123_556_789;
  exchange.query = QUERY;
  exchange.queryLength = QUERY.length;
  exchange.response = REPLY;
  exchange.responseLength = REPLY.length;
  const extra = Buffer.from('{"policy":"www.cdn.example","rule":"#1 nearest","pop":"lhr","class":1234,"client":"81.2.69.0/24"}');
  exchange.extra = extra;
  exchange.extraLength = extra.length;
  const out = new Uint8Array(4096);
  const hand = rate(() => exchange.writeFrame(AUTH_RESPONSE, out, 0), MICRO_SECONDS);

  const schema = protobuf.parse(`syntax = "proto2";
    message Dnstap { optional bytes identity = 1; optional bytes version = 2; optional bytes extra = 3; required int32 type = 15; optional Message message = 14; }
    message Message { required int32 type = 1; optional int32 socket_family = 2; optional int32 socket_protocol = 3; optional bytes query_address = 4;
      optional bytes response_address = 5; optional uint32 query_port = 6; optional uint32 response_port = 7; optional uint64 query_time_sec = 8;
      optional fixed32 query_time_nsec = 9; optional uint64 response_time_sec = 12; optional fixed32 response_time_nsec = 13; optional bytes response_message = 14; }`,
  { keepCase: true }).root.lookupType('Dnstap');
  const loopback = Buffer.from([127, 0, 0, 1]);
  const library = rate(() => schema.encode({
    identity: exchange.identity, version: exchange.version, extra, type: 1,
    message: {
      type: 2, socket_family: 1, socket_protocol: 1, query_address: loopback, response_address: loopback, query_port: 53124, response_port: 53,
      query_time_sec: 1_796_000_000, query_time_nsec: 123_456_789, response_time_sec: 1_796_000_000, response_time_nsec: 123_556_789, response_message: REPLY,
    },
  }).finish().length, MICRO_SECONDS);

  // The worker's whole path per query: sample, both frames encoded into the ring.
  const ring = createRing(1 << 20);
  const consumer = new RingConsumer(ring);
  const producer = new DnstapProducer({
    ring, control: createControl(), identity: 'ams', version: 'popsteer 0.1.0', queries: true, responses: true, sample: 1,
    listen: [{ host: '127.0.0.1', port: 53 }],
  }, () => ({ policy: 'www.cdn.example', rule: '#1 nearest', endpoint: 'lhr' }));
  const decision = { policy: 0, rule: 0, endpoint: 3, class: 1234, ecsBits: 24, ecsFamily: 4, ecsAddress: Uint8Array.from([81, 2, 69, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) };
  let logged = 0;
  const ignore = (): void => {};
  const perQuery = rate(() => {
    if (producer.sample()) producer.log(QUERY, QUERY.length, false, '127.0.0.1', 53124, 0, performance.now(), REPLY, REPLY.length, decision);
    if ((++logged & 255) === 0) consumer.drain(ignore, Infinity);
    return 1;
  }, MICRO_SECONDS);

  log(`message: AUTH_RESPONSE for www.cdn.example A with ECS (query ${QUERY.length} octets, reply ${REPLY.length}), extra ${extra.length} octets`);
  log(`  hand encoder (server/dnstap/message.ts):    ${Math.round(hand).toLocaleString('en')} messages/s  (${(1e9 / hand).toFixed(0)} ns each, no allocation)`);
  log(`  protobufjs 8 (Type.encode(...).finish()):  ${Math.round(library).toLocaleString('en')} messages/s  (${(1e9 / library).toFixed(0)} ns each, a new buffer each)`);
  log(`  ratio: hand encoder is ${(hand / library).toFixed(1)}× protobufjs`);
  log(`  a DNS worker's logging per query (sample, AUTH_QUERY + AUTH_RESPONSE into the ring): ${(1e9 / perQuery).toFixed(0)} ns`);
}

/** fstrm_capture on a unix socket, writing to /dev/null; resolves its frame count when stopped. */
async function startCollector(socket: string): Promise<{ pid: number; stop(): Promise<number> }> {
  const child = spawn('fstrm_capture', ['-t', 'protobuf:dnstap.Dnstap', '-u', socket, '-w', '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: child.stderr! });
  let frames = -1;
  const opened = new Promise<void>((resolve) => lines.on('line', (line) => {
    if (line.includes('opened output file')) resolve();
    const written = /wrote (\d+) frames/.exec(line);
    if (written) frames = Number(written[1]);
  }));
  await opened;
  return {
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      return frames;
    },
  };
}

/** The bench's popsteer with its admin API on `adminPort` (for the dnstap counters) and extra flags. */
function variant(name: string, adminPort: number, extra: string[]): ServerDefinition {
  return {
    ...popsteer,
    name,
    prepare(scenario, dir, port) {
      const prepared = popsteer.prepare(scenario, dir, port);
      const args = [...prepared.args];
      const admin = args.indexOf('--admin');
      if (admin >= 0) args.splice(admin, 2);
      return { command: prepared.command, args: [...args, '--admin', `127.0.0.1:${adminPort}`, '--workers', String(WORKERS), ...extra] };
    },
  };
}

async function dnstapMetrics(adminPort: number): Promise<{ frames: number; dropped: number }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const value = (name: string): number => Number(/\s(\S+)$/.exec(text.split('\n').find((l) => l.startsWith(`${name}{`)) ?? ' NaN')![1]);
  return { frames: value('popsteer_dnstap_frames_total'), dropped: value('popsteer_dnstap_dropped_total') };
}

async function throughput(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'popsteer-bench-dnstap-'));
  const scenario = loadScenario();
  const sets = writeQuerySets(scenario, work, 3500);
  const socket = join(work, 'collector.sock');
  const collector = await startCollector(socket);
  const offAdmin = await freePort();
  const onAdmin = await freePort();
  const off = await startBenchServer(variant('popsteer', offAdmin, []), scenario, join(work, 'off'));
  const on = await startBenchServer(variant('popsteer+dnstap', onAdmin, ['--dnstap', `unix:${socket}`]), scenario, join(work, 'on'));
  const load = benchLoad(env);
  const results: Array<{ label: string; run: DnsperfResult }> = [];
  try {
    for (const server of [off, on]) await runDnsperf({ port: server.port, dataFile: sets.ecs, seconds: 2, load }); // warm-up
    const before = await dnstapMetrics(onAdmin);
    for (let pair = 0; pair < PAIRS; pair++) {
      for (const [label, server] of [['off', off], ['on', on]] as const) {
        const serverBefore = cpuSeconds(server.pid);
        const collectorBefore = cpuSeconds(collector.pid);
        const run = await runDnsperf({ port: server.port, dataFile: sets.ecs, seconds: SECONDS, load });
        const serverAfter = cpuSeconds(server.pid);
        const collectorAfter = cpuSeconds(collector.pid);
        const us = (seconds: number): string => Math.max(0, (seconds / run.completed) * 1e6).toFixed(2);
        results.push({ label, run });
        log(`  pair ${pair + 1} dnstap ${label.padEnd(3)}: ${Math.round(run.qps).toLocaleString('en').padStart(8)} q/s, ${run.lost} lost, avg ${run.avgLatencyMs.toFixed(3)} ms; `
          + `CPU µs per query: server ${us(serverAfter.user - serverBefore.user)} user + ${us(serverAfter.system - serverBefore.system)} system, `
          + `fstrm_capture ${us(collectorAfter.user + collectorAfter.system - collectorBefore.user - collectorBefore.system)}`);
      }
    }
    const after = await dnstapMetrics(onAdmin);
    await on.stop();
    await off.stop();
    const received = await collector.stop();
    const median = (label: string): number => results.filter((r) => r.label === label).map((r) => r.run.qps).sort((a, b) => a - b)[Math.floor(PAIRS / 2)];
    const ratios = Array.from({ length: PAIRS }, (_, i) => results[2 * i + 1].run.qps / results[2 * i].run.qps);
    const frames = after.frames - before.frames;
    const dropped = after.dropped - before.dropped;
    log(`  median: off ${Math.round(median('off')).toLocaleString('en')} q/s, on ${Math.round(median('on')).toLocaleString('en')} q/s; on ÷ off per pair: ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
    log(`  dnstap during the measured runs: ${frames.toLocaleString('en')} frames queued, ${dropped.toLocaleString('en')} dropped (${((dropped / Math.max(1, frames + dropped)) * 100).toFixed(1)}%); fstrm_capture received ${received.toLocaleString('en')} frames in all`);
  } finally {
    await on.stop();
    await off.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  log(`dnstap benchmark — ${new Date().toISOString()} — ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  microBenchmarks();
  if (env.BENCH_DNSTAP_MICRO_ONLY === '1') return;
  const load = benchLoad(env);
  log(`throughput: popsteer (${WORKERS} DNS workers, batched UDP) on the bench's ECS file, dnsperf -c ${load.clients} -T ${load.threads} -q ${load.outstanding}, ${SECONDS} s per run, ${PAIRS} pairs off/on`);
  log('  dnstap on = --dnstap unix:<socket> (AUTH_QUERY and AUTH_RESPONSE for every query) read by fstrm_capture -w /dev/null');
  await throughput();
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`dnstap bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
