// Explain tells the answer the server gives. A property test over random
// policies, clients and health states (2,000+ cases): for each, the live
// server's reply (records, TTL, ECS scope), GET /v1/explain and the offline
// `popsteer explain --json` must agree, and addresses drawn inside the
// returned scope must get the same records from the server. Batched: one
// server per policy set, queries in flight together, one offline command per
// name with every client in a file. Then the cases the old explain got wrong:
// TTLs from live health timing, ecs_trust, and a resolver decided on /32.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { Reader, type CityResponse } from 'maxmind';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { records, replyEcs, TestDnsClient, type Decoded } from '../helpers/dns-client.ts';
import { POPS } from '../helpers/pops.ts';
import { CLI, REPO_ROOT, startServer, testEnvironment, type StartedServer } from '../helpers/server.ts';
import { loadScenario } from '../bench/peers/scenario.ts';
import { seededRandom } from '../unit/geo/helpers.ts';

const exec = promisify(execFile);
const POP_IDS = POPS.map((p) => p.id);
const CASES_PER_NAME = 180;
const reader = new Reader<CityResponse>(readFileSync(loadScenario().mmdb));
const started: StartedServer[] = [];
after(async () => {
  for (const s of started) await s.stop();
});

type Random = () => number;
const pick = <T>(random: Random, list: readonly T[]): T => list[Math.floor(random() * list.length)];
const some = <T>(random: Random, list: readonly T[], min: number): T[] => {
  const out = list.filter(() => random() < 0.5);
  for (const item of list) if (out.length < min && !out.includes(item)) out.push(item);
  return out;
};

/** One random policy for `name`: pools, an optional CIDR or country rule, a default rule with a random step list. */
function randomPolicy(name: string, random: Random): string {
  const pops = some(random, POP_IDS, 3);
  const kind = pick(random, ['nearest', 'limit', 'geofence', 'weighted', 'failover', 'prefer_self', 'weighted_capacity'] as const);
  const lines = [`  - name: ${name}`, `    ttl: ${10 + Math.floor(random() * 290)}`];
  if (random() < 0.3) lines.push('    ttl_from_health: { min: 5, max: 30 }');
  if (random() < 0.5) lines.push(`    unknown_location: [${pick(random, pops)}]`);
  lines.push('    pools:');
  if (kind === 'weighted' || kind === 'weighted_capacity') {
    lines.push(`      edge: { endpoints: [${pops.map((p) => `{ pop: ${p}, weight: ${1 + Math.floor(random() * 50)} }`).join(', ')}] }`);
  } else {
    lines.push(`      edge: { pops: [${pops.join(', ')}] }`);
  }
  const backup = some(random, POP_IDS.filter((p) => !pops.includes(p)), 1);
  lines.push(`      backup: { pops: [${backup.join(', ')}] }`);
  lines.push('    rules:');
  if (random() < 0.4) lines.push(`      - { name: listed, match: { client_cidr: [${randomCidr(random)}, ${randomCidr(random)}] }, pool: backup, steps: [healthy, nearest, { first: 1 }] }`);
  if (random() < 0.4) lines.push(`      - { name: by-country, match: { country: [${some(random, ['GB', 'DE', 'US', 'JP', 'BR', 'AU', 'FR'], 1).join(', ')}] }, pool: backup, steps: [healthy, nearest, { first: 1 }] }`);
  const first = `{ first: ${1 + Math.floor(random() * 3)} }`;
  const steps: Record<typeof kind, string> = {
    nearest: `[healthy, nearest, ${first}]`,
    limit: `[healthy, { nearest: { limit: ${1 + Math.floor(random() * 4)} } }, ${first}]`,
    geofence: `[{ geofence: { to: client_continent, else: ${pick(random, ['keep_all', 'servfail', '{ pool: backup }'])} } }, healthy, nearest, ${first}]`,
    weighted: `[healthy, { weighted: { mode: sticky } }, ${first}]`,
    failover: `[{ failover: { min_healthy: ${1 + Math.floor(random() * 2)} } }, healthy, nearest, ${first}]`,
    prefer_self: `[healthy, nearest, { prefer_self_within_km: ${200 + Math.floor(random() * 3000)} }, ${first}]`,
    weighted_capacity: `[healthy, { weighted: { mode: sticky } }, { capacity: { mark: 1 } }, ${first}]`,
  };
  lines.push(`      - { name: main, match: default, ${kind === 'failover' ? 'pools: [edge, backup]' : 'pool: edge'}, steps: ${steps[kind]} }`);
  lines.push(`    when_all_down: ${pick(random, ['fail_open', 'servfail', '{ pool: backup }'])}`);
  return lines.join('\n');
}

function randomCidr(random: Random): string {
  const length = pick(random, [12, 16, 20, 24]);
  const n = (Math.floor(random() * 0xdfffffff) >>> (32 - length)) << (32 - length) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${length}`;
}

/** A located IPv4 address (by the maxmind reader), as dotted text. */
function locatedIpv4(random: Random): string {
  for (;;) {
    const text = `${1 + Math.floor(random() * 222)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}`;
    if (reader.get(text)?.location) return text;
  }
}

const mask4 = (text: string, length: number): string => {
  const n = text.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  const m = length === 0 ? 0 : (n >>> (32 - length)) << (32 - length) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
};
const hex = (text: string): string[] => text.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));

/** A random client: mostly located IPv4 networks, and every other kind the scope rules know. "-" is no ECS. */
function randomClient(random: Random): string {
  const r = random();
  if (r < 0.5) {
    const length = pick(random, [24, 24, 24, 20, 16, 28, 32]);
    return `${mask4(locatedIpv4(random), length)}/${length}`;
  }
  if (r < 0.62) return pick(random, ['10.1.2.0/24', '192.168.7.0/24', '100.64.9.0/24', '127.0.0.0/24', '172.20.1.0/24', '169.254.3.0/24', 'fd12:3456::/56', 'fe80::/56', '0.0.0.0/0']);
  if (r < 0.77) {
    const group = (): string => Math.floor(random() * 0x10000).toString(16);
    return `${pick(random, ['2001', '2400', '2600', '2a00', '2a02', '2800'])}:${group()}:${group()}::/${pick(random, [48, 56])}`;
  }
  const v4 = mask4(locatedIpv4(random), 24);
  const h = hex(v4);
  if (r < 0.83) return `::ffff:${v4}/120`;
  if (r < 0.88) return `64:ff9b::${v4}/120`;
  if (r < 0.94) return `2002:${h[0]}${h[1]}:${h[2]}00::/40`;
  return '-';
}

interface Told { rcode: string; records: string[]; ttl: number | null; ecs_scope: number | null }

function live(reply: Decoded): Told {
  const rs = records(reply).filter((r) => r.type === 'A' || r.type === 'AAAA' || r.type === 'CNAME');
  return {
    rcode: String(reply.rcode ?? 'NOERROR'),
    records: rs.map((r) => `${r.type} ${String(r.data).replace(/\.$/, '.')}`),
    ttl: rs.length > 0 ? rs[0].ttl : null,
    ecs_scope: replyEcs(reply)?.scopePrefixLength ?? null,
  };
}

function explained(result: { answer: Told }): Told {
  const a = result.answer;
  return { rcode: a.rcode, records: a.records.map((r) => r.replace(/ {2}\(.*\)$/, '')), ttl: a.ttl, ecs_scope: a.ecs_scope };
}

/** A random network inside `scope` of the client's source network, with the same source length. */
function insideScope(client: string, scope: number, random: Random): string | null {
  const [text, lengthText] = client.split('/');
  const source = Number(lengthText);
  if (text.includes(':') || scope >= source) return null;
  let n = text.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  for (let bit = scope; bit < Math.min(source, 24); bit++) if (random() < 0.5) n ^= 2 ** (31 - bit);
  return `${mask4([24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.'), source)}/${source}`;
}

/** Runs `work` over `items` with at most `limit` in flight, results in order. */
async function inFlight<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  }));
  return out;
}

// One test per policy set (each its own server), then the count over all of them.
const random = seededRandom(0x5eed);
let cases = 0;
let sampled = 0;
for (let set = 0; set < 4; set++) {
  test(`property, policy set ${set + 1} of 4: the live answer, GET /v1/explain and offline explain agree, and the scope holds`, async () => {
    const config = copyExampleConfig();
    for (const f of readdirSync(join(config, 'steering'))) rmSync(join(config, 'steering', f));
    const names = [0, 1, 2].map((i) => `p${set}-${i}.cdn.example`);
    writeFileSync(join(config, 'steering', 'random.yaml'), `policies:\n${names.map((n) => randomPolicy(n, random)).join('\n')}\n`);
    const state = join(mkdtempSync(join(tmpdir(), 'popsteer-prop-')), 'state.json');
    const down = POP_IDS.filter(() => random() < 0.2);
    writeFileSync(state, JSON.stringify({ version: 1, overrides: Object.fromEntries(down.map((id) => [id, { kind: 'force-down', reason: 'property test', since: Date.now(), expires: null }])) }));
    const trust = set === 3 ? ['--ecs-trust', '192.0.2.0/24'] : set === 2 ? ['--ecs-trust', '127.0.0.0/8'] : [];
    const args = ['--config', config, '--pop', pick(random, ['ams', 'iad', 'nrt', 'gru']), '--state-file', state, ...trust];
    const clients = Array.from({ length: CASES_PER_NAME }, () => randomClient(random));
    const file = join(mkdtempSync(join(tmpdir(), 'popsteer-prop-clients-')), 'clients.txt');
    writeFileSync(file, `${clients.join('\n')}\n`);
    // Offline: one command for every name and client of the set (name by name).
    const offline = JSON.parse((await exec(process.execPath, [CLI, 'explain', '--name', names.join(','), '--clients', file, '--json', '--geo-data', join(REPO_ROOT, 'geo-data'), ...args], { maxBuffer: 256 * 1024 * 1024, env: testEnvironment() })).stdout) as Array<{ answer: Told }>;
    assert.equal(offline.length, names.length * clients.length);
    const server = await startServer({ workers: 1, args });
    started.push(server);
    const client = new TestDnsClient(server.dnsPort);
    try {
      for (const [n, name] of names.entries()) {
        const replies = await client.queryAll(clients, (c) => client.query(name, 'A', c === '-' ? {} : { subnet: c }));
        const apiResults = await inFlight(clients, 8, async (c) => (await fetch(`http://127.0.0.1:${server.adminPort}/v1/explain?name=${name}${c === '-' ? '' : `&client=${encodeURIComponent(c)}`}`)).json() as Promise<{ answer: Told }>);
        for (const [i, c] of clients.entries()) {
          const fromServer = live(replies[i]);
          const context = `${name} client ${c} (policy set ${set + 1})`;
          assert.deepEqual(explained(apiResults[i]), fromServer, `GET /v1/explain vs the server: ${context}`);
          assert.deepEqual(explained(offline[n * clients.length + i]), fromServer, `offline explain vs the server: ${context}`);
          cases++;
        }
        // Networks inside each returned scope get the same records.
        const inside = clients.flatMap((c, i) => {
          const scope = replyEcs(replies[i])?.scopePrefixLength;
          const other = c === '-' || scope === undefined ? null : insideScope(c, scope, random);
          return other === null ? [] : [{ original: i, other }];
        });
        const again = await client.queryAll(inside, (s) => client.query(name, 'A', { subnet: s.other }));
        inside.forEach((s, k) => {
          assert.deepEqual(live(again[k]).records, live(replies[s.original]).records, `${name}: ${s.other} lies inside the scope of ${clients[s.original]}`);
          sampled++;
        });
      }
    } finally {
      client.close();
      await server.stop();
    }
  });
}

test('property: at least 2,000 cases were compared, and 800 networks sampled inside returned scopes', () => {
  assert.ok(cases >= 2000, `${cases} cases`);
  assert.ok(sampled >= 800, `${sampled} networks sampled inside returned scopes`);
});

test('explain reports the live TTL of ttl_from_health, uses ecs_trust, and locates a resolver on its /32', async () => {
  const config = copyExampleConfig();
  const www = join(config, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('    degraded_ttl: 20\n', '    degraded_ttl: 20\n    ttl_from_health: { min: 5, max: 30 }\n'));
  const geoData = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  cpSync(join(REPO_ROOT, 'geo-data'), geoData, { recursive: true });
  // One address of the loopback /24 is pinned to London; the rest of 127.0.0.0/24 has no location.
  writeFileSync(join(geoData, 'networks.yaml'), 'networks:\n  127.0.0.1/32: { pop: lhr, name: test-resolver }\n');
  const server = await startServer({ workers: 1, args: ['--config', config, '--geo-data', geoData, '--pop', 'ams', '--ecs-trust', '192.0.2.0/24'] });
  started.push(server);
  const client = new TestDnsClient(server.dnsPort);
  try {
    const reply = live(await client.query('www.cdn.example', 'A', { subnet: '81.2.69.0/24' }));
    const api = await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/explain?name=www.cdn.example&client=81.2.69.0/24`)).json() as { answer: Told; deciding: { address: string; prefix_length: number; scope_rule: string }; location: { network: string; pinned_pop?: string } };
    // Every example PoP is fed by an external target: its state could change at any moment, so the TTL is the minimum.
    assert.equal(reply.ttl, 5);
    assert.deepEqual(explained(api), reply, 'explain answers as the server: TTL 5 from the live timing, not the policy\'s 60');
    // 127.0.0.1 is not in ecs_trust: its ECS is ignored and the resolver's own /32 decides, pinned to London.
    assert.deepEqual(reply.records, ['A 192.0.2.3']);
    assert.equal(reply.ecs_scope, 0);
    assert.equal(api.deciding.address, '127.0.0.1');
    assert.equal(api.deciding.prefix_length, 32);
    assert.match(api.deciding.scope_rule, /not in ecs_trust/);
    assert.equal(api.location.network, '127.0.0.1/32');
    assert.equal(api.location.pinned_pop, 'lhr');
  } finally {
    client.close();
  }
});

test('offline explain ignores an expired override in the state file, as the server does', async () => {
  const state = join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json');
  const long = Date.now() - 3_600_000;
  writeFileSync(state, JSON.stringify({ version: 1, overrides: { lhr: { kind: 'drain', reason: 'expired an hour ago', since: long, expires: long + 60_000 } } }));
  const { stdout } = await exec(process.execPath, [CLI, 'explain', '--name', 'www.cdn.example', '--client', '81.2.69.0/24', '--pop', 'ams', '--state-file', state, '--json'], { cwd: REPO_ROOT, env: testEnvironment() });
  const result = JSON.parse(stdout) as { answer: { records: string[] } };
  assert.deepEqual(result.answer.records, ['A 192.0.2.3  (lhr)'], 'London is up again: the drain expired');
});
