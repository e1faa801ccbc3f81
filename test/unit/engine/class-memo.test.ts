// The class memo answers only for exactly the network, prefix length, family,
// policy and variant it was filled for, and keeps the walk's result.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLASS_MEMO_ENTRIES, ClassMemo } from '../../../server/engine/class-memo.ts';
import type { ClassResult } from '../../../server/geo/types.ts';

function wordsOf(bytes: number[]): Int32Array {
  const b = new Uint8Array(16);
  b.set(bytes);
  return new Int32Array(b.buffer, 0, 4);
}

test('a miss, a store, then a hit with the stored class and scope', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  const net = wordsOf([81, 2, 69]);
  assert.equal(memo.find(0, 0, 4, 24, net, result), false);
  memo.store({ class: 7, scopeLength: 19 });
  assert.equal(memo.find(0, 0, 4, 24, net, result), true);
  assert.deepEqual(result, { class: 7, scopeLength: 19 });
});

test('another policy, variant, prefix length, family or address is not the same entry', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  const net = wordsOf([81, 2, 69]);
  memo.find(3, 1, 4, 24, net, result);
  memo.store({ class: 5, scopeLength: 16 });
  assert.equal(memo.find(3, 1, 4, 24, net, result), true);
  assert.equal(memo.find(2, 1, 4, 24, net, result), false, 'policy');
  assert.equal(memo.find(3, 0, 4, 24, net, result), false, 'variant');
  assert.equal(memo.find(3, 1, 4, 20, net, result), false, 'prefix length');
  assert.equal(memo.find(3, 1, 6, 24, net, result), false, 'family');
  assert.equal(memo.find(3, 1, 4, 24, wordsOf([81, 2, 70]), result), false, 'address');
  assert.equal(memo.find(3, 1, 4, 24, wordsOf([81, 2, 69, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), result), false, 'last octet');
});

test('filled past its size, it still answers every lookup correctly (colliding entries are replaced)', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  const count = CLASS_MEMO_ENTRIES * 2;
  const classOf = (i: number): number => (i * 7919) % 1000;
  for (let i = 0; i < count; i++) {
    const net = wordsOf([10 + (i >> 16), (i >> 8) & 0xff, i & 0xff]);
    if (!memo.find(1, 0, 4, 24, net, result)) memo.store({ class: classOf(i), scopeLength: 24 });
  }
  let hits = 0;
  for (let i = 0; i < count; i++) {
    const net = wordsOf([10 + (i >> 16), (i >> 8) & 0xff, i & 0xff]);
    if (memo.find(1, 0, 4, 24, net, result)) {
      hits++;
      assert.equal(result.class, classOf(i), `network ${i}`);
    }
  }
  assert.ok(hits > 0 && hits <= CLASS_MEMO_ENTRIES, `${hits} hits`);
});

test('policies and variants beyond the tag fields are never memoized', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  const net = wordsOf([81, 2, 69]);
  assert.equal(memo.find(0, 300, 4, 24, net, result), false);
  memo.store({ class: 1, scopeLength: 8 });
  assert.equal(memo.find(0, 300, 4, 24, net, result), false);
  assert.equal(memo.find(0x4000, 0, 4, 24, net, result), false);
  memo.store({ class: 1, scopeLength: 8 });
  assert.equal(memo.find(0x4000, 0, 4, 24, net, result), false);
});

test('4,096 networks used in turn nearly all stay (two ways: a collision alone does not evict)', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  const count = 4096;
  const netOf = (i: number): Int32Array => wordsOf([20 + (i >> 16), (i * 37 >> 8) & 0xff, (i * 37) & 0xff]);
  for (let i = 0; i < count; i++) if (!memo.find(2, 0, 4, 24, netOf(i), result)) memo.store({ class: i % 500, scopeLength: 20 });
  let hits = 0;
  for (let i = 0; i < count; i++) {
    if (memo.find(2, 0, 4, 24, netOf(i), result)) {
      hits++;
      assert.equal(result.class, i % 500, `network ${i}`);
    } else {
      memo.store({ class: i % 500, scopeLength: 20 });
    }
  }
  // 16,384 entries, direct-mapped, kept 78% of them: every network sharing a slot missed each turn.
  assert.ok(hits >= count * 0.98, `${hits} of ${count} hit`);
});

test('a network used between every store is never the one evicted (least recently used out)', () => {
  const memo = new ClassMemo();
  const result: ClassResult = { class: -1, scopeLength: 0 };
  // Six of the networks below share this one's set (the hash is fixed): under first in, first out it would go.
  const hot = wordsOf([81, 2, 73]);
  assert.equal(memo.find(4, 0, 4, 24, hot, result), false);
  memo.store({ class: 42, scopeLength: 18 });
  for (let i = 0; i < CLASS_MEMO_ENTRIES * 2; i++) {
    const net = wordsOf([30 + (i >> 16), (i >> 8) & 0xff, i & 0xff]);
    if (!memo.find(4, 0, 4, 24, net, result)) memo.store({ class: 1, scopeLength: 24 });
    assert.equal(memo.find(4, 0, 4, 24, hot, result), true, `after network ${i}`);
    assert.deepEqual(result, { class: 42, scopeLength: 18 });
  }
});
