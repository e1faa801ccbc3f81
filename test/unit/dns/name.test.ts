import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashName, hashSuffixes, isSubdomain, labelOffsetsOf, lowerWire, NameSyntaxError, nameToWire, wireToName } from '../../../server/dns/name.ts';

test('nameToWire keeps letter case, accepts a missing trailing dot, and writes the root as one zero octet', () => {
  assert.deepEqual([...nameToWire('Www.Cdn.example.')], [3, 0x57, 0x77, 0x77, 3, 0x43, 0x64, 0x6e, 7, ...Buffer.from('example'), 0]);
  assert.deepEqual(nameToWire('www.cdn.example'), nameToWire('www.cdn.example.'));
  assert.deepEqual([...nameToWire('.')], [0]);
});

test('escapes: \\. stays inside the label and \\DDD is one octet; wireToName writes them back', () => {
  const wire = nameToWire('a\\.b.\\255\\000x.');
  assert.deepEqual([...wire], [3, 0x61, 0x2e, 0x62, 3, 0xff, 0x00, 0x78, 0]);
  assert.equal(wireToName(wire), 'a\\.b.\\255\\000x.');
  assert.deepEqual(nameToWire(wireToName(wire)), wire);
});

test('nameToWire rejects empty labels, labels over 63 octets, names over 255 octets and bad escapes', () => {
  assert.throws(() => nameToWire('a..b'), NameSyntaxError);
  assert.throws(() => nameToWire(`${'a'.repeat(64)}.example`), NameSyntaxError);
  nameToWire(`${'a'.repeat(63)}.example`);
  assert.throws(() => nameToWire(Array.from({ length: 5 }, () => 'a'.repeat(63)).join('.')), NameSyntaxError);
  assert.throws(() => nameToWire('a\\256.b'), NameSyntaxError);
  assert.throws(() => nameToWire('ab\\'), NameSyntaxError);
  assert.throws(() => nameToWire('é.example'), NameSyntaxError);
});

test('lowerWire folds ASCII letters only', () => {
  assert.deepEqual([...lowerWire(Uint8Array.of(3, 0x41, 0x5a, 0xc4, 0))], [3, 0x61, 0x7a, 0xc4, 0]);
});

test('suffix hashes agree with hashName for every suffix, so query parser and table builder meet', () => {
  const key = lowerWire(nameToWire('a.b.cdn.example'));
  const offsets = labelOffsetsOf(key);
  const hashes = new Int32Array(offsets.length + 1);
  hashSuffixes(key, offsets, offsets.length, hashes);
  for (let i = 0; i < offsets.length; i++) assert.equal(hashes[i], hashName(key.subarray(offsets[i])));
  assert.equal(hashes[offsets.length], hashName(Uint8Array.of(0)));
  assert.notEqual(hashName(lowerWire(nameToWire('www.cdn.example'))), hashName(lowerWire(nameToWire('ww.wcdn.example'))));
});

test('isSubdomain matches on label boundaries only', () => {
  const k = (t: string): Uint8Array => lowerWire(nameToWire(t));
  assert.ok(isSubdomain(k('www.cdn.example'), k('cdn.example')));
  assert.ok(isSubdomain(k('cdn.example'), k('cdn.example')));
  assert.ok(isSubdomain(k('cdn.example'), k('.')));
  assert.ok(!isSubdomain(k('xcdn.example'), k('cdn.example')));
  assert.ok(!isSubdomain(k('example'), k('cdn.example')));
});
