// A reload whose zones compiled from the same inputs posts the name table
// and zones by reference, at each hop (build thread → main → worker), and the
// receiver keeps the table it serves (snapshot/zone-reuse.ts). A changed
// zone file or steered name set posts the table whole; a signed zone is
// always posted whole. Answers from the resolved snapshot are byte for byte
// those of the freshly compiled one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameToWire } from '../../../server/dns/name.ts';
import { Engine, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import { loadSnapshot } from '../../../server/policy/load.ts';
import { snapshotReceived, snapshotToPost } from '../../../server/snapshot/policy-reuse.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { zonesReceived, zonesToPost } from '../../../server/snapshot/zone-reuse.ts';
import { message } from '../../conformance/wire.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
const zone = (host: string): string => `zone: cdn.example
soa: { mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60, ttl: 3600 }
records:
  "@": { NS: [ns1] }
  ns1: { A: 192.0.2.53 }
  ${host}: { A: 192.0.2.80 }
`;
const policy = (name: string, ttl: number): string => `policies:
  - name: ${name}.cdn.example
    ttl: ${ttl}
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [nearest, healthy] }]
`;

function configDir(): string {
  const config = mkdtempSync(join(world.dir, 'zone-reuse-'));
  mkdirSync(join(config, 'zones'));
  mkdirSync(join(config, 'steering'));
  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), zone('static'));
  for (const [file, name] of [['a.yaml', 'www'], ['b.yaml', 'img']]) writeFileSync(join(config, 'steering', file), policy(name, 60));
  return config;
}

function load(config: string, hashRecord: string | null = null): DnsSnapshot {
  const loaded = loadSnapshot(config, world.geo, 'ams', { hashRecord });
  assert.deepEqual(loaded.errors.map((e) => e.format()), []);
  return loaded.snapshot!;
}

/** What a structured clone (postMessage) makes of a snapshot. */
const posted = (s: DnsSnapshot): DnsSnapshot => structuredClone(s);
const isReference = (s: DnsSnapshot): boolean => typeof (s.names as unknown as { reuseZones?: unknown }).reuseZones === 'string';

const QUESTIONS: Array<[string, number]> = [['static.cdn.example.', 1], ['ns1.cdn.example.', 1], ['cdn.example.', 2], ['cdn.example.', 6],
  ['missing.cdn.example.', 1], ['static.cdn.example.', 28], ['other.example.', 1]];

/** Every answer of QUESTIONS from `snapshot`, as bytes. */
function answers(snapshot: DnsSnapshot): string[] {
  const engine = new Engine(snapshot, { popId: 'ams', versionBind: null, cookieSecret: 1 });
  return QUESTIONS.map(([name, type]) => {
    const query = message({ questions: [{ name: nameToWire(name), type }] });
    const length = engine.handle(query, query.length, TRANSPORT_UDP, { address: '192.0.2.200', family: 0 });
    return Buffer.from(engine.writer.buf.subarray(0, length)).toString('hex');
  });
}

test('a policy-only reload posts names and zones by reference; the worker keeps its own table and answers as the new compile does', () => {
  const config = configDir();
  const before = load(config);
  const worker = snapshotReceived(posted(snapshotToPost(before, null)), null);
  assert.ok(!isReference(snapshotToPost(before, null)), 'a first snapshot is posted whole');

  writeFileSync(join(config, 'steering', 'b.yaml'), policy('img', 90));
  const after = load(config);
  assert.notEqual(after.hash, before.hash);
  assert.equal(after.zonesKey, before.zonesKey, 'the zones compiled from the same inputs');
  const message = snapshotToPost(after, before);
  assert.ok(isReference(message), 'names and zones go by reference');
  assert.ok(JSON.stringify(message.names).length < 100, 'the reference is small, not the table');
  const received = snapshotReceived(posted(message), worker);
  assert.equal(received.names, worker.names, 'the worker\'s own table');
  assert.equal(received.zones, worker.zones);
  assert.equal(received.steering!.policies[1].ttl, 90, 'the changed policy arrived');
  assert.deepEqual(answers(received), answers(after));
  assert.throws(() => snapshotReceived(posted(message), null), /does not hold/, 'a reference the worker cannot resolve is refused');
});

test('a changed zone file or steered name is posted whole, and answers carry the change', () => {
  const config = configDir();
  const before = load(config);
  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), zone('moved'));
  const zoneChanged = load(config);
  assert.notEqual(zoneChanged.zonesKey, before.zonesKey);
  const whole = snapshotReceived(posted(snapshotToPost(zoneChanged, before)), before);
  assert.ok(!isReference(snapshotToPost(zoneChanged, before)));
  assert.deepEqual(answers(whole), answers(zoneChanged));
  assert.notDeepEqual(answers(whole), answers(before), 'static.cdn.example is gone, moved.cdn.example answers');

  writeFileSync(join(config, 'steering', 'b.yaml'), policy('cdnimg', 60));
  const nameChanged = load(config);
  assert.notEqual(nameChanged.zonesKey, zoneChanged.zonesKey, 'a steered name is part of the table');
  assert.ok(!isReference(snapshotToPost(nameChanged, zoneChanged)));
});

test('the hash record carries the content hash, so a reload with one never reuses the table', () => {
  const config = configDir();
  const before = load(config, 'popsteer-hash.cdn.example');
  writeFileSync(join(config, 'steering', 'b.yaml'), policy('img', 90));
  const after = load(config, 'popsteer-hash.cdn.example');
  assert.notEqual(after.zonesKey, before.zonesKey);
  assert.equal(zonesToPost(after, before.zonesKey), after);
});

test('a snapshot without a zones key (as signed ones are built) is posted whole; received whole, it is kept as it came', () => {
  const config = configDir();
  const plain = load(config);
  const unkeyed: DnsSnapshot = { ...plain, zonesKey: undefined };
  assert.equal(zonesToPost(unkeyed, undefined), unkeyed, 'no key never matches an absent held key');
  assert.equal(zonesReceived(plain, null), plain);
});
