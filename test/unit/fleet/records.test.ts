// The fleet's stored records: what is written reads back, what is not a
// record of this version (garbage, a newer popsteer, a wrong field) is
// refused rather than applied half-understood.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  RECORD_VERSION, decodeInstance, decodeOverride, encodeRecord, isKeySafe, overrideOf, type InstanceRecord, type OverrideRecord,
} from '../../../server/fleet/records.ts';

const drain: OverrideRecord = { v: RECORD_VERSION, action: 'drain', reason: 'fibre work', author: 'ops (10.0.0.7 via lhr)', at: 1_000, expires: 61_000, via: 'lhr' };
const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));

test('an override record reads back as written, and becomes the health service\'s override', () => {
  assert.deepEqual(decodeOverride(encodeRecord(drain)), drain);
  assert.deepEqual(overrideOf(drain), { kind: 'drain', reason: 'fibre work', since: 1_000, expires: 61_000, author: 'ops (10.0.0.7 via lhr)' });
  assert.equal(overrideOf({ ...drain, action: 'undrain', expires: null }), null);
});

test('records that are not this version\'s are refused', () => {
  assert.equal(decodeOverride(bytes('not json')), null);
  assert.equal(decodeOverride(bytes([drain])), null);
  assert.equal(decodeOverride(bytes({ ...drain, v: RECORD_VERSION + 1 })), null);
  assert.equal(decodeOverride(bytes({ ...drain, action: 'explode' })), null);
  assert.equal(decodeOverride(bytes({ ...drain, expires: '1h' })), null);
  assert.equal(decodeOverride(bytes({ ...drain, at: -5 })), null);
  const { author: _author, ...anonymous } = drain;
  assert.equal(decodeOverride(bytes(anonymous)), null);
});

test('an instance heartbeat reads back; a broken one is refused', () => {
  const beat: InstanceRecord = { v: RECORD_VERSION, pop: 'ams', instance: '3f2a9c1e', startedAt: 5, seenAt: 9, version: '0.1.0' };
  assert.deepEqual(decodeInstance(encodeRecord(beat)), beat);
  assert.equal(decodeInstance(bytes({ ...beat, seenAt: null })), null);
});

test('only ids that are one NATS subject token path can be keys', () => {
  for (const id of ['lhr', 'ams-2', 'edge.lhr', 'a_b=c']) assert.ok(isKeySafe(id), id);
  for (const id of ['', 'a b', 'lhr.', '.lhr', 'a..b', 'a*', 'a>', 'x'.repeat(129)]) assert.ok(!isKeySafe(id), id);
});
