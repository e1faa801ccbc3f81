// The answer cache (server/engine/answer-cache.ts) must never change an
// answer: every reply it sends is compared byte for byte with what a second
// engine, without a cache, writes for the same query from the same resolver
// at the same moment, over a stream of steered, static, missing and refused
// names with and without ECS, before and after a health change and a new
// snapshot. Answers that differ per client network (weighted steering),
// carry a cookie or went over TCP are never stored.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { rmSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { AnswerCache, ECS_USED, ReplyFacts } from '../../../server/engine/answer-cache.ts';
import { Counters } from '../../../server/engine/counters.ts';
import { Engine, TRANSPORT_TCP, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import { createSteering } from '../../../server/engine/steering-hook.ts';
import { bumpEpoch, createHealthTable, writeHealth } from '../../../server/health/table.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { compileWorld, syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
after(() => rmSync(world.dir, { recursive: true, force: true }));

const POLICIES = `policies:
  - name: www.cdn.example
    ttl: 60
    unknown_location: self
    pools: { edge: { pops: all } }
    rules:
      - { name: nearest, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }
  - name: video.cdn.example
    ttl: 30
    pools: { edge: { pops: [ams, fra, lhr] } }
    rules:
      - { name: spread, match: default, pool: edge, steps: [healthy, { weighted: { mode: sticky } }, { first: 1 }] }
`;
const snapshot = compileWorld(world, POLICIES);
const LHR = world.geo.catalog.pops.findIndex((p) => p.id === 'lhr');

interface QueryOptions { subnet?: string; type?: string; cookie?: boolean; dnssecOk?: boolean }

function query(name: string, id: number, options: QueryOptions = {}): Uint8Array {
  const ednsOptions: Array<Record<string, unknown>> = [];
  if (options.subnet) {
    const [address, prefix] = options.subnet.split('/');
    ednsOptions.push({ code: 'CLIENT_SUBNET', family: address.includes(':') ? 2 : 1, sourcePrefixLength: Number(prefix), scopePrefixLength: 0, ip: address });
  }
  if (options.cookie) ednsOptions.push({ code: 'COOKIE', data: Buffer.from('0123456789abcdef', 'hex') });
  return new Uint8Array(dnsPacket.encode({
    type: 'query', id, flags: 0,
    questions: [{ type: (options.type ?? 'A') as 'A', name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: options.dnssecOk ? dnsPacket.DNSSEC_OK : 0, options: ednsOptions } as never],
  }));
}

/** An engine with its steering, as a DNS worker holds one. */
function engineOver(snap: DnsSnapshot, health: Int32Array): Engine {
  const counters = new Counters(null, 0);
  const engine = new Engine(snap, { popId: 'ams', versionBind: null, counters, cookieSecret: 7 });
  engine.steering = createSteering({ tables: snap.steering!, health, signals: null, ecsTrust: [], counters });
  return engine;
}

/** The worker's UDP path: the cache first, else the engine, whose reply is stored when it may be sent again. */
class CachedPath {
  readonly cache: AnswerCache;
  engine: Engine;
  readonly health: Int32Array;
  stores = 0;
  private readonly out = Buffer.alloc(65535);

  constructor(snap: DnsSnapshot, health: Int32Array, entries = 1024) {
    this.cache = new AnswerCache(entries);
    this.engine = engineOver(snap, health);
    this.health = health;
  }

  answer(packet: Uint8Array, resolver: string, transport = TRANSPORT_UDP): Buffer {
    if (transport === TRANSPORT_UDP) {
      const size = this.cache.answer(packet, packet.length, resolver, this.health[0], this.out);
      if (size > 0) return Buffer.from(this.out.subarray(0, size));
    }
    const size = this.engine.handle(packet, packet.length, transport, { address: resolver, family: resolver.includes(':') ? 1 : 0 });
    if (transport === TRANSPORT_UDP && this.engine.reusable) {
      const facts = new ReplyFacts();
      facts.rcode = this.engine.writer.buf[3] & 0x0f;
      this.cache.store(packet, packet.length, resolver, this.health[0], this.engine.writer.buf, size, facts);
      this.stores++;
    }
    return Buffer.from(this.engine.writer.buf.subarray(0, size));
  }
}

function reference(engine: Engine, packet: Uint8Array, resolver: string): Buffer {
  const size = engine.handle(packet, packet.length, TRANSPORT_UDP, { address: resolver, family: resolver.includes(':') ? 1 : 0 });
  return Buffer.from(engine.writer.buf.subarray(0, size));
}

const STREAM: Array<[string, QueryOptions]> = [
  ['www.cdn.example', { subnet: '81.2.69.0/24' }], // lhr
  ['www.cdn.example', { subnet: '81.2.90.0/24' }], // mad
  ['www.cdn.example', { subnet: '81.3.1.0/24' }], // fra
  ['www.cdn.example', { subnet: '24.48.1.0/24' }], // iad
  ['www.cdn.example', { subnet: '2a02:c7f:1::/56' }],
  ['www.cdn.example', { subnet: '10.1.2.0/24' }], // private: the resolver decides
  ['www.cdn.example', {}],
  ['www.cdn.example', { subnet: '81.2.69.0/24', type: 'AAAA' }],
  ['www.cdn.example', { subnet: '81.2.69.0/24', type: 'TXT' }],
  ['WwW.Cdn.ExAmple', { subnet: '81.2.69.0/24' }], // the question is echoed in the asker's case
  ['ns1.cdn.example', {}],
  ['cdn.example', { type: 'NS' }],
  ['missing.cdn.example', { subnet: '81.3.1.0/24' }],
  ['www.other.example', {}],
  ['www.cdn.example', { subnet: '81.2.69.0/24', dnssecOk: true }],
];

test('a reply from the cache is the one the engine writes, with the asker\'s ID, for every kind of name', () => {
  const health = new Int32Array(createHealthTable(world.geo.catalog.count));
  const path = new CachedPath(snapshot, health);
  const plain = engineOver(snapshot, health);
  let id = 1;
  for (let pass = 0; pass < 3; pass++) {
    for (const resolver of ['198.51.100.53', '2001:db8::53']) {
      for (const [name, options] of STREAM) {
        const packet = query(name, id++, options);
        assert.deepEqual(path.answer(packet, resolver), reference(plain, packet, resolver), `${name} ${JSON.stringify(options)} from ${resolver}, pass ${pass}`);
      }
    }
  }
  assert.equal(path.cache.misses, STREAM.length * 2, 'each query and resolver missed once');
  assert.equal(path.cache.hits, STREAM.length * 2 * 2, 'and hit on every later pass');
});

test('a health change or a new snapshot is a miss, and the answer follows it', () => {
  const health = new Int32Array(createHealthTable(world.geo.catalog.count));
  const path = new CachedPath(snapshot, health);
  const plain = engineOver(snapshot, health);
  const london = (id: number): Uint8Array => query('www.cdn.example', id, { subnet: '81.2.69.0/24' });
  const before = path.answer(london(1), '198.51.100.53');
  assert.deepEqual(path.answer(london(1), '198.51.100.53'), before);
  assert.equal(path.cache.hits, 1);

  writeHealth(health, LHR, false);
  bumpEpoch(health);
  const after = path.answer(london(1), '198.51.100.53');
  assert.equal(path.cache.hits, 1, 'the entry made before the health change is not used');
  assert.notDeepEqual(after, before, 'lhr is down: another PoP answers');
  assert.deepEqual(after, reference(plain, london(1), '198.51.100.53'));

  path.cache.invalidate();
  path.engine = engineOver(snapshot, health);
  path.answer(london(1), '198.51.100.53');
  assert.equal(path.cache.hits, 1, 'a new snapshot starts a new generation');
  path.answer(london(2), '198.51.100.53');
  assert.equal(path.cache.hits, 2);
});

test('per-network steering, cookies and TCP are never stored; another resolver is another key', () => {
  const health = new Int32Array(createHealthTable(world.geo.catalog.count));
  const path = new CachedPath(snapshot, health);
  path.answer(query('video.cdn.example', 1, { subnet: '81.2.69.0/24' }), '198.51.100.53');
  path.answer(query('www.cdn.example', 2, { subnet: '81.2.69.0/24', cookie: true }), '198.51.100.53');
  path.answer(query('www.cdn.example', 3, { subnet: '81.2.69.0/24' }), '198.51.100.53', TRANSPORT_TCP);
  assert.equal(path.stores, 0, 'weighted (sticky per client network), cookie and TCP answers are not stored');

  path.answer(query('www.cdn.example', 4, { subnet: '81.2.69.0/24' }), '198.51.100.53');
  assert.equal(path.stores, 1);
  path.answer(query('www.cdn.example', 5, { subnet: '81.2.69.0/24' }), '198.51.100.54');
  assert.equal(path.cache.hits, 0, 'the same bytes from another resolver miss');
  path.answer(query('www.cdn.example', 6, { subnet: '81.2.69.0/24' }), '198.51.100.53');
  assert.equal(path.cache.hits, 1);
});

test('a full set replaces its least recently used entry, and a hit returns the facts stored with it', () => {
  const cache = new AnswerCache(4); // one set of four ways
  const out = new Uint8Array(600);
  const reply = (tag: number): Uint8Array => new Uint8Array(40).fill(tag);
  const store = (packet: Uint8Array, tag: number): void => {
    assert.equal(cache.answer(packet, packet.length, 'r', 0, out), 0);
    const facts = new ReplyFacts();
    facts.qtype = 1;
    facts.rcode = 3;
    facts.responseKey = tag;
    facts.ecs = ECS_USED;
    facts.decisionSlot = 10 + tag;
    facts.outcomeSlot = -1;
    facts.questionEnd = 33;
    cache.store(packet, packet.length, 'r', 0, reply(tag), 40, facts);
  };
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((label) => query(`${label}.cdn.example`, 1));
  store(a, 1);
  store(b, 2);
  store(c, 3);
  store(d, 4);
  assert.equal(cache.answer(a, a.length, 'r', 0, out), 40, 'a is kept');
  assert.deepEqual({ ...cache.facts }, { qtype: 1, rcode: 3, responseKey: 1, ecs: ECS_USED, decisionSlot: 11, outcomeSlot: -1, questionEnd: 33 });
  assert.equal(out[0], a[0], 'the asker\'s ID');
  assert.equal(out[2], 1, 'the stored reply after the ID');
  store(e, 5); // b was used least recently
  assert.equal(cache.answer(b, b.length, 'r', 0, out), 0, 'b was replaced');
  for (const [packet, tag] of [[a, 1], [c, 3], [d, 4], [e, 5]] as const) {
    assert.equal(cache.answer(packet, packet.length, 'r', 0, out), 40);
    assert.equal(cache.facts.responseKey, tag);
  }
});

test('queries and replies too long for a slot are answered without the cache', () => {
  const cache = new AnswerCache(16);
  const out = new Uint8Array(2048);
  const long = query(`${'x'.repeat(60)}.${'y'.repeat(60)}.${'z'.repeat(60)}.cdn.example`, 1);
  assert.ok(long.length > 200, 'longer than a key slot');
  assert.equal(cache.answer(long, long.length, 'r', 0, out), 0);
  cache.store(long, long.length, 'r', 0, new Uint8Array(40), 40, new ReplyFacts());
  assert.equal(cache.answer(long, long.length, 'r', 0, out), 0, 'not stored');
  const short = query('a.cdn.example', 1);
  assert.equal(cache.answer(short, short.length, 'r', 0, out), 0);
  cache.store(short, short.length, 'r', 0, new Uint8Array(600), 600, new ReplyFacts());
  assert.equal(cache.answer(short, short.length, 'r', 0, out), 0, 'a 600-octet reply is not stored');
});
