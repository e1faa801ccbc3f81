import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { SECTION_ADDITIONAL, SECTION_ANSWER, SECTION_AUTHORITY, TemplateBuilder } from '../../../server/dns/builder.ts';
import { nameToWire } from '../../../server/dns/name.ts';
import { QueryView, parseQuery } from '../../../server/dns/query.ts';
import { encodeIPv4, encodeSoa } from '../../../server/dns/rdata.ts';
import { ResponseWriter, TCP_SIZE_LIMIT, udpSizeLimit } from '../../../server/dns/writer.ts';
import { query, TYPE } from '../../conformance/wire.ts';

const apex = nameToWire('cdn.example');
const view = new QueryView();
const writer = new ResponseWriter();

function answer(packet: Uint8Array, builder: TemplateBuilder, maxSize = TCP_SIZE_LIMIT, ttl = -1, rcode = 0): dnsPacket.DecodedPacket & { bytes: Buffer } {
  parseQuery(packet, packet.length, view);
  const size = writer.writeAnswer(view, packet, builder.build(rcode, true), maxSize, ttl);
  const bytes = Buffer.from(writer.buf.subarray(0, size));
  return Object.assign(dnsPacket.decode(bytes), { bytes });
}

test('names in the zone point at the apex inside the question, whatever the query name length', () => {
  const soa = encodeSoa({ mname: nameToWire('ns1.cdn.example'), rname: nameToWire('hostmaster.cdn.example'), serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 });
  const builder = new TemplateBuilder(apex).add(SECTION_AUTHORITY, apex, TYPE.SOA, 60, soa);
  for (const qname of ['cdn.example', 'a.cdn.example', 'Deep.Er.Name.Cdn.Example']) {
    const reply = answer(query(qname, TYPE.A), builder);
    const record = reply.authorities![0] as dnsPacket.Answer & { data: { mname: string; rname: string } };
    assert.equal(record.name.toLowerCase(), 'cdn.example');
    assert.equal(record.data.mname.toLowerCase(), 'ns1.cdn.example');
    assert.equal(record.data.rname.toLowerCase(), 'hostmaster.cdn.example');
  }
});

test('the answer owner is the question name (0xC00C) and patchable TTLs take the per-query value', () => {
  const builder = new TemplateBuilder(apex)
    .add(SECTION_ANSWER, 'qname', TYPE.A, 300, [encodeIPv4('192.0.2.1')], { patchTtl: true })
    .add(SECTION_ANSWER, 'qname', TYPE.A, 300, [encodeIPv4('192.0.2.2')]);
  const reply = answer(query('Www.cdn.example', TYPE.A), builder, TCP_SIZE_LIMIT, 17);
  assert.deepEqual(reply.answers!.map((a) => [a.name, (a as { ttl: number }).ttl]), [['Www.cdn.example', 17], ['Www.cdn.example', 300]]);
  assert.equal(reply.bytes.readUInt16BE(12 + 17 + 4), 0xc00c);
});

test('over the size limit: optional additional records go first, then TC=1 with an empty body', () => {
  const builder = new TemplateBuilder(apex).add(SECTION_ANSWER, 'qname', TYPE.A, 60, [encodeIPv4('192.0.2.1')]);
  for (let i = 0; i < 40; i++) builder.add(SECTION_ADDITIONAL, nameToWire(`h${i}.cdn.example`), TYPE.A, 60, [encodeIPv4('192.0.2.9')]);
  const packet = query('www.cdn.example', TYPE.A);
  const trimmed = answer(packet, builder, 512);
  assert.equal(trimmed.flag_tc, false);
  assert.equal(trimmed.answers!.length, 1);
  assert.equal(trimmed.additionals!.length, 0);
  assert.ok(trimmed.bytes.length <= 512);
  const full = answer(packet, builder);
  assert.equal(full.additionals!.length, 40);
  const tiny = answer(packet, new TemplateBuilder(apex).add(SECTION_ANSWER, 'qname', TYPE.TXT, 60, [new Uint8Array(600)]), 512);
  assert.equal(tiny.flag_tc, true);
  assert.equal(tiny.answers!.length, 0);
  assert.equal(tiny.questions!.length, 1);
});

test('referral glue is required: it is never trimmed, the reply is truncated instead', () => {
  const builder = new TemplateBuilder(apex).add(SECTION_AUTHORITY, nameToWire('lab.cdn.example'), TYPE.NS, 60, [{ name: nameToWire('ns1.lab.cdn.example'), compress: true }]);
  for (let i = 0; i < 40; i++) builder.add(SECTION_ADDITIONAL, nameToWire('ns1.lab.cdn.example'), TYPE.A, 60, [encodeIPv4(`192.0.2.${i}`)]);
  const packet = query('x.lab.cdn.example', TYPE.A);
  parseQuery(packet, packet.length, view);
  const size = writer.writeAnswer(view, packet, builder.build(0, false, true), 512);
  assert.equal(writer.truncated, true);
  assert.ok(size <= 512);
});

test('udpSizeLimit: 512 without EDNS, the advertised size with it, never above 1232', () => {
  const limit = (packet: Uint8Array): number => { parseQuery(packet, packet.length, view); return udpSizeLimit(view); };
  assert.equal(limit(query('a.b', TYPE.A)), 512);
  assert.equal(limit(query('a.b', TYPE.A, { edns: { udpSize: 1000 } })), 1000);
  assert.equal(limit(query('a.b', TYPE.A, { edns: { udpSize: 65535 } })), 1232);
  assert.equal(limit(query('a.b', TYPE.A, { edns: { udpSize: 0 } })), 512);
});
