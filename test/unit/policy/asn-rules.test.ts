// asn and resolver_asn rules on the synthetic world with an ASN source
// spliced in: decided by the same lookup as locations, combinable with the
// location keys, ECS scopes that never reach across an AS edge where the
// answer changes, and clear errors.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadAsnSource } from '../../../server/geo/asn-source.ts';
import { spliceAsn } from '../../../server/geo/asn-splice.ts';
import { nearestOrderClasses } from '../../../server/geo/distance.ts';
import { geoFacts } from '../../../server/policy/load.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { ask, compileErrors, compileWorld, syntheticWorld, type SyntheticWorld } from '../../fixtures/synthetic-geo.ts';

const plain = syntheticWorld();
const origins = join(plain.dir, 'origins.txt');
writeFileSync(origins, [
  '81.3.0.0/17,3320', // the first half of the Berlin /16
  '81.3.128.0/17,3209', // the second half
  '81.2.64.0/20,2856', // Cambridge
  '11.1.0.0/16,15169', // a /16 inside the Amsterdam /8
  '203.0.113.0/24,64500', // a resolver's network (no GeoIP location; ask() queries from 198.51.100.53 unless told)
  '203.0.113.128/25,64501', // a more specific network of another AS inside it
  '2a02:c7f::/32,5607', // London, IPv6
  '',
].join('\n'));
const asnSource = loadAsnSource([origins]);
const index = spliceAsn(plain.geo.index, asnSource);
const world: SyntheticWorld = { dir: plain.dir, geo: { ...plain.geo, index, orders: nearestOrderClasses(index, plain.geo.catalog), asnSource, version: 'synthetic+asn' } };

const POLICIES = `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all }, us: { pops: [iad] }, spain: { pops: [mad] }, uk: { pops: [lhr] } }
    rules:
      - { name: telekom, match: { asn: [3320] }, pool: us, steps: [{ first: 1 }] }
      - { name: google-nl, match: { asn: [15169], country: [NL] }, pool: spain, steps: [{ first: 1 }] }
      - { name: via-isp-resolver, match: { resolver_asn: [64500] }, pool: uk, steps: [{ first: 1 }] }
      - { match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }
`;
const snapshot = compileWorld(world, POLICIES);

/** Every address sampled inside the reply's scope gets the same answer (the scope is honest). */
function assertScopeHolds(s: DnsSnapshot, subnet: string, expected: string[], scope: number): void {
  const [a, b, c] = subnet.split('.').map(Number);
  const base = ((a << 24) | (b << 16) | (c << 8)) >>> 0;
  const size = 2 ** (32 - scope);
  for (let k = 0; k < 16; k++) {
    const inside = (base & ~(size - 1)) + Math.floor((k / 16) * size);
    const text = [inside >>> 24, (inside >>> 16) & 255, (inside >>> 8) & 255, 0].join('.');
    assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: `${text}/24` }).answer, expected, `${text}/24 inside ${subnet} /${scope}`);
  }
}

test('asn sends the AS\'s clients to its pool; the scope stops at the AS\'s edge', () => {
  const telekom = ask(world, snapshot, 'www.cdn.example', { subnet: '81.3.1.0/24' });
  assert.deepEqual([telekom.answer, telekom.scope], [['iad'], 17]);
  const other = ask(world, snapshot, 'www.cdn.example', { subnet: '81.3.200.0/24' });
  assert.deepEqual([other.answer, other.scope], [['fra'], 17], 'the other half of the same GeoIP network: nearest, its own /17');
  assertScopeHolds(snapshot, '81.3.1.0', ['iad'], telekom.scope!);
  assertScopeHolds(snapshot, '81.3.200.0', ['fra'], other.scope!);
});

test('asn combines with country: both must hold, and the scope leaves the AS\'s /16 out of the rest of the /8', () => {
  const google = ask(world, snapshot, 'www.cdn.example', { subnet: '11.1.2.0/24' });
  assert.deepEqual([google.answer, google.scope], [['mad'], 16]);
  const beside = ask(world, snapshot, 'www.cdn.example', { subnet: '11.2.0.0/24' });
  assert.deepEqual(beside.answer, ['ams']);
  assert.ok(beside.scope! >= 15, `scope /${beside.scope} must not contain 11.1.0.0/16`);
  assertScopeHolds(snapshot, '11.2.0.0', ['ams'], beside.scope!);
  const elsewhere = compileWorld(world, POLICIES.replace('country: [NL]', 'country: [DE]'));
  assert.deepEqual(ask(world, elsewhere, 'www.cdn.example', { subnet: '11.1.2.0/24' }).answer, ['ams'], 'AS15169 but not in DE: the rule does not hold');
});

test('asn matches IPv6 clients too', () => {
  const s = compileWorld(world, POLICIES.replace('asn: [3320]', 'asn: [5607]'));
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: '2a02:c7f:1::/48' }).answer, ['iad']);
});

test('resolver_asn decides by the resolver\'s own address, whatever the ECS client', () => {
  assert.deepEqual(ask(world, snapshot, 'www.cdn.example', { resolver: '203.0.113.53' }).answer, ['lhr']);
  assert.deepEqual(ask(world, snapshot, 'www.cdn.example', { resolver: '203.0.113.53', subnet: '24.48.1.0/24' }).answer, ['lhr']);
  assert.deepEqual(ask(world, snapshot, 'www.cdn.example', { resolver: '198.51.100.7', subnet: '24.48.1.0/24' }).answer, ['iad'], 'another resolver: the default (nearest to Washington)');
  assert.deepEqual(ask(world, snapshot, 'www.cdn.example', { resolver: '203.0.113.53', subnet: '81.3.1.0/24' }).answer, ['iad'], 'an earlier asn rule still wins');
  assert.deepEqual(ask(world, snapshot, 'www.cdn.example', { resolver: '203.0.113.200', subnet: '24.48.1.0/24' }).answer, ['iad'], 'inside AS64500\'s /24 but in AS64501\'s more specific /25');
});

test('a policy without ASN rules answers as on the plain index', () => {
  const nearest = `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }]
`;
  const before = compileWorld(plain, nearest);
  const after = compileWorld(world, nearest);
  for (const subnet of ['81.3.1.0/24', '81.2.70.0/24', '11.1.2.0/24', '24.48.1.0/24', '81.2.90.0/24']) {
    assert.deepEqual(ask(world, after, 'www.cdn.example', { subnet }).answer, ask(plain, before, 'www.cdn.example', { subnet }).answer, subnet);
  }
});

test('mistakes in ASN rules are named with file and line', () => {
  const rule = (match: string): string => `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules:
      - { match: ${match}, pool: edge }
      - { match: default, pool: edge }
`;
  const noSource = compileErrors(plain, rule('{ asn: [3320] }')).join('\n');
  assert.match(noSource, /policies\.yaml:5:\d+: POPSTEER_ERR_POLICY_NO_ASN_SOURCE: .*`asn` needs an ASN source: set asn_database/);
  assert.match(compileErrors(plain, rule('{ resolver_asn: [3320] }')).join('\n'), /POPSTEER_ERR_POLICY_NO_ASN_SOURCE: .*`resolver_asn` needs an ASN source/);
  assert.match(compileErrors(world, rule('{ asn: [AS3320] }')).join('\n'), /policies\.yaml:5:\d+: POPSTEER_ERR_POLICY_SCHEMA: \/policies\/0\/rules\/0\/match\/asn\/0: "AS3320" is not an AS number: write a whole number from 1 to 4294967295/);
  assert.match(compileErrors(world, rule('{ asn: [0] }')).join('\n'), /0 is not an AS number/);
  assert.match(compileErrors(world, rule('{ asn: [4294967296] }')).join('\n'), /4294967296 is not an AS number/);
  assert.match(compileErrors(world, rule('{ asns: [3320] }')).join('\n'), /unknown key "asns"/);
  assert.match(compileErrors(world, rule('{ asn: [3320], client_cidr: [81.3.0.0/16] }')).join('\n'), /POPSTEER_ERR_POLICY_MATCH: .*not both/);
  assert.match(compileErrors(world, rule('{ resolver_asn: [64500], resolver_cidr: [203.0.113.0/24] }')).join('\n'), /resolver_cidr or by resolver_asn, not both/);
  assert.deepEqual(compileErrors(world, rule('{ asn: [3320], continent: [EU], self: [ams] }')), [], 'asn combines with location keys and self');
});

test('only the ASes some policy names tell location groups apart; a set naming another AS regroups', () => {
  const unnamed = geoFacts(world.geo);
  assert.ok(unnamed.groups.every((g) => g.asn === 0), 'no AS named: every AS reads as 0');
  // As many groups as the plain index has, plus at most one for addresses with an AS and no GeoIP data.
  const plainGroups = geoFacts(plain.geo).groups.length;
  assert.ok(unnamed.groups.length <= plainGroups + 1, `${unnamed.groups.length} groups against ${plainGroups} on the plain index`);
  assert.ok(world.geo.index.locationCount > plainGroups + 1, 'the spliced index has more locations than that');
  const named = geoFacts(world.geo, [3320]);
  assert.notEqual(named, unnamed);
  assert.deepEqual([...new Set(named.groups.map((g) => g.asn))].sort((a, b) => a - b), [0, 3320]);
  assert.ok(named.groups.length > unnamed.groups.length);
  assert.equal(geoFacts(world.geo, [3320]), named, 'the same named set reuses its facts');
  // A policy naming 3209 after one naming 3320: the second half of the Berlin /16 now has its own class.
  const later = compileWorld(world, POLICIES.replace('asn: [3320]', 'asn: [3209]'));
  assert.deepEqual(ask(world, later, 'www.cdn.example', { subnet: '81.3.200.0/24' }).answer, ['iad']);
  assert.deepEqual(ask(world, later, 'www.cdn.example', { subnet: '81.3.1.0/24' }).answer, ['fra']);
});
