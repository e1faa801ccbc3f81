// A reload posts to the workers only the policies that changed; the others go
// by reference and each worker takes its own copy (snapshot/policy-reuse.ts).
// A reference is never posted to a worker that does not hold the policy.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSnapshot } from '../../../server/policy/load.ts';
import { snapshotReceived, snapshotToPost } from '../../../server/snapshot/policy-reuse.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
const ZONE = `zone: cdn.example
soa: { mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60, ttl: 3600 }
records:
  "@": { NS: [ns1] }
  ns1: { A: 192.0.2.53 }
`;
const policy = (name: string, ttl: number): string => `policies:
  - name: ${name}.cdn.example
    ttl: ${ttl}
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [nearest, healthy] }]
`;

function load(config: string): DnsSnapshot {
  const loaded = loadSnapshot(config, world.geo, 'ams');
  assert.deepEqual(loaded.errors.map((e) => e.format()), []);
  return loaded.snapshot!;
}

/** What a structured clone (postMessage) makes of a snapshot. */
const posted = (s: DnsSnapshot): DnsSnapshot => structuredClone(s);

test('a one-file reload posts the changed policy whole and the others by reference, which the worker resolves to its own copies', () => {
  const config = mkdtempSync(join(world.dir, 'reuse-'));
  mkdirSync(join(config, 'zones'));
  mkdirSync(join(config, 'steering'));
  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), ZONE);
  for (const [file, name] of [['a.yaml', 'www'], ['b.yaml', 'img'], ['c.yaml', 'api']]) writeFileSync(join(config, 'steering', file), policy(name, 60));
  const before = load(config);
  const worker = posted(snapshotToPost(before, null));
  assert.equal(snapshotReceived(worker, null), worker, 'a first snapshot is posted whole');

  writeFileSync(join(config, 'steering', 'b.yaml'), policy('img', 90));
  const after = load(config);
  const ids = (s: DnsSnapshot): string[] => s.steering!.policies.map((p) => p.compileId);
  assert.deepEqual([ids(after)[0], ids(after)[2]], [ids(before)[0], ids(before)[2]], 'unchanged policies keep their compile');
  assert.notEqual(ids(after)[1], ids(before)[1]);

  const message = snapshotToPost(after, before);
  const whole = message.steering!.policies.filter((p) => p.rules !== undefined);
  assert.deepEqual(whole.map((p) => p.name), ['img.cdn.example'], 'only the changed policy is posted whole');
  const received = snapshotReceived(posted(message), worker);
  assert.deepEqual(received.steering!.policies.map((p) => [p.name, p.index, p.ttl, p.compileId]), after.steering!.policies.map((p) => [p.name, p.index, p.ttl, p.compileId]));
  assert.equal(received.steering!.policies[0].rules, worker.steering!.policies[0].rules, 'the worker\'s own copy, with the classes it made');
  assert.equal(received.steering!.policies[1].ttl, 90);
  assert.throws(() => snapshotReceived(posted(message), null), /does not hold/, 'a reference to a policy the worker lacks is refused, not guessed');
});
