// Codec micro-benchmark (prints figures; not a test): for one query carrying
// ECS, the operations per second of
//   (a) popsteer's codec: parseQuery into a reused QueryView, then
//       ResponseWriter.writeAnswer of a one-A-record AnswerTemplate
//       (built once with TemplateBuilder), OPT with the ECS echo included;
//   (b) dns2's codec doing the same job: Packet.parse of the query, then a
//       response Packet (createResponseFromRequest + the A record) toBuffer().
// Single thread, so one core. Target for (a): at least 1,000,000 ops/s.
//
//   node test/bench/codec.bench.ts                 (about 8 s)
//   BENCH_CODEC_SECONDS=0.5 node test/bench/codec.bench.ts   (quick look)

import assert from 'node:assert/strict';
import { cpus } from 'node:os';
import * as dnsPacket from 'dns-packet';
import { Packet } from 'dns2';
import { SECTION_ANSWER, TemplateBuilder } from '../../server/dns/builder.ts';
import { nameToWire } from '../../server/dns/name.ts';
import { PARSE_OK, QueryView, parseQuery } from '../../server/dns/query.ts';
import { encodeIPv4 } from '../../server/dns/rdata.ts';
import { ResponseWriter, udpSizeLimit } from '../../server/dns/writer.ts';
import { TYPE, ecs, query } from '../conformance/wire.ts';

const SECONDS = Number(process.env.BENCH_CODEC_SECONDS ?? 1.5);
const ROUNDS = 3;
const TARGET = 1_000_000;

const QUERY = Buffer.from(query('www.cdn.example', TYPE.A, { id: 0x4242, edns: { udpSize: 1232, options: [ecs(1, 24, 0, [198, 51, 100])] } }));
const TEMPLATE = new TemplateBuilder(nameToWire('cdn.example')).add(SECTION_ANSWER, 'qname', TYPE.A, 30, [encodeIPv4('192.0.2.10')]).build(0, true);

const view = new QueryView();
const writer = new ResponseWriter();

function ours(): number {
  if (parseQuery(QUERY, QUERY.length, view) !== PARSE_OK) throw new Error('parse failed');
  return writer.writeAnswer(view, QUERY, TEMPLATE, udpSizeLimit(view));
}

interface Dns2Option { ednsCode: number; scopePrefixLength?: number }

/** dns2's response: the request's question, the A record, and an OPT echoing the request's ECS (as ours does). */
function dns2Response(): Packet {
  const request = Packet.parse(QUERY);
  const response = Packet.createResponseFromRequest(request);
  response.answers.push({ name: 'www.cdn.example', type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 30, address: '192.0.2.10' });
  const opt = request.additionals.find((r) => (r as { type: number }).type === Packet.TYPE.EDNS) as { rdata: Dns2Option[] } | undefined;
  const echo = (opt?.rdata ?? []).filter((o) => o.ednsCode === 8).map((o) => ({ ...o, scopePrefixLength: 0 }));
  response.additionals.push((Packet.Resource.EDNS as unknown as (rdata: unknown[], opts: unknown) => unknown)(echo, { udpPayloadSize: 1232 }));
  return response;
}

function viaDns2(): number {
  return dns2Response().toBuffer().length;
}

/** Both produce the same answer (one A record, ECS echoed), so the race is fair. */
function checkOutputs(): void {
  const a = dnsPacket.decode(Buffer.from(writer.buf.subarray(0, ours())));
  const b = dnsPacket.decode(dns2Response().toBuffer());
  for (const reply of [a, b]) {
    assert.deepEqual(reply.answers?.map((r) => (r as { data: string }).data), ['192.0.2.10']);
    const opt = reply.additionals?.find((r) => r.type === 'OPT') as { options: Array<{ code: number }> } | undefined;
    assert.ok(opt?.options.some((o) => o.code === 8), 'ECS echoed');
  }
}

/** Runs `op` in batches for `seconds`; returns operations per second. */
function measure(op: () => number, seconds: number): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) sink += op(); // warm-up: let the JIT settle
  const batch = 1000;
  let ops = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < batch; i++) sink += op();
    ops += batch;
    elapsed = process.hrtime.bigint() - start;
  }
  if (sink === 0) throw new Error('no output');
  return ops / (Number(elapsed) / 1e9);
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

checkOutputs();
const oursRuns: number[] = [];
const dns2Runs: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  oursRuns.push(measure(ours, SECONDS));
  dns2Runs.push(measure(viaDns2, SECONDS));
}
const a = median(oursRuns);
const b = median(dns2Runs);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
process.stdout.write([
  `codec micro-benchmark, ${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, one thread`,
  `query: www.cdn.example A with EDNS and ECS ${QUERY.length} octets; answer: one A record, OPT with the ECS echo`,
  `  popsteer parse + answer encode: ${fmt(a).padStart(11)} ops/s  (median of ${ROUNDS} × ${SECONDS} s; runs ${oursRuns.map(fmt).join(', ')})`,
  `  dns2 decode + response encode:  ${fmt(b).padStart(11)} ops/s  (runs ${dns2Runs.map(fmt).join(', ')})`,
  `  ratio: popsteer is ${(a / b).toFixed(1)}× dns2; target ≥ ${fmt(TARGET)} ops/s: ${a >= TARGET ? 'met' : 'NOT met'}`,
  '',
].join('\n'));
