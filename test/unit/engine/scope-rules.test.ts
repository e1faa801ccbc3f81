// The ECS scope rules of README ("ECS scopes"), as a table: for each kind of
// ECS source, who decides (the client's network or the resolver's address)
// and the scope the reply claims. A resolver reuses an answer for every
// client inside that scope, so a scope too wide poisons its cache: a private
// client must never get scope 0. Each row also goes through explain, which
// must tell the same answer and scope.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain } from '../../../server/engine/explain.ts';
import { createHealthTable } from '../../../server/health/table.ts';
import { ask, compileWorld, syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
const policy = (steps: string): string => `policies:
  - name: www.cdn.example
    ttl: 60
    unknown_location: self
    pools: { edge: { pops: all } }
    rules:
      - { name: nearest, match: default, pool: edge, steps: ${steps} }
`;
const www = compileWorld(world, policy('[healthy, nearest, { first: 1 }]'));

// Teredo carries the client's IPv4 address inverted in its last 32 bits: 81.2.69.0 → ae.fd.ba.ff.
const TEREDO_81_2_69_0 = '2001:0:4136:e378:8000:63bf:aefd:baff/128';

interface Row { rule: string; subnet?: string; trust?: string[]; answer: string; scope: number | null }
const ROWS: Row[] = [
  { rule: 'no ECS option: the resolver decides, no ECS in the reply', answer: 'ams', scope: null },
  { rule: 'source prefix 0 (RFC 7871 §7.1.2)', subnet: '81.2.69.0/0', answer: 'ams', scope: 0 },
  { rule: 'resolver not in ecs_trust', subnet: '81.2.69.0/24', trust: ['192.0.2.0/24'], answer: 'ams', scope: 0 },
  { rule: 'private 10/8', subnet: '10.1.2.0/24', answer: 'ams', scope: 8 },
  { rule: 'loopback 127/8', subnet: '127.0.0.0/24', answer: 'ams', scope: 8 },
  { rule: 'private 172.16/12', subnet: '172.16.5.0/24', answer: 'ams', scope: 12 },
  { rule: 'private 192.168/16', subnet: '192.168.1.0/24', answer: 'ams', scope: 16 },
  { rule: 'CGNAT 100.64/10', subnet: '100.64.1.0/24', answer: 'ams', scope: 10 },
  { rule: 'link-local 169.254/16', subnet: '169.254.1.0/24', answer: 'ams', scope: 16 },
  { rule: 'documentation 192.0.2/24', subnet: '192.0.2.0/24', answer: 'ams', scope: 24 },
  { rule: 'unique local fc00::/7', subnet: 'fd00:1::/56', answer: 'ams', scope: 7 },
  { rule: 'link-local fe80::/10', subnet: 'fe80::/56', answer: 'ams', scope: 10 },
  { rule: 'documentation 2001:db8::/32', subnet: '2001:db8:1::/56', answer: 'ams', scope: 32 },
  { rule: 'reserved ::/8 (an IPv6 loopback client sent as ::/56)', subnet: '::/56', answer: 'ams', scope: 8 },
  { rule: 'located IPv4: the widest network with the same answer', subnet: '81.2.69.0/24', answer: 'lhr', scope: 20 },
  { rule: 'located IPv4, source longer than /24: used up to /24', subnet: '81.2.69.160/28', answer: 'lhr', scope: 20 },
  { rule: 'located IPv4, its sibling network answers otherwise', subnet: '24.48.1.0/24', answer: 'iad', scope: 16 },
  { rule: 'located IPv6', subnet: '2a02:c7f:1::/56', answer: 'lhr', scope: 32 },
  { rule: 'IPv4-mapped ::ffff:0:0/96: by the IPv4 address, scope 96 + its scope', subnet: '::ffff:81.2.69.0/120', answer: 'lhr', scope: 116 },
  { rule: 'NAT64 64:ff9b::/96', subnet: '64:ff9b::81.2.69.0/120', answer: 'lhr', scope: 116 },
  { rule: '6to4 2002::/16: scope 16 + the IPv4 scope', subnet: '2002:5102:4500::/48', answer: 'lhr', scope: 36 },
  { rule: '6to4 of a US network', subnet: '2002:1830:100::/48', answer: 'iad', scope: 32 },
  { rule: 'Teredo 2001::/32: the inverted last 32 bits', subnet: TEREDO_81_2_69_0, answer: 'lhr', scope: 116 },
  { rule: 'IPv4-mapped private address: the resolver decides, scope 96 + the block', subnet: '::ffff:10.1.2.0/120', answer: 'ams', scope: 104 },
  { rule: 'Teredo source too short to reach the IPv4 address: the resolver decides, scope the prefix', subnet: '2001:0:4136:e300::/56', answer: 'ams', scope: 32 },
  { rule: 'NAT64 source too short to reach the IPv4 address: inside the reserved ::/8', subnet: '64:ff9b::/56', answer: 'ams', scope: 8 },
];

for (const row of ROWS) {
  test(`scope rule: ${row.rule} (${row.subnet ?? 'no ECS'} → ${row.answer}, scope ${row.scope === null ? 'none' : `/${row.scope}`})`, () => {
    const got = ask(world, www, 'www.cdn.example', { subnet: row.subnet, ecsTrust: row.trust });
    assert.deepEqual({ answer: got.answer, scope: got.scope }, { answer: [row.answer], scope: row.scope });
    const told = explain({
      snapshot: www, geo: world.geo, health: new Int32Array(createHealthTable(world.geo.catalog.count)), signals: null,
      ecsTrust: row.trust ?? [], subjects: world.geo.catalog.ids, selfPop: 'ams',
    }, { name: 'www.cdn.example', client: row.subnet, resolver: '198.51.100.53' });
    assert.deepEqual(told.answer.records, [`A ${world.geo.catalog.pops.find((p) => p.id === row.answer)!.ipv4[0]}  (${row.answer})`]);
    assert.equal(told.answer.ecs_scope, row.scope);
    assert.ok(told.deciding.scope_rule.length > 0);
  });
}

test('a located scope never reaches into a special-use block, even where the classes would merge across it', () => {
  // With one nearest PoP, 11.0.0.0/8 (Amsterdam) and the unlocated 10.0.0.0/8 share a class: merging alone gives /5.
  const one = compileWorld(world, policy('[healthy, { nearest: { limit: 1 } }, { first: 1 }]'));
  const located = ask(world, one, 'www.cdn.example', { subnet: '11.1.1.0/24' });
  assert.deepEqual(located.answer, ['ams']);
  assert.equal(located.scope, 8, 'the scope stops at the edge of 10.0.0.0/8');
});

test('explain accepts IPv4-mapped clients and names the scope rule', () => {
  const told = explain({
    snapshot: www, geo: world.geo, health: new Int32Array(createHealthTable(world.geo.catalog.count)), signals: null,
    ecsTrust: [], subjects: world.geo.catalog.ids, selfPop: 'ams',
  }, { name: 'www.cdn.example', client: '::ffff:81.2.69.0/120' });
  assert.equal(told.deciding.address, '81.2.69.0');
  assert.match(told.deciding.scope_rule, /IPv4-mapped/);
  assert.equal(told.location?.city, 'Cambridge');
});
