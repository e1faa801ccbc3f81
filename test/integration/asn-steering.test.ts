// ASN rules through the real server, with the bundled GeoLite2-City and an
// ASN source of two files: a cut of @ip-location-db/asn (ranges CSV,
// test/fixtures/asn) and a CIDR,ASN list naming the AS of a resolver on
// 127.0.0.2. AS15169 and AS13335 clients get their pools and everyone else
// the nearest PoP; resolver_asn decides by the resolver's own address;
// addresses inside a returned ECS scope get the same answer; explain names
// the AS, its source and network; diff sees ASN rules; and a replacement
// that changes more networks than asn_max_change is refused while a small
// one is taken.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, replyEcs, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { REPO_ROOT, runCli, startServer, type StartedServer } from '../helpers/server.ts';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'asn', 'asn-sample.csv');
const RULES = [
  '      - { name: google, match: { asn: [15169] }, pool: google, steps: [{ first: 1 }] }',
  '      - { name: cloudflare, match: { asn: [13335] }, pool: cloudflare, steps: [{ first: 1 }] }',
  '      - { name: isp-resolver, match: { resolver_asn: [64512] }, pool: isp, steps: [{ first: 1 }] }',
  '      - { name: nearest, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }',
];

function policyFile(rules: string[]): string {
  return ['policies:', '  - name: www.cdn.example', '    ttl: 60', '    pools:', '      edge: { pops: all }', '      google: { pops: [sjc] }',
    '      cloudflare: { pops: [fra] }', '      isp: { pops: [syd] }', '    rules:', ...rules, ''].join('\n');
}

let dir: string;
let ranges: string;
let resolvers: string;
let config: string;
let server: StartedServer;
let client: TestDnsClient;
let ispResolver: TestDnsClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsteer-asn-'));
  ranges = join(dir, 'asn.csv');
  copyFileSync(FIXTURE, ranges);
  resolvers = join(dir, 'resolvers.txt');
  writeFileSync(resolvers, '# the ISP resolver, as a router would export it\n127.0.0.2/32,64512\n');
  config = copyExampleConfig();
  writeFileSync(join(config, 'steering', 'www.yaml'), policyFile(RULES));
  server = await startServer({ workers: 2, args: ['--config', config, '--pop', 'ams', '--asn-database', `${ranges},${resolvers}`] });
  client = new TestDnsClient(server.dnsPort);
  ispResolver = new TestDnsClient(server.dnsPort, '127.0.0.1', '127.0.0.2');
});
after(async () => {
  client?.close();
  ispResolver?.close();
  await server?.stop();
});

async function popFor(subnet: string | undefined, from: TestDnsClient = client): Promise<string> {
  return popOf(firstAnswer(await from.query('www.cdn.example', 'A', subnet ? { subnet } : {})));
}

async function explained(subnet: string): Promise<{ rule: { name: string; matched_by: string }; asn: { text: string; number: number } | null; answer: { records: string[] } }> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/explain?name=www.cdn.example&client=${encodeURIComponent(subnet)}`);
  assert.equal(response.status, 200);
  return await response.json() as never;
}

test('ECS clients in AS15169 and AS13335 get their pools, IPv4 and IPv6; others the nearest PoP', async () => {
  for (const subnet of ['8.8.8.0/24', '8.8.4.0/24', '2001:4860:4860::/48']) assert.equal(await popFor(subnet), 'sjc', subnet);
  for (const subnet of ['1.1.1.0/24', '104.16.5.0/24', '172.64.0.0/24', '2606:4700:10::/48']) assert.equal(await popFor(subnet), 'fra', subnet);
  for (const subnet of ['8.8.2.0/24', '8.8.9.0/24', '80.130.0.0/24', '1.0.4.0/24']) {
    const why = await explained(subnet);
    assert.equal(why.rule.name, 'nearest', `${subnet}: ${JSON.stringify(why.asn)}`);
    assert.equal(await popFor(subnet), /\(([^)]+)\)$/.exec(why.answer.records[0])?.[1], `${subnet}: the server answers as explain says`);
  }
});

test('resolver_asn decides by the resolver\'s own address', async () => {
  assert.equal(await popFor(undefined, ispResolver), 'syd', 'no ECS, resolver in AS64512');
  assert.equal(await popFor('80.130.0.0/24', ispResolver), 'syd', 'ECS from elsewhere: the resolver\'s AS still decides');
  assert.equal(await popFor('8.8.8.0/24', ispResolver), 'sjc', 'an earlier asn rule still wins');
  assert.notEqual(await popFor(undefined), 'syd', 'the resolver on 127.0.0.1 is in no AS');
});

test('scopes stay inside the AS\'s networks: addresses sampled inside a returned scope get the same answer', async () => {
  const subnets = ['8.8.8.0/24', '8.8.4.0/24', '8.8.2.0/24', '8.8.128.0/24', '1.1.1.0/24', '104.20.0.0/24', '172.66.31.0/24', '80.140.0.0/24'];
  for (const subnet of subnets) {
    const reply = await client.query('www.cdn.example', 'A', { subnet });
    const pop = popOf(firstAnswer(reply));
    const scope = replyEcs(reply)!.scopePrefixLength;
    const base = subnet.split('/')[0].split('.').reduce((a, b) => a * 256 + Number(b), 0);
    const size = 2 ** (32 - scope);
    const start = base - (base % size);
    for (let k = 0; k < 12; k++) {
      const inside = start + Math.floor(((k + 0.5) / 12) * size);
      const text = `${[inside >>> 24, (inside >>> 16) & 255, (inside >>> 8) & 255].join('.')}.0/24`;
      assert.equal(await popFor(text), pop, `${text} inside ${subnet}'s scope /${scope}`);
    }
  }
  const google = replyEcs(await client.query('www.cdn.example', 'A', { subnet: '8.8.8.0/24' }))!.scopePrefixLength;
  assert.equal(google, 24, '8.8.8.0/24 is AS15169 between two other ASes: the scope is that /24');
});

test('explain names the AS, its organisation, the source and the network', async () => {
  const why = await explained('80.130.0.0/24');
  assert.equal(why.asn?.text, `AS3320 Deutsche Telekom AG, from ${ranges}, network 80.128.0.0/12`);
  const google = await explained('8.8.8.0/24');
  assert.equal(google.rule.name, 'google');
  assert.match(google.rule.matched_by, /the client's AS \(AS15169 Google LLC, from .*asn\.csv, network 8\.8\.8\.0\/24\)/);
  const text = await runCli(['explain', '--config', config, '--geo-data', 'geo-data', '--pop', 'ams', '--asn-database', `${ranges},${resolvers}`,
    '--name', 'www.cdn.example', '--client', '1.1.1.0/24']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /AS +AS13335 Cloudflare, Inc\., from .*asn\.csv, network 1\.1\.1\.0\/24/);
});

test('popsteer diff sees what an ASN rule moves', async () => {
  const without = copyExampleConfig();
  writeFileSync(join(without, 'steering', 'www.yaml'), policyFile(RULES.filter((r) => !r.includes('name: google'))));
  const sample = join(dir, 'sample.txt');
  writeFileSync(sample, '8.8.8.0/24 100\n8.8.4.0/24 50\n1.1.1.0/24 10\n');
  const out = await runCli(['diff', '--from', config, '--to', without, '--sample', sample, '--geo-data', 'geo-data', '--pop', 'ams', '--asn-database', ranges, '--name', 'www.cdn.example', '--json']);
  assert.equal(out.code, 0, out.stderr);
  const [report] = JSON.parse(out.stdout) as Array<{ moved_percent: number; changes: Array<{ network: string; from: string; rule_from: string }> }>;
  assert.deepEqual(report.changes.map((c) => c.network), ['8.8.8.0/24', '8.8.4.0/24']);
  assert.ok(report.changes.every((c) => c.from.includes('sjc') && c.rule_from.includes('google')), JSON.stringify(report.changes));
  assert.equal(report.moved_percent, 93.8);
});

/** Like an updater: a complete file under a temporary name, renamed over the old one. */
function replaceRanges(text: string): void {
  const temporary = `${ranges}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, ranges);
}

test('a replacement changing more networks than asn_max_change is refused and the old data keeps serving; a small one is taken', async () => {
  const original = readFileSync(FIXTURE, 'utf8');
  const lines = original.split('\n').filter(Boolean);
  const rejected = server.waitForNextLog((l) => l.msg === 'ASN source replacement rejected; the previous data keeps serving', 30_000);
  replaceRanges(`${lines.slice(0, Math.floor(lines.length / 10)).join('\n')}\n`); // a truncated download
  const line = await rejected;
  assert.match(String(line.err), /changes \d+\.\d% of the networks .* more than asn_max_change \(20\.0%\)/);
  assert.equal(await popFor('8.8.8.0/24'), 'sjc', 'the old data still serves');
  assert.equal(await popFor('2606:4700:10::/48'), 'fra', 'including the networks the truncated file lost');

  const replaced = server.waitForNextLog((l) => l.msg === 'ASN source replaced', 30_000);
  replaceRanges(original.replace('8.8.8.0,8.8.8.255,15169,Google LLC', '8.8.8.0,8.8.8.255,13335,"Cloudflare, Inc."'));
  const accepted = await replaced;
  assert.ok(Number(accepted.changedShare) > 0 && Number(accepted.changedShare) < 0.01, `changed share ${accepted.changedShare}`);
  assert.equal(await popFor('8.8.8.0/24'), 'fra', 'the new data decides');
  assert.equal(await popFor('8.8.4.0/24'), 'sjc');
});
