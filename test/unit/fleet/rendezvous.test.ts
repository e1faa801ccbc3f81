// Probe sharding by rendezvous hashing: k probers per target plus the
// target's own PoP, the same on every instance whatever order it learnt of
// the others, spread over the fleet, and stable when one instance leaves.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignProbers, rendezvous, type Member } from '../../../server/fleet/rendezvous.ts';

const members: Member[] = Array.from({ length: 10 }, (_, i) => ({ instance: `inst-${i}`, pop: `pop${i}` }));
const targets = Array.from({ length: 200 }, (_, i) => ({ id: `t${i}`, pops: [`pop${i % 10}`] }));

test('each target gets its k rendezvous winners plus its own PoP\'s instance', () => {
  const assignment = assignProbers(targets, members, 3);
  for (const t of targets) {
    const probers = assignment.get(t.id)!;
    const own = members.find((m) => t.pops.includes(m.pop))!.instance;
    assert.ok(probers.has(own));
    for (const winner of rendezvous(t.id, members.map((m) => m.instance), 3)) assert.ok(probers.has(winner));
    assert.ok(probers.size === 3 || probers.size === 4, `${t.id}: ${probers.size}`);
  }
});

test('the same members in any order give the same assignment', () => {
  const a = assignProbers(targets, members, 3);
  const b = assignProbers(targets, [...members].reverse(), 3);
  for (const t of targets) assert.deepEqual([...a.get(t.id)!].sort(), [...b.get(t.id)!].sort());
});

test('the load spreads: no instance wins far more than its share', () => {
  const wins = new Map<string, number>();
  for (const t of targets) for (const w of rendezvous(t.id, members.map((m) => m.instance), 3)) wins.set(w, (wins.get(w) ?? 0) + 1);
  // 600 wins over 10 instances: 60 each on average.
  for (const [id, n] of wins) assert.ok(n >= 30 && n <= 90, `${id} won ${n}`);
});

test('an instance leaving moves only the targets it probed', () => {
  const ids = members.map((m) => m.instance);
  const before = new Map(targets.map((t) => [t.id, rendezvous(t.id, ids, 3)]));
  const after = new Map(targets.map((t) => [t.id, rendezvous(t.id, ids.filter((i) => i !== 'inst-4'), 3)]));
  for (const t of targets) {
    const was = before.get(t.id)!;
    if (!was.includes('inst-4')) assert.deepEqual(after.get(t.id), was);
    else assert.deepEqual(after.get(t.id)!.slice(0, 2), was.filter((i) => i !== 'inst-4'));
  }
});

test('k beyond the fleet is every instance; k 0 is only the own PoP', () => {
  const small = members.slice(0, 2);
  assert.equal(assignProbers([{ id: 'x', pops: [] }], small, 3).get('x')!.size, 2);
  assert.deepEqual([...assignProbers([{ id: 'x', pops: ['pop1'] }], small, 0).get('x')!], ['inst-1']);
});
