import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nameToWire } from '../../../server/dns/name.ts';
import { encodeCaa, encodeIPv4, encodeIPv6, encodeSvcb, encodeTxt, RdataError } from '../../../server/dns/rdata.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('IPv4 and IPv6 addresses in every textual form', () => {
  assert.equal(hex(encodeIPv4('192.0.2.1')), 'c0000201');
  assert.throws(() => encodeIPv4('192.0.2.256'), RdataError);
  assert.equal(hex(encodeIPv6('::')), '0'.repeat(32));
  assert.equal(hex(encodeIPv6('::1')), `${'0'.repeat(31)}1`);
  assert.equal(hex(encodeIPv6('2001:db8::')), `20010db8${'0'.repeat(24)}`);
  assert.equal(hex(encodeIPv6('2001:db8:1:2:3:4:5:6')), '20010db8000100020003000400050006');
  assert.equal(hex(encodeIPv6('::ffff:192.0.2.1')), '00000000000000000000ffffc0000201');
  assert.throws(() => encodeIPv6('2001:db8::1::2'), RdataError);
});

test('TXT: long strings are split into 255-octet character-strings; an empty string is one empty character-string', () => {
  const chunks = encodeTxt('x'.repeat(300));
  assert.deepEqual(chunks.map((c) => c[0]), [255, 45]);
  assert.deepEqual(encodeTxt('').map((c) => [...c]), [[0]]);
  assert.deepEqual(encodeTxt(['a', 'b']).map((c) => [...c]), [[1, 0x61], [1, 0x62]]);
});

test('CAA: flags, tag length, tag, value; tags are letters and digits only', () => {
  assert.equal(Buffer.from(encodeCaa(128, 'issue', 'ca.example')).toString('latin1'), '\x80\x05issueca.example');
  assert.throws(() => encodeCaa(0, 'is-sue', 'x'), RdataError);
});

test('SVCB: params sorted by key, duplicate keys refused, unknown names refused', () => {
  const parts = encodeSvcb(1, Uint8Array.of(0), { port: 8443, alpn: ['h2'], key65000: 'x' });
  const bytes = Buffer.concat(parts.map((p) => (p instanceof Uint8Array ? p : p.name)));
  // priority 1, root target, alpn (1) before port (3) before key65000.
  assert.equal(bytes.toString('hex'), '0001' + '00' + '0001000302' + '6832' + '000300' + '0220fb' + 'fde8' + '0001' + '78');
  assert.throws(() => encodeSvcb(1, nameToWire('.'), { port: 1, key3: 2 }), RdataError);
  assert.throws(() => encodeSvcb(1, nameToWire('.'), { nope: 1 }), RdataError);
});
