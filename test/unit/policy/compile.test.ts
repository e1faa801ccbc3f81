// The policy compiler's bookkeeping: each policy fails for its own errors
// only, and compiled rules carry typed steps in the order written.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../../server/config/errors.ts';
import { geoFacts } from '../../../server/policy/load.ts';
import { compilePolicies } from '../../../server/policy/policies.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();

test('an error of /policies/10 does not fail /policies/1 (JSON pointers compared by segment)', () => {
  const file = join(mkdtempSync(join(world.dir, 'policies-')), 'many.yaml');
  const policy = (i: number): string => `  - name: n${i}.cdn.example
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }]`;
  writeFileSync(file, `policies:\n${Array.from({ length: 11 }, (_, i) => policy(i)).join('\n')}\n`);
  const errors = [new ConfigError('POPSTEER_ERR_POLICY_RULE', file, null, '/policies/10/rules/0', 'an error of policy 10')];
  const loaded = compilePolicies([file], geoFacts(world.geo), 'ams', errors);
  assert.ok(loaded.policies.some((p) => p.name === 'n1.cdn.example'), 'policy 1 compiled');
  assert.ok(!loaded.policies.some((p) => p.name === 'n10.cdn.example'), 'policy 10 failed for its own error');
});

test('steps compile to typed plans in the order written: location steps, then health steps with their codes', () => {
  const file = join(mkdtempSync(join(world.dir, 'policies-')), 'one.yaml');
  writeFileSync(file, `policies:
  - name: www.cdn.example
    pools: { a: { pops: [ams, fra] }, b: { pops: [lhr] } }
    rules:
      - match: default
        pools: [a, b]
        steps: [{ geofence: { to: [EU] } }, nearest, { failover: { min_healthy: 2 } }, healthy, { weighted: { mode: random } }, { first: 2 }]
`);
  const errors: ConfigError[] = [];
  const [policy] = compilePolicies([file], geoFacts(world.geo), 'ams', errors).policies;
  assert.deepEqual(errors, []);
  const rule = policy.rules[0];
  assert.deepEqual(rule.locationSteps.map((s) => s.kind), ['geofence', 'nearest']);
  assert.deepEqual(rule.healthSteps.map((s) => s.kind), ['failover', 'healthy', 'weighted', 'first']);
  assert.deepEqual(Array.from(rule.healthArgs), [2, 0, 1, 2]);
  assert.equal(rule.perNetwork, true);
  assert.equal(rule.first, 2);
});
