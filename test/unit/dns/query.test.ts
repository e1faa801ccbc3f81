import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PARSE_BADVERS, PARSE_DROP, PARSE_FORMERR, PARSE_NOTIMP, PARSE_OK, QueryView, parseQuery } from '../../../server/dns/query.ts';
import { cookie, ecs, nsid, query, TYPE, CLASS_CH } from '../../conformance/wire.ts';

const view = new QueryView();
const parse = (packet: Uint8Array): number => parseQuery(packet, packet.length, view);

test('the view holds id, flags, type, class, the lower-cased key and label offsets', () => {
  assert.equal(parse(query('WwW.Cdn.Example', TYPE.AAAA, { id: 0xabcd })), PARSE_OK);
  assert.equal(view.id, 0xabcd);
  assert.equal(view.recursionDesired, true);
  assert.equal(view.qtype, TYPE.AAAA);
  assert.equal(view.qclass, 1);
  assert.equal(Buffer.from(view.key.subarray(0, view.keyLength)).toString('latin1'), '\x03www\x03cdn\x07example\x00');
  assert.equal(view.labelCount, 3);
  assert.deepEqual([...view.labelOffsets.subarray(0, 3)], [0, 4, 8]);
  assert.equal(view.questionEnd, 12 + view.keyLength + 4);
  assert.equal(view.hasEdns, false);
});

test('EDNS fields: size (at least 512), DO, NSID, ECS family/prefix/address, client cookie', () => {
  const packet = query('www.cdn.example', TYPE.A, {
    edns: { udpSize: 300, dnssecOk: true, options: [nsid(), ecs(2, 48, 0, [0x20, 0x01, 0x0d, 0xb8, 0, 1]), cookie(Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2))] },
  });
  assert.equal(parse(packet), PARSE_OK);
  assert.equal(view.hasEdns, true);
  assert.equal(view.ednsUdpSize, 512);
  assert.equal(view.dnssecOk, true);
  assert.equal(view.nsidRequested, true);
  assert.equal(view.ecsPresent, true);
  assert.equal(view.ecsFamily, 2);
  assert.equal(view.ecsSourcePrefix, 48);
  assert.deepEqual([...view.ecsAddress], [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(view.cookiePresent, true);
  assert.deepEqual([...view.clientCookie], [9, 8, 7, 6, 5, 4, 3, 2]);
});

test('nothing leaks from one query into the next through the reused view', () => {
  parse(query('www.cdn.example', TYPE.A, { edns: { dnssecOk: true, options: [nsid(), ecs(1, 32, 0, [10, 1, 2, 3]), cookie(new Uint8Array(8).fill(1))] } }));
  assert.equal(parse(query('x.cdn.example', TYPE.TXT)), PARSE_OK);
  assert.equal(view.hasEdns, false);
  assert.equal(view.ecsPresent, false);
  assert.equal(view.nsidRequested, false);
  assert.equal(view.cookiePresent, false);
  assert.equal(view.dnssecOk, false);
  // A shorter ECS address after a longer one: the tail is zero again.
  parse(query('www.cdn.example', TYPE.A, { edns: { options: [ecs(1, 8, 0, [10])] } }));
  assert.deepEqual([...view.ecsAddress.subarray(0, 4)], [10, 0, 0, 0]);
});

test('status codes: drop, NOTIMP, BADVERS, FORMERR', () => {
  assert.equal(parse(new Uint8Array(11)), PARSE_DROP);
  assert.equal(parse(query('a.b', TYPE.A, { flags: 0x8000 })), PARSE_DROP);
  assert.equal(parse(query('a.b', TYPE.A, { opcode: 2 })), PARSE_NOTIMP);
  assert.equal(parse(query('a.b', TYPE.A, { edns: { version: 3 } })), PARSE_BADVERS);
  assert.equal(parse(query('a.b', TYPE.A, { trailing: Uint8Array.of(0) })), PARSE_FORMERR);
  assert.equal(view.hasQuestion, true, 'the question is kept for the FORMERR echo');
  assert.equal(parse(query('id.server', TYPE.TXT, { klass: CLASS_CH })), PARSE_OK);
  assert.equal(view.qclass, CLASS_CH);
});

test('the parser reads only `length` bytes of a larger buffer (pooled socket buffers)', () => {
  const packet = query('www.cdn.example', TYPE.A);
  const pooled = new Uint8Array(packet.length + 16).fill(0xff);
  pooled.set(packet);
  assert.equal(parseQuery(pooled, packet.length, view), PARSE_OK);
  assert.equal(parseQuery(pooled, packet.length - 1, view), PARSE_FORMERR);
});
