// Response rate limiting, bucket by bucket, on an injected clock. Replies are
// real ones: each query goes through the Engine over the conformance zone,
// and the limiter gets the response key the engine gives the answer, as in
// the DNS worker. So the classification is tested end to end: names and
// types, NXDOMAIN per zone, errors per network, and the keys that close the
// bypasses — a wildcard's random labels, names below a delegation point,
// random types at one name — each sharing one bucket like a fixed name.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { Engine, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import {
  RRL_DROP, RRL_SEND, RRL_SLIP, ResponseRateLimiter, slipReply, type LimitedNetworkEvent, type RrlAction, type RrlConfig,
} from '../../../server/rrl/limiter.ts';
import { parseCidr, type CidrNetwork, type CidrProblem } from '../../../server/lib/cidr.ts';
import { CONFORMANCE_CONFIG } from '../../conformance/cases.ts';
import { zonesOnlySnapshot } from '../../conformance/snapshot.ts';
import { query, TYPE } from '../../conformance/wire.ts';

const engine = new Engine(zonesOnlySnapshot(CONFORMANCE_CONFIG), { popId: 'test', versionBind: null });

/** Answers `qname`/`qtype` with the engine; the rcode and response key the limiter is given. */
function answer(qname: string, qtype: number, edns?: { udpSize: number }): { rcode: number; key: number; size: number; packet: Uint8Array } {
  const packet = query(qname, qtype, edns ? { edns } : {});
  const size = engine.handle(packet, packet.length, TRANSPORT_UDP, { address: '198.51.100.7', family: 0 });
  return { rcode: engine.writer.buf[3] & 0x0f, key: engine.responseKey, size, packet };
}

/** A limiter on a clock the test moves by hand. */
function limiter(overrides: Partial<RrlConfig> = {}): { check(client: string, qname: string, qtype?: number): RrlAction; advance(ms: number): void; events: LimitedNetworkEvent[]; rrl: ResponseRateLimiter } {
  const events: LimitedNetworkEvent[] = [];
  const rrl = new ResponseRateLimiter({ responsesPerSecond: 5, errorsPerSecond: 2, windowSeconds: 3, slip: 2, exempt: [], ...overrides }, (e) => events.push(e));
  let now = 1000;
  return {
    rrl,
    events,
    advance(ms) { now += ms; },
    check(client, qname, qtype = TYPE.A) {
      const { rcode, key } = answer(qname, qtype);
      return rrl.check(client, key, rcode, now);
    },
  };
}

/** How many of `count` checks (spread evenly over `ms`) are sent. */
function sentOf(l: ReturnType<typeof limiter>, count: number, ms: number, client: string, qname: string | ((i: number) => string), qtype: number | ((i: number) => number) = TYPE.A): number {
  let sent = 0;
  for (let i = 0; i < count; i++) {
    if (l.check(client, typeof qname === 'string' ? qname : qname(i), typeof qtype === 'number' ? qtype : qtype(i)) === RRL_SEND) sent++;
    l.advance(ms / count);
  }
  return sent;
}

test('a burst gets one second of tokens, then identical replies are limited', () => {
  const l = limiter();
  const actions = Array.from({ length: 8 }, () => l.check('198.51.100.7', 'www.cdn.example'));
  assert.deepEqual(actions.slice(0, 5), [RRL_SEND, RRL_SEND, RRL_SEND, RRL_SEND, RRL_SEND]);
  assert.ok(actions.slice(5).every((a) => a !== RRL_SEND), `after 5 tokens: ${actions}`);
});

test('a client at or below the rate is never limited', () => {
  const l = limiter();
  // 5 per second for 10 seconds, evenly spaced.
  assert.equal(sentOf(l, 50, 10_000, '198.51.100.7', 'www.cdn.example'), 50);
});

test('a flood above the rate stays limited until it has slowed down; the bucket is full again after the window', () => {
  const l = limiter();
  // 100 per second for 2 s: the burst passes, then the debt reaches the floor (−rate × window).
  const sent = sentOf(l, 200, 2000, '198.51.100.7', 'www.cdn.example');
  assert.ok(sent >= 5 && sent <= 7, `sent ${sent} of 200`);
  l.advance(1000);
  assert.notEqual(l.check('198.51.100.7', 'www.cdn.example'), RRL_SEND, 'one quiet second does not pay back the debt');
  l.advance(3000 + 1000);
  assert.equal(sentOf(l, 5, 0, '198.51.100.7', 'www.cdn.example'), 5, 'after the window a full burst passes again');
});

test('slip: every Nth limited reply is sent truncated; slip 0 drops them all', () => {
  for (const slip of [0, 1, 2, 3]) {
    const l = limiter({ slip });
    for (let i = 0; i < 5; i++) l.check('198.51.100.7', 'www.cdn.example');
    const limited = Array.from({ length: 12 }, () => l.check('198.51.100.7', 'www.cdn.example'));
    const expected = limited.map((_, i) => (slip > 0 && (i + 1) % slip === 0 ? RRL_SLIP : RRL_DROP));
    assert.deepEqual(limited, expected, `slip ${slip}`);
  }
});

test('the slipped reply is header and question with TC=1 and no records, never larger than the query', () => {
  const { packet, size } = answer('www.cdn.example', TYPE.A, { udpSize: 1232 });
  const slipped = slipReply(engine.writer.buf, engine.view);
  assert.ok(slipped <= packet.length);
  const decoded = dnsPacket.decode(Buffer.from(engine.writer.buf.subarray(0, slipped)));
  assert.ok(size > slipped);
  assert.equal(decoded.flag_tc, true);
  assert.equal(decoded.id, 0x1234);
  assert.deepEqual(decoded.questions, [{ name: 'www.cdn.example', type: 'A', class: 'IN' }]);
  assert.equal(decoded.answers!.length + decoded.authorities!.length + decoded.additionals!.length, 0);
});

test('the network is the /24 (IPv4) or /56 (IPv6): neighbours share a bucket, the next network has its own', () => {
  const l = limiter();
  for (let i = 0; i < 5; i++) assert.equal(l.check(`198.51.100.${10 + i}`, 'www.cdn.example'), RRL_SEND);
  assert.notEqual(l.check('198.51.100.200', 'www.cdn.example'), RRL_SEND, 'same /24');
  assert.equal(l.check('198.51.101.1', 'www.cdn.example'), RRL_SEND, 'next /24');
  for (let i = 0; i < 5; i++) assert.equal(l.check(`2001:db8:0:${i}::1`, 'www.cdn.example'), RRL_SEND);
  assert.notEqual(l.check('2001:db8:0:ff::9', 'www.cdn.example'), RRL_SEND, 'same /56 (2001:db8:0:00xx::)');
  assert.equal(l.check('2001:db8:0:100::1', 'www.cdn.example'), RRL_SEND, 'next /56');
});

test('identical means the same name and type: other names and types have their own buckets', () => {
  const l = limiter();
  assert.equal(sentOf(l, 20, 0, '198.51.100.7', 'www.cdn.example'), 5);
  assert.notEqual(l.check('198.51.100.7', 'WWW.Cdn.Example'), RRL_SEND, 'letter case does not make a reply different');
  assert.equal(l.check('198.51.100.7', 'ns1.cdn.example'), RRL_SEND);
  assert.equal(l.check('198.51.100.7', 'www.cdn.example', TYPE.AAAA), RRL_SEND);
  assert.equal(l.check('198.51.100.7', 'www.cdn.example', TYPE.ANY), RRL_SEND, 'ANY has its own');
});

/** A random label, as a reflection flood would use to look like a new question each time. */
const random = (i: number): string => `r${(i * 2654435761 >>> 0).toString(36)}`;

test('NXDOMAIN replies share one bucket per zone, whatever the random name', () => {
  assert.equal(sentOf(limiter(), 50, 0, '198.51.100.7', (i) => `${random(i)}.cdn.example`), 5);
});

test('wildcard answers share the wildcard\'s bucket, whatever the label asked', () => {
  assert.equal(answer('x1.assets.cdn.example', TYPE.A).key, answer('y2.assets.cdn.example', TYPE.A).key);
  assert.equal(sentOf(limiter(), 2000, 0, '198.51.100.7', (i) => `${random(i)}.assets.cdn.example`), 5);
});

test('referrals share the delegation point\'s bucket, whatever name below it', () => {
  assert.equal(answer('a.lab.cdn.example', TYPE.A).key, answer('lab.cdn.example', TYPE.NS).key);
  assert.equal(sentOf(limiter(), 2000, 0, '198.51.100.7', (i) => `${random(i)}.${random(i + 1)}.lab.cdn.example`), 5);
});

test('NODATA, and a CNAME answered for any type, share one bucket per name whatever the type', () => {
  // Types www has no records of: NODATA.
  const nodataTypes = (i: number): number => 1000 + i;
  assert.equal(sentOf(limiter(), 2000, 0, '198.51.100.7', 'www.cdn.example', nodataTypes), 5);
  // static is a CNAME: every type gets the CNAME answer.
  assert.equal(sentOf(limiter(), 2000, 0, '198.51.100.7', 'static.cdn.example', nodataTypes), 5);
  // A type with records of its own is not NODATA: it keeps its own bucket.
  const l = limiter();
  sentOf(l, 20, 0, '198.51.100.7', 'www.cdn.example', nodataTypes);
  assert.equal(l.check('198.51.100.7', 'www.cdn.example', TYPE.AAAA), RRL_SEND);
});

test('errors share one bucket per network at errors-per-second', () => {
  const l = limiter();
  assert.equal(sentOf(l, 30, 0, '198.51.100.7', (i) => `name${i}.elsewhere.test`), 2);
  assert.equal(l.check('198.51.100.7', 'www.cdn.example'), RRL_SEND, 'answers keep their own bucket');
});

test('exempt networks are never limited, and the exempt prefix may be narrower than /24', () => {
  const l = limiter({ exempt: ['198.51.100.7/32', '2001:db8::/32'] });
  assert.equal(sentOf(l, 100, 0, '198.51.100.7', 'www.cdn.example'), 100);
  assert.equal(sentOf(l, 100, 0, '2001:db8:5::1', 'www.cdn.example'), 100);
  assert.equal(sentOf(l, 100, 0, '198.51.100.8', 'www.cdn.example'), 5, 'a neighbour outside the /32 is limited');
});

test('one log event per limited network per window, carrying the count since the last one', () => {
  const l = limiter();
  sentOf(l, 100, 1000, '203.0.113.9', 'www.cdn.example');
  // 100 per second for 5 s from another network: an event at its first limited reply, one more a window (3 s) later.
  let limited = 0;
  const limitedAtEvent: number[] = [];
  for (let i = 0; i < 500; i++) {
    const before = l.events.length;
    if (l.check('198.51.100.7', 'www.cdn.example') !== RRL_SEND) limited++;
    if (l.events.length > before) limitedAtEvent.push(limited);
    l.advance(10);
  }
  const mine = l.events.filter((e) => e.network === '198.51.100.0/24');
  assert.deepEqual(l.events.map((e) => e.network), ['203.0.113.0/24', '198.51.100.0/24', '198.51.100.0/24']);
  assert.deepEqual(mine.map((e) => e.limited), [1, limitedAtEvent[1] - limitedAtEvent[0]]);
  assert.ok(mine[1].limited >= 290, `limited during one window at 100/s: ${mine[1].limited}`);
});

test('the table has a fixed size: 100,000 networks recycle old entries, and a live flood stays limited', () => {
  const l = limiter({ tableSize: 1024 });
  assert.equal(l.rrl.capacity, 1024);
  for (let i = 0; i < 100_000; i++) {
    l.check(`${10 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}.1`, 'www.cdn.example');
    // Interleaved: a flooder keeps its own entry warm.
    if (i % 10 === 0) l.check('198.51.100.7', 'www.cdn.example');
    l.advance(0.1);
  }
  assert.equal(l.rrl.capacity, 1024);
  assert.notEqual(l.check('198.51.100.7', 'www.cdn.example'), RRL_SEND, 'the flooder is still limited');
});

test('exempt networks are validated: host bits and bad syntax are errors, IPv6 loopback is not', () => {
  const problem = (text: string): string => (parseCidr(text, 'match') as CidrProblem).message;
  assert.equal((parseCidr('198.51.100.0/24', 'match') as CidrNetwork).prefixLength, 24);
  assert.equal((parseCidr('::1/128', 'match') as CidrNetwork).prefixLength, 128, 'the default rrl_exempt parses');
  assert.match(problem('198.51.100.1/24'), /host bits/);
  assert.match(problem('198.51.100.0'), /CIDR/);
  assert.match(problem('2001:db8::/129'), /CIDR/);
  assert.throws(() => limiter({ exempt: ['nonsense'] }), /exempt/);
  assert.doesNotThrow(() => limiter({ exempt: ['127.0.0.1/32', '::1/128', '::/0'] }));
});
