// client_cidr rules at an operator's scale, through the real server: a rule
// listing 100,000 networks still answers right, the first matching rule wins
// (not the most specific CIDR), a rule restricted to another PoP does not
// exist on this one (it must not shadow the next), and the ECS scope never
// crosses a listed network's edge.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, replyEcs, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const LISTED = 100_000;
let server: StartedServer;
let client: TestDnsClient;
let config: string;

/** The i-th listed network: /24s spread over 11.0.0.0 – 74.x (every 41st /24). */
function listed(i: number): string {
  const n = 11 * 65536 + i * 41;
  return `${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}.0/24`;
}

before(async () => {
  config = copyExampleConfig();
  const networks = Array.from({ length: LISTED }, (_, i) => `            - ${listed(i)}`);
  writeFileSync(join(config, 'steering', 'www.yaml'), [
    'policies:',
    '  - name: www.cdn.example',
    '    ttl: 60',
    '    pools:',
    '      edge: { pops: all }',
    '      spain: { pops: [mad] }',
    '      us: { pops: [iad] }',
    '    rules:',
    '      - { name: frankfurt-only, match: { client_cidr: [81.2.69.0/24], self: [fra] }, pool: us, steps: [{ first: 1 }] }',
    '      - name: big-list',
    '        match:',
    '          client_cidr:',
    '            - 81.2.0.0/16',
    ...networks,
    '        pool: spain',
    '        steps: [healthy, { first: 1 }]',
    '      - { name: more-specific, match: { client_cidr: [81.2.69.0/24] }, pool: us, steps: [{ first: 1 }] }',
    '      - { name: nearest, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }',
    '',
  ].join('\n'));
  server = await startServer({ workers: 1, args: ['--config', config, '--pop', 'ams'] });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client?.close();
  await server?.stop();
});

function toNumber(cidr: string): number {
  return cidr.split('/')[0].split('.').reduce((a, b) => a * 256 + Number(b), 0) >>> 0;
}

/** Leading bits two networks share. */
function commonPrefix(a: string, b: string): number {
  return Math.clz32((toNumber(a) ^ toNumber(b)) >>> 0);
}

test('the first matching rule answers: a rule for another PoP does not shadow it, a more specific later CIDR does not beat it', async () => {
  const reply = await client.query('www.cdn.example', 'A', { subnet: '81.2.69.0/24' });
  assert.equal(popOf(firstAnswer(reply)), 'mad', 'rule 2 (81.2.0.0/16), not rule 1 (fra only) nor rule 3 (more specific, later)');
  const scope = replyEcs(reply)!.scopePrefixLength;
  assert.ok(scope >= 16 && scope <= 24, `scope /${scope}: inside the listed /16`);
  const explained = JSON.parse((await runCli(['explain', '--config', config, '--geo-data', 'geo-data', '--pop', 'ams', '--name', 'www.cdn.example', '--client', '81.2.69.0/24', '--json'])).stdout);
  assert.equal(explained.rule.name, 'big-list');
  assert.equal(explained.rule.matched_by, 'client address inside 81.2.0.0/16');
});

test('with 100,000 listed networks every listed one goes to Madrid, its neighbours to the nearest PoP, with scopes that stop at the edges', async () => {
  const sample = Array.from({ length: 400 }, (_, k) => Math.floor((k * LISTED) / 400) + (k % 7));
  const inside = await client.queryAll(sample, (i) => client.query('www.cdn.example', 'A', { subnet: listed(i) }));
  inside.forEach((r, k) => {
    assert.equal(popOf(firstAnswer(r)), 'mad', listed(sample[k]));
    assert.equal(replyEcs(r)!.scopePrefixLength, 24, `${listed(sample[k])}: exactly the listed /24`);
  });
  // The /24 right after a listed one is not listed (they are 41 apart): decided by location, scope kept off the listed network.
  const beside = sample.map((i) => {
    const [a, b, c] = listed(i).split('.').map(Number);
    const n = (a * 65536 + b * 256 + c + 1);
    return `${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}.0/24`;
  });
  const outside = await client.queryAll(beside, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  let located = 0;
  outside.forEach((r, k) => {
    const scope = replyEcs(r)!.scopePrefixLength;
    assert.ok(scope > commonPrefix(listed(sample[k]), beside[k]), `${beside[k]}: scope /${scope} would cover the listed ${listed(sample[k])}`);
    if (popOf(firstAnswer(r)) !== 'mad') located++;
  });
  assert.ok(located > beside.length * 0.8, `${located} of ${beside.length} unlisted networks answered by location`);
});
