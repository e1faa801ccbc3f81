// A reload whose zone files and steered names did not change reuses the name
// table compiled last time instead of compiling the zones again
// (policy/zones-cache.ts); a changed zone file or steered name compiles
// afresh, a hash record is never reused, and the answers from a reused table
// are byte for byte those of a fresh compile.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameToWire } from '../../../server/dns/name.ts';
import { Engine, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import { loadSnapshot } from '../../../server/policy/load.ts';
import { compileZonesReusing } from '../../../server/policy/zones-cache.ts';
import { compileZones, zoneFilesIn } from '../../../server/policy/zones.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
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
  const config = mkdtempSync(join(world.dir, 'zones-cache-'));
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

const QUESTIONS: Array<[string, number]> = [['static.cdn.example.', 1], ['moved.cdn.example.', 1], ['ns1.cdn.example.', 1], ['cdn.example.', 2],
  ['cdn.example.', 6], ['missing.cdn.example.', 1], ['www.cdn.example.', 1], ['img.cdn.example.', 28], ['cdnimg.cdn.example.', 1], ['other.example.', 1]];

/** Every answer of QUESTIONS from `snapshot`, as bytes. */
function answers(snapshot: DnsSnapshot): string[] {
  const engine = new Engine(snapshot, { popId: 'ams', versionBind: null, cookieSecret: 1 });
  return QUESTIONS.map(([name, type]) => {
    const query = message({ questions: [{ name: nameToWire(name), type }] });
    const length = engine.handle(query, query.length, TRANSPORT_UDP, { address: '192.0.2.200', family: 0 });
    return Buffer.from(engine.writer.buf.subarray(0, length)).toString('hex');
  });
}

/** The snapshot with its names and zones compiled afresh, for comparison. */
function freshlyCompiled(config: string, snapshot: DnsSnapshot): DnsSnapshot {
  const steered = [...snapshot.steering!.policies.entries()].map(([index, p]) => ({ name: p.name, index, file: p.file, pointer: '/', position: null }));
  const { result, errors } = compileZones(zoneFilesIn(config), steered, {});
  assert.deepEqual(errors, []);
  return { ...snapshot, names: result!.names, zones: result!.zones };
}

test('a policy-only reload reuses the compiled table, and it answers as a fresh compile does', () => {
  const config = configDir();
  const before = load(config);
  writeFileSync(join(config, 'steering', 'b.yaml'), policy('img', 90));
  const after = load(config);
  assert.notEqual(after.hash, before.hash);
  assert.equal(after.names, before.names, 'the table compiled before');
  assert.equal(after.zones, before.zones);
  assert.equal(after.zonesKey, before.zonesKey);
  assert.equal(after.steering!.policies[1].ttl, 90, 'the changed policy is in the new snapshot');
  assert.deepEqual(answers(after), answers(freshlyCompiled(config, after)));
});

test('a changed zone file or steered name compiles the table again, and answers carry the change', () => {
  const config = configDir();
  const before = load(config);
  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), zone('moved'));
  const zoneChanged = load(config);
  assert.notEqual(zoneChanged.names, before.names);
  assert.notEqual(zoneChanged.zonesKey, before.zonesKey);
  assert.notDeepEqual(answers(zoneChanged), answers(before), 'static.cdn.example is gone, moved.cdn.example answers');
  assert.deepEqual(answers(zoneChanged), answers(freshlyCompiled(config, zoneChanged)));

  writeFileSync(join(config, 'steering', 'b.yaml'), policy('cdnimg', 60));
  const nameChanged = load(config);
  assert.notEqual(nameChanged.names, zoneChanged.names, 'a steered name is part of the table');
  assert.notDeepEqual(answers(nameChanged), answers(zoneChanged));
  assert.deepEqual(answers(nameChanged), answers(freshlyCompiled(config, nameChanged)));

  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), zone('static'));
  assert.notEqual(load(config).names, nameChanged.names, 'going back to an earlier text compiles again: only the last table is kept');
});

test('with a hash record the table is compiled at every load, since the record carries the content hash', () => {
  const config = configDir();
  const before = load(config, 'popsteer-hash.cdn.example');
  const again = load(config, 'popsteer-hash.cdn.example');
  assert.notEqual(again.names, before.names);
  const zoneFiles = zoneFilesIn(config);
  assert.equal(compileZonesReusing(zoneFiles, [], { policies: [] }, false).reused, false);
  assert.equal(compileZonesReusing(zoneFiles, [], { policies: [] }, false).reused, false, 'nothing was kept for a load with a hash record');
});

test('a zone file that cannot be read is reported, not served from the table kept', () => {
  const config = configDir();
  load(config);
  const zoneFiles = zoneFilesIn(config);
  assert.equal(compileZonesReusing(zoneFiles, [], { policies: [] }, true).reused, false);
  assert.equal(compileZonesReusing(zoneFiles, [], { policies: [] }, true).reused, true);
  const missing = compileZonesReusing([...zoneFiles, join(config, 'zones', 'gone.yaml')], [], { policies: [] }, true);
  assert.equal(missing.reused, false);
  assert.equal(missing.result, null);
  assert.match(missing.errors.map((e) => e.format()).join('\n'), /gone\.yaml.*cannot read/);
});
