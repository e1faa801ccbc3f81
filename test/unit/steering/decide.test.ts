// The decision core on a synthetic world (test/fixtures/synthetic-geo.ts):
// each rule and step proved in milliseconds, through the compiler and the
// engine the server runs, and through the decider's own trace.

import assert from 'node:assert/strict';
import { classAt, classesOf } from '../../../server/steering/lazy-classes.ts';
import { test } from 'node:test';
import { createHealthTable } from '../../../server/health/table.ts';
import { DecisionTrace, isUp, Resolution, resolve } from '../../../server/steering/decide.ts';
import { createSignals, setDeclaredLoad } from '../../../server/steering/signals.ts';
import { ask, compileErrors, compileWorld, syntheticWorld, type FixturePop } from '../../fixtures/synthetic-geo.ts';

const world = syntheticWorld();
const ids = world.geo.catalog.ids;
const healthWith = (down: string[] = [], table = new Int32Array(createHealthTable(ids.length))): Int32Array => {
  for (const id of down) table[3 + ids.indexOf(id)] = 0;
  table[0]++;
  return table;
};
const CAMBRIDGE = '81.2.69.0/24';

test('nearest, healthy, first: the nearest PoP that is up', () => {
  const s = compileWorld(world, `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [healthy, nearest, { first: 2 }] }]
`);
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: CAMBRIDGE }).answer, ['lhr', 'ams']);
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: CAMBRIDGE, health: healthWith(['lhr']) }).answer, ['ams', 'fra']);
});

test('a CIDR rule restricted to another PoP does not shadow the next CIDR rule', () => {
  const policies = `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all }, spain: { pops: [mad] } }
    rules:
      - { name: fra-only, match: { client_cidr: [81.2.69.0/24], self: [fra] }, pool: edge, steps: [{ first: 1 }] }
      - { name: to-madrid, match: { client_cidr: [81.2.0.0/16] }, pool: spain, steps: [{ first: 1 }] }
      - { name: nearest, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }
`;
  const onAms = compileWorld(world, policies, 'ams');
  const got = ask(world, onAms, 'www.cdn.example', { subnet: CAMBRIDGE });
  assert.deepEqual(got.answer, ['mad'], 'rule 2 answers on ams: rule 1 does not exist here');
  assert.equal(onAms.steering!.policies[0].rules[got.steering.last.cidrRule].name, 'to-madrid');
  const onFra = compileWorld(world, policies, 'fra');
  assert.deepEqual(ask(world, onFra, 'www.cdn.example', { subnet: CAMBRIDGE }).answer, ['ams'], 'on fra rule 1 answers (its first endpoint)');
});

test('client_cidr and resolver_cidr in one rule must both hold; the first matching rule wins', () => {
  const s = compileWorld(world, `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all }, us: { pops: [iad] }, de: { pops: [fra] } }
    rules:
      - { name: both, match: { client_cidr: [81.2.0.0/16], resolver_cidr: [203.0.113.0/24] }, pool: us, steps: [{ first: 1 }] }
      - { name: wide, match: { client_cidr: [81.0.0.0/8] }, pool: de, steps: [{ first: 1 }] }
      - { match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }
`);
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: CAMBRIDGE, resolver: '203.0.113.9' }).answer, ['iad']);
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: CAMBRIDGE, resolver: '198.51.100.1' }).answer, ['fra'], 'resolver outside: rule 1 does not hold');
  assert.deepEqual(ask(world, s, 'www.cdn.example', { subnet: '24.48.0.0/24', resolver: '203.0.113.9' }).answer, ['iad'], 'client outside every CIDR: default');
});

test('the scope never crosses the edge of a client CIDR some rule matches on', () => {
  const s = compileWorld(world, `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all }, us: { pops: [iad] } }
    rules:
      - { match: { client_cidr: [81.2.70.0/23] }, pool: us, steps: [{ first: 1 }] }
      - { match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }
`);
  const inside = ask(world, s, 'www.cdn.example', { subnet: '81.2.71.0/24' });
  assert.deepEqual([inside.answer, inside.scope], [['iad'], 23]);
  const beside = ask(world, s, 'www.cdn.example', { subnet: '81.2.68.0/24' });
  assert.deepEqual(beside.answer, ['lhr']);
  assert.equal(beside.scope, 23, 'the /20 narrowed so that it leaves out 81.2.70.0/23');
});

test('capacity after weighted moves (L − M) / L of the networks off the PoP the weights picked', () => {
  const s = compileWorld(world, `policies:
  - name: video.cdn.example
    pools: { eu: { endpoints: [{ pop: ams, weight: 1 }, { pop: fra, weight: 1 }, { pop: lhr, weight: 1 }] } }
    rules: [{ match: default, pool: eu, steps: [healthy, { weighted: { mode: sticky } }, { capacity: { mark: 1 } }, { first: 1 }] }]
`);
  const signals = new Float64Array(createSignals(ids.length));
  const share = (): Map<string, number> => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const subnet = `${81 + (i % 7)}.${(i >> 3) & 255}.${i & 255}.0/24`;
      const [id] = ask(world, s, 'video.cdn.example', { subnet, signals }).answer;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  };
  const calm = share();
  for (const id of ['ams', 'fra', 'lhr']) assert.ok(Math.abs(calm.get(id)! / 3000 - 1 / 3) < 0.05, `${id}: ${calm.get(id)}`);
  setDeclaredLoad(signals, ids.indexOf('ams'), 4); // (4 − 1) / 4 = 75% of ams's networks move on
  const loaded = share();
  assert.ok(Math.abs(loaded.get('ams')! / 3000 - 1 / 12) < 0.03, `ams keeps about a quarter of its third: ${loaded.get('ams')}`);
});

test('an order the decider cannot honour is refused, naming the step and what to change', () => {
  const rule = (steps: string): string => `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: ${steps} }]
`;
  assert.match(compileErrors(world, rule('[healthy, { capacity: { mark: 1 } }, { weighted: {} }, { first: 1 }]')).join('\n'),
    /steps\/2: `capacity` moves clients off the candidate the weights picked: put `capacity` after `weighted`/);
  assert.match(compileErrors(world, rule('[{ weighted: {} }, nearest, { first: 1 }]')).join('\n'), /steps\/1: `nearest` after `weighted` would re-sort/);
  assert.match(compileErrors(world, rule('[healthy, { geofence: { to: client_continent } }, { first: 1 }]')).join('\n'), /steps\/1: `geofence` decides on the client's location, before health is known: move it before `healthy`/);
  assert.deepEqual(compileErrors(world, rule('[healthy, nearest, { weighted: {} }, { capacity: { mark: 1 } }, { first: 1 }]')), []);
});

test('a CIDR error says what exactly is wrong', () => {
  const rule = (cidr: string): string => `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules:
      - { match: { client_cidr: ["${cidr}"] }, pool: edge }
      - { match: default, pool: edge }
`;
  assert.match(compileErrors(world, rule('81.2.69.1/24')).join('\n'), /POPSTEER_ERR_POLICY_BAD_CIDR: .*"81\.2\.69\.1\/24" has host bits set beyond \/24; did you mean 81\.2\.69\.0\/24\?/);
  assert.match(compileErrors(world, rule('::ffff:81.2.69.0/120')).join('\n'), /lies in the IPv4 space of IPv6 .* write it as an IPv4 network/);
});

test('a health subject beyond the table reads as up, as the health table itself reads it', () => {
  const s = compileWorld(world, `policies:
  - name: www.cdn.example
    pools: { edge: { pops: [iad] } }
    rules: [{ match: default, pool: edge, steps: [healthy, { first: 1 }] }]
    when_all_down: servfail
`);
  const short = new Int32Array(createHealthTable(ids.indexOf('iad'))); // iad's slot is past the end
  assert.equal(isUp(short, ids.indexOf('iad')), true);
  const policy = s.steering!.policies[0];
  const r = new Resolution();
  resolve(policy, classAt(policy, 0), short, 0, 0, r);
  assert.equal(r.count, 1);
  assert.equal(policy.endpoints[r.chosen[0]].id, 'iad');
});

test('the answer carries exactly the endpoints decided, also past 2^53 endpoint combinations (120 PoPs, first 8)', () => {
  const pops: FixturePop[] = Array.from({ length: 120 }, (_, i) => ({
    id: `p${String(i).padStart(3, '0')}`, lat: 0, lon: i, country: 'NL', continent: 'EU', ipv4: `10.0.${i >> 8}.${i & 255}`,
  }));
  const big = syntheticWorld(pops);
  const s = compileWorld(big, `policies:
  - name: www.cdn.example
    unknown_location: [p000]
    pools: { all: { pops: all } }
    rules: [{ match: default, pool: all, steps: [healthy, { first: 8 }] }]
`, 'p000');
  const bigIds = big.geo.catalog.ids;
  const table = new Int32Array(createHealthTable(bigIds.length));
  const setDown = (up: number[]): void => {
    for (let i = 0; i < bigIds.length; i++) table[3 + i] = up.includes(i) ? 1 : 0;
    table[0]++;
  };
  const tail = [113, 114, 115, 116, 117, 118, 119];
  for (const head of [0, 1, 2, 3]) {
    setDown([head, ...tail]);
    const got = ask(big, s, 'www.cdn.example', { health: table });
    assert.deepEqual(got.answer, [head, ...tail].map((i) => bigIds[i]), `with p${head} and the last seven up`);
  }
});

test('the decider traces every step it runs, with what each kept and dropped', () => {
  const s = compileWorld(world, `policies:
  - name: www.cdn.example
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }]
`);
  const policy = s.steering!.policies[0];
  const trace = new DecisionTrace();
  const r = new Resolution();
  // Classes are made on first sight: make every group's, then pick one that puts lhr first.
  const classes = classesOf(policy);
  for (let g = 0; g < policy.groups.count; g++) classes.classOf(0, g);
  const cls = classes.classes.find((c) => policy.endpoints[c.tiers[0][0]].id === 'lhr')!;
  resolve(policy, cls, healthWith(['lhr']), 0, 0, r, null, trace);
  assert.deepEqual(trace.steps.map((t) => t.step.kind), ['healthy', 'first']);
  assert.deepEqual(trace.steps[0].dropped.map((d) => policy.endpoints[d.endpoint].id), ['lhr']);
  assert.equal(policy.endpoints[trace.steps[1].kept[0]].id, 'ams');
});
