// Property-based fuzzing of the parser and the whole engine with fast-check:
// random bytes, and valid queries put through random mutations. Whatever
// comes in, nothing throws, every reply decodes (dns-packet and dns2), keeps
// the header rules, and is no larger than the requestor allowed.
//
// FUZZ_RUNS sets the number of cases per property (default 2000; the nightly
// run uses 1000000). FUZZ_SEED replays a failure that fast-check reported.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Engine, TRANSPORT_TCP, TRANSPORT_UDP } from '../../server/engine/engine.ts';
import { zonesOnlySnapshot } from './snapshot.ts';
import { PARSE_BADVERS, PARSE_DROP, PARSE_FORMERR, PARSE_NOTIMP, PARSE_OK, QueryView, parseQuery } from '../../server/dns/query.ts';
import { CONFORMANCE_CONFIG } from './cases.ts';
import { checkInvariants } from './verify.ts';
import { CLASS_CH, TYPE, cookie, ecs, name, nsid, option, query, rr, pointer } from './wire.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const params = { numRuns: RUNS, seed: SEED, endOnFailure: true };

const engine = new Engine(zonesOnlySnapshot(CONFORMANCE_CONFIG), { popId: 'fuzz-pop', versionBind: 'fuzz 1.0' });
const CLIENT = { address: '127.0.0.1', family: 0 };

/** Valid queries covering every branch of the parser and the lookup. */
const SEEDS: Uint8Array[] = [
  query('www.cdn.example', TYPE.A),
  query('WWW.cdn.example', TYPE.AAAA, { edns: { udpSize: 4096, dnssecOk: true, options: [nsid(), ecs(1, 24, 0, [192, 0, 2]), cookie(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))] } }),
  query('long-txt.cdn.example', TYPE.TXT, { edns: { udpSize: 600 } }),
  query('long-txt.cdn.example', TYPE.TXT),
  query('x.y.assets.cdn.example', TYPE.A, { edns: { options: [ecs(2, 56, 0, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0])] } }),
  query('img.cdn.example', TYPE.MX),
  query('host.lab.cdn.example', TYPE.A),
  query('mx-many.cdn.example', TYPE.MX),
  query('cdn.example', TYPE.ANY, { edns: { options: [option(65000, Uint8Array.of(1, 2, 3))] } }),
  query('nope.child.example.test', TYPE.A),
  query('id.server', TYPE.TXT, { klass: CLASS_CH, edns: { options: [nsid()] } }),
  query('www.cdn.example', TYPE.A, { additionals: [rr(pointer(12), TYPE.A, 1, 60, Uint8Array.of(192, 0, 2, 1))], edns: {} }),
  query(name('cdn.example'), TYPE.SOA, { edns: { version: 1 } }),
];

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'u16'; at: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  // Interesting 16-bit values (counts, lengths, types) at any offset.
  fc.record({ kind: fc.constant('u16' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 2, 0xff, 0x100, 0x3fff, 0xc00c, 0xffff, 41, 12, 8) }),
);

function mutate(seed: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Buffer.from(seed);
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    switch (m.kind) {
      case 'set': bytes[at] = m.value; break;
      case 'flip': bytes[at] ^= 1 << m.bit; break;
      case 'truncate': bytes = bytes.subarray(0, at); break;
      case 'insert': bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]); break;
      case 'delete': bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)]); break;
      case 'u16': if (at + 1 < bytes.length) bytes.writeUInt16BE(m.value, at); break;
    }
  }
  return Uint8Array.from(bytes);
}

const mutatedQuery = fc.tuple(fc.constantFrom(...SEEDS), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([seed, ms]) => mutate(seed, ms));
const randomBytes = fc.uint8Array({ minLength: 0, maxLength: 700 });
/** Random bytes behind a plausible header (QR=0, opcode 0, QDCOUNT 1), to get past the first checks. */
const randomBody = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 3 }))
  .map(([id, body, arcount]) => Uint8Array.from(Buffer.concat([Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, arcount]), body])));
const transport = fc.constantFrom('udp' as const, 'tcp' as const);

/** One message through the whole engine, checked against the rules every reply keeps. */
function engineProperty(packet: Uint8Array, via: 'udp' | 'tcp'): void {
  const input = Buffer.from(packet);
  const size = engine.handle(input, input.length, via === 'udp' ? TRANSPORT_UDP : TRANSPORT_TCP, CLIENT);
  assert.deepEqual(input, Buffer.from(packet), 'the query buffer is left untouched');
  if (size === 0) return;
  checkInvariants(packet, engine.writer.buf.subarray(0, size), via);
}

const STATUSES = new Set([PARSE_OK, PARSE_FORMERR, PARSE_NOTIMP, PARSE_BADVERS, PARSE_DROP]);
const view = new QueryView();

test(`parser: ${RUNS} random messages never throw and end in a known status`, () => {
  fc.assert(fc.property(fc.oneof(randomBytes, randomBody, mutatedQuery), (packet) => {
    const status = parseQuery(packet, packet.length, view);
    assert.ok(STATUSES.has(status));
    if (status === PARSE_OK) {
      assert.ok(view.hasQuestion || view.cookiePresent);
      assert.ok(view.questionEnd <= packet.length && view.keyLength <= 255);
    }
  }), params);
});

test(`engine: ${RUNS} random byte strings are answered by the rules or dropped`, () => {
  fc.assert(fc.property(fc.oneof(randomBytes, randomBody), transport, engineProperty), params);
});

test(`engine: ${RUNS} mutations of valid queries are answered by the rules or dropped`, () => {
  fc.assert(fc.property(mutatedQuery, transport, engineProperty), params);
});

test('after the fuzzing the engine still answers a good query', () => {
  const packet = query('www.cdn.example', TYPE.A);
  const size = engine.handle(packet, packet.length, TRANSPORT_UDP, CLIENT);
  const reply = checkInvariants(packet, engine.writer.buf.subarray(0, size), 'udp');
  assert.equal(reply.rcode, 0);
  assert.equal(reply.answers.length, 1);
});
