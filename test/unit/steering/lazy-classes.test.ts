// Classes made on first sight (steering/lazy-classes.ts) must be exactly what
// planClass, the reference, gives for the rule that matches each location
// group: in every variant (no CIDR rule matched, or a CIDR rule did), for
// addresses without data, in any order of asking, and a uniform policy has
// its one class as class 0.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConfigError } from '../../../server/config/errors.ts';
import { geoFacts } from '../../../server/policy/load.ts';
import { compilePolicies } from '../../../server/policy/policies.ts';
import { classKey, locationMatches, planClass } from '../../../server/steering/decide.ts';
import { PolicyClasses, classesOf } from '../../../server/steering/lazy-classes.ts';
import type { CompiledPolicy, LocationAttributes } from '../../../server/steering/types.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
const facts = geoFacts(world.geo);

function compile(text: string): CompiledPolicy {
  const file = join(mkdtempSync(join(world.dir, 'lazy-')), 'p.yaml');
  writeFileSync(file, text);
  const errors: ConfigError[] = [];
  const [policy] = compilePolicies([file], facts, 'ams', errors).policies;
  assert.deepEqual(errors.map((e) => e.format()), []);
  return policy;
}

const POLICY = `policies:
  - name: www.cdn.example
    pools:
      a: { pops: [ams, fra, lhr, iad] }
      b: { pops: all }
    rules:
      - { match: { client_cidr: [198.51.100.0/24] }, pool: a, steps: [nearest, healthy] }
      - { match: { continent: [EU] }, pool: a, steps: [{ geofence: { to: client_continent, else: servfail } }, nearest, healthy] }
      - { match: { continent: [AS] }, pool: b, steps: [{ nearest: { limit: 3 } }, healthy] }
      - { match: default, pool: b, steps: [nearest, healthy] }
`;

/** What the class of group g under variant v must be, from the reference. */
function expected(policy: CompiledPolicy, v: number, g: number): string {
  const group = facts.groups[g];
  const loc: LocationAttributes = g < 0 ? { known: false, popRank: null, country: '', continent: '', subdivision: '', fixedPop: -1, asn: 0 }
    : { known: group.order >= 0, popRank: group.order >= 0 ? facts.ranks[group.order] : null, country: group.country, continent: group.continent, subdivision: group.subdivision, fixedPop: group.fixedPop, asn: group.asn };
  const cidrRule = policy.plan.variantRules[v];
  let r = policy.rules.findIndex((rule, i) => (policy.plan.hasCidr[i] === 1 ? i === cidrRule : locationMatches(rule, loc)));
  if (r < 0) r = policy.plan.defaultRule;
  return classKey(planClass(policy.rules[r], r, policy.endpoints, loc, policy.unknownOrder));
}

test('every group\'s class, made on first sight, is planClass\'s for the matching rule, in each variant and either order of asking', () => {
  const policy = compile(POLICY);
  assert.equal(policy.plan.uniform, false);
  assert.equal(policy.plan.variantRules.length, 2, 'variant 0 and the client_cidr rule');
  const forward = new PolicyClasses(policy);
  const backward = new PolicyClasses(policy);
  const count = policy.groups.count;
  let compared = 0;
  for (let v = 0; v < 2; v++) {
    for (let g = 0; g <= count; g++) {
      const got = forward.classes[forward.classOf(v, g)];
      assert.equal(classKey(got), expected(policy, v, g === count ? -1 : g), `variant ${v}, group ${g}`);
      compared++;
    }
    for (let g = count; g >= 0; g--) assert.equal(classKey(backward.classes[backward.classOf(v, g)]), classKey(forward.classes[forward.classOf(v, g)]));
  }
  assert.equal(compared, 2 * (count + 1));
  // Interning: equal classes are one class, and asking again gives the same number (the memo).
  assert.equal(new Set(forward.classes.map(classKey)).size, forward.classes.length);
  assert.equal(forward.classOf(0, 0), forward.classOf(0, 0));
  assert.ok(forward.classes.length > 2, `${forward.classes.length} classes`);
});

test('a policy whose every client gets one class is uniform, with that class as class 0; copies of a policy share its classes', () => {
  const policy = compile(`policies:
  - name: www.cdn.example
    pools: { edge: { pops: [iad, ams] } }
    rules: [{ match: default, pool: edge, steps: [healthy] }]
`);
  assert.equal(policy.plan.uniform, true);
  const classes = classesOf(policy);
  assert.equal(classKey(classes.classes[0]), expected(policy, 0, -1));
  assert.equal(classesOf({ ...policy, index: 7 }), classes, 'a renamed copy (same rules) shares the thread\'s classes');
  assert.equal(compile(POLICY).plan.uniform, false);
});

test('failover over one-PoP pools is uniform: one class, whatever the client (scope /0)', () => {
  const policy = compile(`policies:
  - name: www.cdn.example
    pools: { a: { pops: [fra] }, b: { pops: [ams] } }
    rules: [{ match: default, pools: [a, b], steps: [{ failover: { min_healthy: 1 } }, healthy] }]
`);
  assert.equal(policy.plan.uniform, true);
  assert.equal(classKey(classesOf(policy).classes[0]), expected(policy, 0, -1));
});
