// The shared hashes give the published FNV-1a and murmur3 fmix32 values, and
// the incremental forms agree with the one-shot ones (the name table and the
// query parser, the sticky key and the RRL key all rely on that).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fnv1a, fnv1aStep, fnv1aString, FNV_OFFSET, mix32 } from '../../../server/lib/hash.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

test('FNV-1a 32 matches the reference values', () => {
  assert.equal(fnv1a(bytes('')) >>> 0, 0x811c9dc5);
  assert.equal(fnv1a(bytes('a')) >>> 0, 0xe40c292c);
  assert.equal(fnv1a(bytes('foobar')) >>> 0, 0xbf9cf968);
  assert.equal(fnv1aString('foobar'), 0xbf9cf968);
});

test('hashing in pieces or step by step gives the one-shot hash', () => {
  const data = bytes('www.cdn.example');
  const whole = fnv1a(data);
  assert.equal(fnv1a(data, 4, data.length, fnv1a(data, 0, 4)), whole);
  let h = FNV_OFFSET;
  for (const b of data) h = fnv1aStep(h, b);
  assert.equal(h, whole);
  assert.notEqual(fnv1a(data, 0, data.length, 4), whole, 'the seed changes the hash');
});

test('mix32 is the murmur3 finaliser', () => {
  assert.equal(mix32(0), 0);
  assert.equal(mix32(1), 0x514e28b7);
  assert.equal(mix32(0xffffffff), 0x81f16f39);
});
