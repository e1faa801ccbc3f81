// Response rate limiting, bucket by bucket, on an injected clock: replies are
// real ones (the project's writer over templates), so the keys the limiter
// derives (qname + qtype, NXDOMAIN zone from the SOA owner pointer, errors per
// network) are tested on the bytes it sees in the worker.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { SECTION_ANSWER, SECTION_AUTHORITY, TemplateBuilder } from '../../../server/dns/builder.ts';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED } from '../../../server/dns/constants.ts';
import { nameToWire } from '../../../server/dns/name.ts';
import { QueryView, parseQuery } from '../../../server/dns/query.ts';
import { encodeIPv4, encodeSoa } from '../../../server/dns/rdata.ts';
import { ResponseWriter, TCP_SIZE_LIMIT } from '../../../server/dns/writer.ts';
import {
  RRL_DROP, RRL_SEND, RRL_SLIP, ResponseRateLimiter, slipReply, type LimitedNetworkEvent, type RrlAction, type RrlConfig,
} from '../../../server/rrl/limiter.ts';
import { parseNetwork } from '../../../server/rrl/network.ts';
import { query, TYPE } from '../../conformance/wire.ts';

const apex = nameToWire('cdn.example');
const soa = encodeSoa({ mname: nameToWire('ns1.cdn.example'), rname: nameToWire('hostmaster.cdn.example'), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 });
const TEMPLATES = {
  answer: new TemplateBuilder(apex).add(SECTION_ANSWER, 'qname', TYPE.A, 60, [encodeIPv4('192.0.2.1')]).build(RCODE_NOERROR, true),
  nxdomain: new TemplateBuilder(apex).add(SECTION_AUTHORITY, apex, TYPE.SOA, 60, soa).build(RCODE_NXDOMAIN, true),
  refused: new TemplateBuilder(null).build(RCODE_REFUSED, false),
};
type Kind = keyof typeof TEMPLATES;

const view = new QueryView();
const writer = new ResponseWriter();

/** A limiter on a clock the test moves by hand. */
function limiter(overrides: Partial<RrlConfig> = {}): { check(client: string, qname: string, kind?: Kind, qtype?: number): RrlAction; advance(ms: number): void; events: LimitedNetworkEvent[]; rrl: ResponseRateLimiter } {
  const events: LimitedNetworkEvent[] = [];
  const rrl = new ResponseRateLimiter({ responsesPerSecond: 5, errorsPerSecond: 2, windowSeconds: 3, slip: 2, exempt: [], ...overrides }, (e) => events.push(e));
  let now = 1000;
  return {
    rrl,
    events,
    advance(ms) { now += ms; },
    check(client, qname, kind = 'answer', qtype = TYPE.A) {
      const packet = query(qname, qtype);
      parseQuery(packet, packet.length, view);
      const size = writer.writeAnswer(view, packet, TEMPLATES[kind], TCP_SIZE_LIMIT);
      return rrl.check(client, view, writer.buf, size, now);
    },
  };
}

/** How many of `count` checks (spread evenly over `ms`) are sent. */
function sentOf(l: ReturnType<typeof limiter>, count: number, ms: number, client: string, qname: string, kind: Kind = 'answer'): number {
  let sent = 0;
  for (let i = 0; i < count; i++) {
    if (l.check(client, qname, kind) === RRL_SEND) sent++;
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
  const packet = query('www.cdn.example', TYPE.A, { edns: { udpSize: 1232 } });
  parseQuery(packet, packet.length, view);
  const size = writer.writeAnswer(view, packet, TEMPLATES.answer, TCP_SIZE_LIMIT);
  const slipped = slipReply(writer.buf, view);
  assert.ok(slipped <= packet.length);
  const decoded = dnsPacket.decode(Buffer.from(writer.buf.subarray(0, slipped)));
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

test('identical means same qname and qtype: other names and types have their own buckets', () => {
  const l = limiter();
  assert.equal(sentOf(l, 20, 0, '198.51.100.7', 'www.cdn.example'), 5);
  assert.notEqual(l.check('198.51.100.7', 'WWW.Cdn.Example'), RRL_SEND, 'letter case does not make a reply different');
  assert.equal(l.check('198.51.100.7', 'video.cdn.example'), RRL_SEND);
  assert.equal(l.check('198.51.100.7', 'www.cdn.example', 'answer', TYPE.AAAA), RRL_SEND);
});

test('NXDOMAIN replies share one bucket per zone, whatever the random name', () => {
  const l = limiter();
  let sent = 0;
  for (let i = 0; i < 50; i++) if (l.check('198.51.100.7', `r${i}x${i * 7919}.cdn.example`, 'nxdomain') === RRL_SEND) sent++;
  assert.equal(sent, 5);
});

test('errors share one bucket per network at errors-per-second', () => {
  const l = limiter();
  let sent = 0;
  for (let i = 0; i < 30; i++) if (l.check('198.51.100.7', `name${i}.elsewhere.test`, 'refused') === RRL_SEND) sent++;
  assert.equal(sent, 2);
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

test('exempt networks are validated: host bits and bad syntax are errors', () => {
  assert.equal(typeof parseNetwork('198.51.100.0/24'), 'object');
  assert.match(parseNetwork('198.51.100.1/24') as string, /host bits/);
  assert.match(parseNetwork('198.51.100.0') as string, /CIDR/);
  assert.match(parseNetwork('2001:db8::/129') as string, /CIDR/);
  assert.throws(() => limiter({ exempt: ['nonsense'] }), /exempt/);
});
