// DNSSEC answers that a validator would once have called bogus (issue 21,
// round 3), each checked through unbound trusting only the zone's DS (AD=1
// expected) and delv: a steered name reached through a wildcard; a static
// CNAME chased to a missing in-zone name (NXDOMAIN proof after the CNAME) and
// to a name without the asked type (NODATA proof after it); a steered
// AAAA NODATA when the chosen endpoint has no IPv6 while others do; the two
// names of one policy, each with its own signatures; the
// no-DS proof at the apex of a child zone popsteer also serves. The
// `hash_record` TXT in a signed zone is refused at start-up (exit 2).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { delv, dig, signExampleZone, startUnboundOnFreePort, stopChild } from '../helpers/dnssec-lab.ts';
import { CLI, REPO_ROOT, startServer, testEnvironment, type StartedServer } from '../helpers/server.ts';

const EUROPE = '+subnet=81.2.69.0/24';
const AMERICA = '+subnet=216.160.83.0/24';

let server: StartedServer;
let unbound: ChildProcess | undefined;
let unboundPort = 0;
let dsRecord = '';
let config = '';

/** The example configuration plus the names these cases need. */
function addCases(dir: string): void {
  const zoneFile = join(dir, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^records:\n/m, [
    'records:',
    '  dangling: { CNAME: gone }',
    '  to-status: { CNAME: status }',
    '',
  ].join('\n')));
  writeFileSync(join(dir, 'zones', 'lab.cdn.example.yaml'), [
    'zone: lab.cdn.example', 'ttl: 300',
    'soa: { mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60, ttl: 3600 }',
    'records:', '  "@": { NS: [ns1] }', '  ns1: { A: 192.0.2.200 }', '  host: { A: 192.0.2.201 }', '',
  ].join('\n'));
  writeFileSync(join(dir, 'steering', 'bogus-cases.yaml'), [
    'policies:',
    '  - name: "*.edge.cdn.example"',
    '    ttl: 60',
    '    pools: { all: { pops: all } }',
    '    rules: [{ name: nearest, match: default, pool: all, steps: [healthy, nearest, { first: 1 }] }]',
    '  - name: mixed.cdn.example',
    '    ttl: 60',
    '    pools:',
    '      v4: { endpoints: [{ id: v4only, ipv4: [192.0.2.10], health_from: ams }] }',
    '      dual: { endpoints: [{ id: dual, ipv4: [192.0.2.20], ipv6: ["2001:db8::20"], health_from: iad }] }',
    '    rules:',
    '      - { name: europe, match: { continent: [EU] }, pool: v4 }',
    '      - { name: rest, match: default, pool: dual }',
    '  - name: one.cdn.example',
    '    names: [two.cdn.example]',
    '    ttl: 60',
    '    pools: { all: { pops: all } }',
    '    rules: [{ name: nearest, match: default, pool: all, steps: [healthy, nearest, { first: 1 }] }]',
    '',
  ].join('\n'));
}

before(async () => {
  config = copyExampleConfig();
  addCases(config);
  dsRecord = await signExampleZone(config);
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config] });
  ({ child: unbound, port: unboundPort } = await startUnboundOnFreePort(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-unbound-')), server.dnsPort, dsRecord));
});

after(async () => {
  await stopChild(unbound);
  await server?.stop();
});

/** Asserts unbound validated the answer (AD=1) with `status`; returns its answer lines. */
async function validated(name: string, type: string, status: string, ...extra: string[]): Promise<string[]> {
  const r = await dig(unboundPort, name, type, ...extra);
  assert.equal(r.status, status, r.text);
  assert.ok(r.flags.includes('ad'), `AD set:\n${r.text}`);
  return r.answers;
}

describe('answers once bogus, now validated by unbound (AD=1) and delv', () => {
  test('a steered name matched by a wildcard: A answer and TXT NODATA', async () => {
    const answers = await validated('x1.edge.cdn.example', 'A', 'NOERROR', EUROPE);
    assert.ok(answers.some((l) => /^x1\.edge\.cdn\.example\.\s+\d+\s+IN\s+A\s/.test(l)), answers.join('\n'));
    assert.deepEqual(await validated('x2.edge.cdn.example', 'TXT', 'NOERROR'), []);
    assert.match(await delv(mkdtempSync(join(tmpdir(), 'popsteer-delv-')), server.dnsPort, dsRecord, 'x3.edge.cdn.example', 'A'), /; fully validated/);
  });

  test('a static CNAME chased to a missing in-zone name: NXDOMAIN proven after the CNAME', async () => {
    const answers = await validated('dangling.cdn.example', 'A', 'NXDOMAIN');
    assert.ok(answers.some((l) => /\sCNAME\s+gone\.cdn\.example\.$/.test(l)), answers.join('\n'));
    // unbound may chase the target itself; the answer popsteer sends must carry the proof on its own.
    const direct = await dig(server.dnsPort, 'dangling.cdn.example', 'A', '+norec');
    const nsec = direct.authority.filter((l) => /\sIN\s+NSEC\s/.test(l));
    // gone.cdn.example sorts between eu and img (the covering NSEC); the wildcard *.cdn.example between cdn.example and api.
    assert.ok(nsec.some((l) => /^eu\.cdn\.example\.\s.*\sNSEC\s+img\.cdn\.example\./.test(l)), direct.text);
    assert.ok(nsec.some((l) => /^cdn\.example\.\s.*\sNSEC\s+api\.cdn\.example\./.test(l)), direct.text);
    assert.equal(direct.authority.filter((l) => /\sIN\s+RRSIG\s+NSEC\s/.test(l)).length, nsec.length, direct.text);
  });

  test('a static CNAME chased to a name without the type: NODATA proven after the CNAME', async () => {
    const answers = await validated('to-status.cdn.example', 'TXT', 'NOERROR');
    assert.ok(answers.some((l) => /\sCNAME\s+status\.cdn\.example\.$/.test(l)), answers.join('\n'));
    const direct = await dig(server.dnsPort, 'to-status.cdn.example', 'TXT', '+norec');
    assert.ok(direct.authority.some((l) => /^status\.cdn\.example\.\s.*\sNSEC\s.*\sA AAAA RRSIG NSEC$/.test(l)), direct.text);
  });

  test('a steered AAAA NODATA when the chosen endpoint has no IPv6 (another has): proven, and AAAA still answered elsewhere', async () => {
    assert.deepEqual(await validated('mixed.cdn.example', 'AAAA', 'NOERROR', EUROPE), []);
    const america = await validated('mixed.cdn.example', 'AAAA', 'NOERROR', AMERICA);
    assert.ok(america.some((l) => l.includes('2001:db8::20')), america.join('\n'));
    const direct = await dig(server.dnsPort, 'mixed.cdn.example', 'AAAA', '+norec', EUROPE);
    const nsec = direct.authority.find((l) => /^mixed\.cdn\.example\.\s.*\sNSEC\s/.test(l)) ?? '';
    assert.match(nsec, /\sA\s/, direct.text);
    assert.doesNotMatch(nsec, /AAAA/, 'the NODATA proof does not claim AAAA');
  });

  test('two names of one policy share its answers but not its signatures: both AD=1', async () => {
    for (const name of ['one.cdn.example', 'two.cdn.example']) {
      const answers = await validated(name, 'A', 'NOERROR', EUROPE);
      assert.ok(answers.some((l) => l.startsWith(`${name}.`) && /\sIN\s+A\s/.test(l)), answers.join('\n'));
    }
  });

  test('the no-DS proof at the apex of a served child zone: DS NODATA AD=1, the child answers insecure', async () => {
    assert.deepEqual(await validated('lab.cdn.example', 'DS', 'NOERROR'), []);
    const r = await dig(unboundPort, 'host.lab.cdn.example', 'A');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.ok(!r.flags.includes('ad') && r.answers.some((l) => l.includes('192.0.2.201')), r.text);
  });
});

test('hash_record in a signed zone: refused at start-up with exit 2 and what to change', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--geo-data', join(REPO_ROOT, 'geo-data'), '--listen', '127.0.0.1:0',
    '--admin', 'off', '--hash-record', '_config.cdn.example', '--state-file', join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json')],
  { env: testEnvironment(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const [code] = await once(child, 'exit') as [number | null];
  assert.equal(code, 2, stderr);
  assert.match(stderr, /hash_record "_config\.cdn\.example" is in the signed zone cdn\.example/);
});
