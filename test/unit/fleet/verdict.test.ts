// The fleet's health verdict and probe sharding, as every instance computes
// them: the rules at their edges, stale and cut-off observers left out with
// the evidence saying so, and rendezvous hashing that moves little when an
// observer joins or leaves.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { downThreshold, probersOf, verdictOf, type Observation } from '../../../server/fleet/verdict.ts';

const seen = (observer: string, state: 'up' | 'down', cutOff = false): Observation => ({ observer, target: 'ams-http', state, since: 0, reason: state === 'down' ? 'timeout' : 'ok', cutOff });
const allLive = (): boolean => true;

test('thresholds: any, quorum, all, more_than_percent', () => {
  assert.equal(downThreshold({ kind: 'any' }, 5), 1);
  assert.equal(downThreshold({ kind: 'quorum' }, 3), 2);
  assert.equal(downThreshold({ kind: 'quorum' }, 4), 3);
  assert.equal(downThreshold({ kind: 'all' }, 4), 4);
  assert.equal(downThreshold({ kind: 'more_than_percent', percent: 50 }, 4), 3, '2 of 4 is not more than 50%');
  assert.equal(downThreshold({ kind: 'more_than_percent', percent: 50 }, 3), 2);
  assert.equal(downThreshold({ kind: 'more_than_percent', percent: 0 }, 3), 1);
});

test('a quorum of live observers decides; the evidence names them', () => {
  const v = verdictOf('ams-http', [seen('fra', 'down'), seen('lhr', 'down'), seen('mad', 'up')], { kind: 'quorum' }, allLive);
  assert.equal(v.state, 'down');
  assert.equal(v.evidence, 'down: seen down by fra, lhr; seen up by mad');
  assert.equal(verdictOf('ams-http', [seen('fra', 'down'), seen('mad', 'up'), seen('lhr', 'up')], { kind: 'quorum' }, allLive).state, 'up');
});

test('a cut-off observer and a stale one do not count, and the evidence says so', () => {
  const observations = [seen('fra', 'down'), seen('lhr', 'down'), seen('ams', 'down', true), seen('mad', 'up'), seen('old', 'down')];
  const v = verdictOf('ams-http', observations, { kind: 'quorum' }, (o) => o !== 'old');
  assert.equal(v.state, 'down');
  assert.deepEqual(v.excluded, [{ observer: 'ams', why: 'cut off' }, { observer: 'old', why: 'stale' }]);
  assert.equal(v.evidence, 'down: seen down by fra, lhr; seen up by mad; ams excluded (cut off), old excluded (stale)');
  // One observer cut off (all its probes fail) causes no failover on its own.
  const alone = verdictOf('ams-http', [seen('ams', 'down', true), seen('fra', 'up'), seen('lhr', 'up')], { kind: 'any' }, allLive);
  assert.equal(alone.state, 'up');
});

test('no observer left to count keeps the last verdict', () => {
  const v = verdictOf('ams-http', [seen('fra', 'up', true)], { kind: 'all' }, allLive, 'down');
  assert.equal(v.state, 'down');
  assert.match(v.evidence, /^down: no live observer; last verdict kept; fra excluded \(cut off\)$/);
  assert.equal(verdictOf('ams-http', [], { kind: 'any' }, allLive).state, 'up');
});

test('rendezvous sharding: k probers plus the target\'s own PoP, the same list everywhere', () => {
  const observers = ['ams', 'fra', 'lhr', 'mad', 'nyc', 'sin', 'syd'];
  const chosen = probersOf('ams-http', observers, 3, 'ams');
  assert.ok(chosen.includes('ams'));
  assert.ok(chosen.length === 3 || chosen.length === 4);
  assert.deepEqual(probersOf('ams-http', [...observers].reverse(), 3, 'ams'), chosen, 'order of the list does not matter');
  assert.deepEqual(probersOf('x', ['a', 'b'], 3, null), ['a', 'b'], 'fewer observers than k: all of them');
});

test('rendezvous sharding moves only what the joining observer wins', () => {
  const observers = Array.from({ length: 10 }, (_, i) => `pop${i}`);
  const targets = Array.from({ length: 500 }, (_, i) => `target-${i}`);
  const before = new Map(targets.map((t) => [t, probersOf(t, observers, 3, null)]));
  let moved = 0;
  for (const t of targets) {
    const after = probersOf(t, [...observers, 'pop10'], 3, null);
    const lost = before.get(t)!.filter((o) => !after.includes(o));
    // A target changes only by gaining the newcomer in place of one observer.
    if (lost.length > 0) {
      moved++;
      assert.equal(lost.length, 1);
      assert.ok(after.includes('pop10'));
    }
  }
  // Each target has 3 of 11 seats: about 3/11 of the targets take the newcomer.
  assert.ok(moved > 500 * 0.15 && moved < 500 * 0.4, `moved ${moved} of 500`);
  const load = new Map<string, number>();
  for (const t of targets) for (const o of before.get(t)!) load.set(o, (load.get(o) ?? 0) + 1);
  for (const [observer, count] of load) assert.ok(count > 90 && count < 220, `${observer} probes ${count} of 500 targets (expected ~150)`);
});
