// Zonemaster's DNSSEC test cases against popsteer with a lab parent (issue
// 21, round 3). Knot (its own config in a temp dir, no system service)
// serves a root zone and a signed `example.` that carries popsteer's DS and
// delegates cdn.example to popsteer; zonemaster-cli starts from hints naming
// that Knot, so every query stays on loopback. Zonemaster queries port 53
// only, so both servers listen on port 53 of a 127/8 address of their own
// (random per run, as other tests run beside this one), which needs root (or
// CAP_NET_BIND_SERVICE): without it, or without knotd or zonemaster-cli, the
// test is skipped with the reason. Asserts no ERROR or CRITICAL message.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { signExampleZone, stopChild } from '../helpers/dnssec-lab.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);

const missing = ['/usr/sbin/knotd', '/usr/bin/zonemaster-cli'].filter((p) => !existsSync(p));
const skip = missing.length > 0 ? `not installed: ${missing.join(', ')} (make test-deps installs them)`
  : process.getuid?.() !== 0 ? 'zonemaster-cli only queries port 53, which needs root here' : false;

const octet = 2 + Math.floor(Math.random() * 250);
const POPSTEER = `127.53.${octet}.1`;
const KNOT = `127.53.${octet}.2`;

let server: StartedServer | undefined;
let knot: ChildProcess | undefined;
let dir = '';

/** The copied example zone with one name server, at popsteer's loopback address (zonemaster checks every listed one). */
function pointZoneAtLoopback(config: string): void {
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  const text = readFileSync(zoneFile, 'utf8')
    .replace('NS: [ns1, ns2]', 'NS: [ns1]')
    .replace(/ {2}ns1:\n {4}A: 192\.0\.2\.53\n {4}AAAA: "2001:db8::53"\n/, `  ns1:\n    A: ${POPSTEER}\n`);
  assert.ok(text.includes(`A: ${POPSTEER}`), 'the zone file changed shape: update this test');
  writeFileSync(zoneFile, text);
}

async function startKnot(ds: string): Promise<ChildProcess> {
  writeFileSync(join(dir, 'root.zone'), [
    '. 3600 IN SOA a.root-servers.lab. hostmaster.lab. 1 3600 600 86400 60',
    '. 3600 IN NS a.root-servers.lab.', `a.root-servers.lab. 3600 IN A ${KNOT}`,
    'example. 3600 IN NS ns.example.', `ns.example. 3600 IN A ${KNOT}`, '',
  ].join('\n'));
  writeFileSync(join(dir, 'example.zone'), [
    'example. 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60',
    'example. 3600 IN NS ns.example.', `ns.example. 3600 IN A ${KNOT}`,
    'cdn.example. 3600 IN NS ns1.cdn.example.', `ns1.cdn.example. 3600 IN A ${POPSTEER}`, ds, '',
  ].join('\n'));
  writeFileSync(join(dir, 'knot.conf'), [
    'server:', `  rundir: "${dir}"`, `  listen: ${KNOT}@53`,
    'database:', `  storage: "${dir}"`, `  kasp-db: "${join(dir, 'keys')}"`,
    'log:', '  - target: stderr', '    any: info',
    'policy:', '  - id: lab', '    algorithm: ecdsap256sha256', '    nsec3: off',
    'template:', '  - id: default', `    storage: "${dir}"`, '    file: "%s.zone"', '    zonefile-sync: -1',
    'zone:', '  - domain: .', '    file: root.zone', '  - domain: example', '    dnssec-signing: on', '    dnssec-policy: lab', '',
  ].join('\n'));
  const child = spawn('/usr/sbin/knotd', ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      output += `${line}\n`;
      if (/\[example\.\] loaded, serial/.test(line)) resolve();
    });
  });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`knotd exited with ${code}:\n${output}`); });
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  return child;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'popsteer-zonemaster-'));
  const config = copyExampleConfig();
  pointZoneAtLoopback(config);
  const ds = await signExampleZone(config);
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config, '--listen', `${POPSTEER}:53`] });
  knot = await startKnot(ds);
});

after(async () => {
  await stopChild(knot);
  await server?.stop();
});

test('zonemaster-cli --test dnssec from lab hints: no ERROR or CRITICAL', { skip, timeout: 240_000 }, async () => {
  writeFileSync(join(dir, 'hints'), `. 3600000 IN NS a.root-servers.lab.\na.root-servers.lab. 3600000 IN A ${KNOT}\n`);
  const { stdout, stderr } = await exec('zonemaster-cli', ['--test', 'dnssec', '--hints', join(dir, 'hints'), '--no-ipv6', '--json', '--level', 'DEBUG', 'cdn.example'],
    { maxBuffer: 16 << 20, timeout: 200_000 }).catch((e: { stdout: string; stderr: string }) => e);
  const messages = JSON.parse(stdout) as Array<{ level: string; tag: string; testcase?: string; args?: unknown }>;
  const tags = new Set(messages.map((m) => m.tag));
  // The cases ran against the lab: the parent's DS was found beside the DNSKEY, the NSEC chain and CDS/CDNSKEY seen.
  for (const tag of ['DNSKEY_AND_DS', 'ALGORITHM_OK', 'DS10_HAS_NSEC', 'DS15_HAS_CDS_AND_CDNSKEY']) assert.ok(tags.has(tag), `${tag} reported:\n${stdout}\n${stderr}`);
  const bad = messages.filter((m) => m.level === 'ERROR' || m.level === 'CRITICAL');
  assert.deepEqual(bad, [], stdout);
});
