// The fast per-group classifier (steering/class-table.ts) must give exactly
// what planClass, the reference, gives: for every location group of a
// world, every kind of rule, with and without a pinned PoP.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConfigError } from '../../../server/config/errors.ts';
import { loadGeo } from '../../../server/geo-context.ts';
import { geoFacts } from '../../../server/policy/load.ts';
import { compilePolicies, type GeoFacts } from '../../../server/policy/policies.ts';
import { ClassInterner, GroupClassifier } from '../../../server/steering/class-table.ts';
import { classKey, planClass } from '../../../server/steering/decide.ts';
import type { LocationAttributes } from '../../../server/steering/types.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';
import { REPO_ROOT, TEST_CACHE_DIR } from '../../helpers/server.ts';

const world = syntheticWorld();

const rulesFor = (a: string, c: string): string => `policies:
  - name: www.cdn.example
    pools:
      a: { pops: [${a}] }
      b: { pops: all }
      c: { endpoints: [{ id: partner, cname: edge.partner.example. }, { pop: ${c} }, { pop: ams }] }
    rules:
      - { match: { continent: [EU] }, pool: a, steps: [{ geofence: { to: client_continent, else: servfail } }, nearest, healthy] }
      - { match: { continent: [NA] }, pools: [a, c], steps: [{ failover: { min_healthy: 1 } }, nearest, healthy] }
      - { match: { continent: [AS] }, pool: b, steps: [{ nearest: { limit: 3 } }, healthy] }
      - { match: { continent: [OC] }, pool: c, steps: [nearest, healthy] }
      - { match: { continent: [SA] }, pool: b, steps: [nearest, { geofence: { to: [EU, NA], else: keep_all } }, healthy] }
      - { match: default, pool: a, steps: [self, nearest, healthy] }
`;

function compareEveryGroup(facts: GeoFacts, rules: string, pinned: number[], dir: string): number {
  const file = join(mkdtempSync(join(dir, 'policies-')), 'many.yaml');
  writeFileSync(file, rules);
  const errors: ConfigError[] = [];
  const [policy] = compilePolicies([file], facts, 'ams', errors).policies;
  assert.deepEqual(errors.map((e) => e.format()), []);
  const interner = new ClassInterner();
  const classifier = new GroupClassifier(policy.rules, policy.endpoints, policy.unknownOrder, interner);
  const attributes = new Map<string, number>();
  let compared = 0;
  for (const g of facts.groups) {
    for (const fixedPop of [g.fixedPop, ...pinned]) {
      const loc: LocationAttributes = { known: g.order >= 0, popRank: g.order >= 0 ? facts.ranks[g.order] : null, country: g.country, continent: g.continent, subdivision: g.subdivision, fixedPop };
      const key = `${g.country}|${g.continent}|${g.subdivision}|${loc.known}`;
      if (!attributes.has(key)) attributes.set(key, attributes.size);
      for (let r = 0; r < policy.rules.length; r++) {
        const expected = planClass(policy.rules[r], r, policy.endpoints, loc, policy.unknownOrder);
        const got = interner.classes[classifier.classFor(r, loc, attributes.get(key)!)];
        assert.equal(classKey(got), classKey(expected), `rule ${r + 1}, group ${JSON.stringify(g)}, pinned ${fixedPop}`);
        compared++;
      }
    }
  }
  // Interning: equal classes are one class.
  assert.equal(new Set(interner.classes.map(classKey)).size, interner.classes.length);
  return compared;
}

test('classFor agrees with planClass for every group, rule and pinned PoP (synthetic world)', () => {
  const facts = geoFacts(world.geo);
  assert.equal(compareEveryGroup(facts, rulesFor('ams, fra, lhr, iad', 'mad'), [0, 3], world.dir), facts.groups.length * 3 * 6);
});

test('classFor agrees with planClass for every location group of GeoLite2-City and the example PoPs', () => {
  const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: null, asnDatabase: null, cacheDir: TEST_CACHE_DIR });
  const facts = geoFacts(geo.context);
  assert.ok(facts.groups.length > 1000, `${facts.groups.length} groups`);
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-class-table-'));
  try {
    assert.equal(compareEveryGroup(facts, rulesFor('ams, fra, lhr, iad, sjc, sin', 'nrt'), [5], dir), facts.groups.length * 2 * 6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
