// CSK rollover by pre-publication (issue 21), across the whole change, with
// a real validating unbound. cdn.example is signed with a key made by
// `popsteer dnssec keygen`; unbound trusts its DS (the parent's view). Then:
//   start     → reload: DNSKEY holds both keys, the old one signs; unbound
//               with the old DS validates, and so does one with both DS.
//   activate  → refused (exit 2) before the DNSKEY TTL has passed on the
//               server's clock (POPSTEER_CLOCK_FILE, shared with the
//               command); after it, reload: the new key signs the zone, the
//               DNSKEY set carries both keys' signatures; unbound with the
//               old DS only, with both, and with only the new one validates.
//   finish    → refused without --parent-ds naming the new key's tag; with
//               it, reload: only the new key is published; unbound with the
//               new DS validates, one with only the old DS does not.
// At every step: AD=1 on a steered answer, a static record and NXDOMAIN.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { freeUdpPort, lostItsPort } from '../helpers/dnssec-lab.ts';
import { CLI, startServer, testEnvironment, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);

let server: StartedServer;
let config: string;
let clockFile: string;
let oldDs = '';
let newDs = '';
const unbounds: ChildProcess[] = [];

const setClock = (ms: number): void => writeFileSync(clockFile, String(ms));
const clock = (): number => Number(readFileSync(clockFile, 'utf8'));

/** Runs `popsteer dnssec ...` on the test's config and clock; resolves with exit code and output. */
function dnssec(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'dnssec', ...args, '--config', config, '--zone', 'cdn.example'],
      { env: testEnvironment({ POPSTEER_CLOCK_FILE: clockFile }) }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr });
      });
  });
}

const dsLines = (text: string): string[] => text.split('\n').filter((l) => /\sIN DS\s/.test(l));

/** A fresh unbound (empty cache) trusting exactly `anchors` (DS records) for cdn.example; resolves with its port. */
async function startUnbound(anchors: string[]): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startUnboundOnce(anchors);
    } catch (err) {
      // Its port taken by another process between the check and unbound's bind: another port.
      if (!lostItsPort(err) || attempt === 5) throw err;
    }
  }
}

async function startUnboundOnce(anchors: string[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-rollover-unbound-'));
  const port = await freeUdpPort();
  writeFileSync(join(dir, 'root.hints'), '.\t3600000\tIN\tNS\ta.root.test.\na.root.test.\t3600000\tIN\tA\t127.255.255.254\n');
  writeFileSync(join(dir, 'unbound.conf'), [
    'server:',
    '  interface: 127.0.0.1', `  port: ${port}`, '  do-ip6: no', '  username: ""', '  chroot: ""',
    `  directory: "${dir}"`, `  pidfile: "${join(dir, 'unbound.pid')}"`, '  use-syslog: no', '  logfile: ""',
    '  verbosity: 1', '  val-log-level: 2', '  num-threads: 1', '  access-control: 127.0.0.0/8 allow', '  do-not-query-localhost: no',
    `  root-hints: "${join(dir, 'root.hints')}"`, '  qname-minimisation: no', '  val-bogus-ttl: 0',
    ...anchors.map((a) => `  trust-anchor: "${a}"`),
    'remote-control:', '  control-enable: no',
    'stub-zone:', '  name: "cdn.example"', `  stub-addr: 127.0.0.1@${server.dnsPort}`, '',
  ].join('\n'));
  const child = spawn('unbound', ['-d', '-c', join(dir, 'unbound.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  unbounds.push(child);
  let output = '';
  const ready = new Promise<void>((resolve) => {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        output += `${line}\n`;
        if (/start of service/.test(line)) resolve();
      });
    }
  });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`unbound exited with ${code}:\n${output}`); });
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  return port;
}

async function stopUnbounds(): Promise<void> {
  for (const child of unbounds.splice(0)) {
    if (child.exitCode !== null) continue;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}

async function dig(port: number, name: string, type: string, ...extra: string[]): Promise<{ status: string; ad: boolean; text: string }> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(port), '+time=5', '+tries=2', '+dnssec', name, type, ...extra]);
  const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  return { status: /status: (\w+)/.exec(stdout)?.[1] ?? '', ad: flags.includes('ad'), text: stdout };
}

/** AD=1 through a fresh unbound trusting `anchors`: a steered answer (ECS), a static record, NXDOMAIN. */
async function assertValidates(anchors: string[], when: string): Promise<void> {
  const port = await startUnbound(anchors);
  try {
    for (const [name, type, status, ...extra] of [
      ['www.cdn.example', 'A', 'NOERROR', '+subnet=81.2.69.0/24'], ['status.cdn.example', 'A', 'NOERROR'], ['no-such.cdn.example', 'A', 'NXDOMAIN'],
    ]) {
      const r = await dig(port, name, type, ...extra);
      assert.equal(r.status, status, `${when}, ${name}:\n${r.text}`);
      assert.ok(r.ad, `${when}, ${name}: AD set with anchors ${anchors.map((a) => a.split(' ')[4]).join(',')}\n${r.text}`);
    }
  } finally {
    await stopUnbounds();
  }
}

/** The key tags of the DNSKEY set the server publishes, and of the RRSIGs over it. */
async function dnskeyTags(): Promise<{ published: number; signedBy: string[]; cds: string[] }> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+norec', '+dnssec', '+time=5', 'cdn.example', 'DNSKEY']);
  const cds = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+norec', '+short', '+time=5', 'cdn.example', 'CDS']);
  const signedBy = [...stdout.matchAll(/\tRRSIG\tDNSKEY 13 2 3600 \d+ \d+ (\d+) /g)].map((m) => m[1]).sort();
  return { published: (stdout.match(/\tDNSKEY\t257 3 13 /g) ?? []).length, signedBy, cds: cds.stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort() };
}

/** Reloads the server (SIGHUP) and waits until the new keys serve. */
async function reload(): Promise<void> {
  const reloaded = server.waitForNextLog((l) => l.msg === 'configuration reloaded');
  server.process.kill('SIGHUP');
  await reloaded;
}

const tagOf = (ds: string): string => ds.split(' ')[4];

before(async () => {
  config = copyExampleConfig();
  clockFile = join(mkdtempSync(join(tmpdir(), 'popsteer-clock-')), 'now');
  // The real time: unbound checks signature windows against its own clock.
  setClock(Date.now());
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, 'zone: cdn.example\ndnssec: { keys: keys }'));
  assert.equal((await dnssec('keygen')).code, 0);
  [oldDs] = dsLines((await dnssec('ds')).stdout);
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config], env: { POPSTEER_CLOCK_FILE: clockFile } });
});

after(async () => {
  await stopUnbounds();
  await server?.stop();
});

test('before: the old key signs; unbound with its DS validates', async () => {
  assert.deepEqual(await dnskeyTags(), { published: 1, signedBy: [tagOf(oldDs)], cds: [tagOf(oldDs)] });
  await assertValidates([oldDs], 'before the rollover');
});

test('start: the next key is published (0600), the old one still signs; old DS and both DS validate', async () => {
  const started = await dnssec('rollover', 'start');
  assert.equal(started.code, 0, started.stderr);
  const ds = dsLines(started.stdout);
  assert.equal(ds.length, 2, started.stdout);
  newDs = ds.find((l) => l !== oldDs)!;
  assert.ok(newDs && ds.includes(oldDs), started.stdout);
  assert.match(started.stdout, /rollover activate/);
  assert.equal(statSync(join(config, 'keys', `cdn.example.csk.${tagOf(newDs)}.pem`)).mode & 0o777, 0o600);
  await reload();
  const tags = await dnskeyTags();
  assert.equal(tags.published, 2);
  assert.ok(tags.signedBy.includes(tagOf(oldDs)), JSON.stringify(tags));
  assert.deepEqual(tags.cds, [tagOf(oldDs), tagOf(newDs)].sort());
  await assertValidates([oldDs], 'published, old DS');
  await assertValidates([oldDs, newDs], 'published, both DS');
});

test('activate: refused before the DNSKEY TTL has passed (exit 2, says when and --force); then the new key signs', async () => {
  const early = await dnssec('rollover', 'activate');
  assert.equal(early.code, 2, early.stdout + early.stderr);
  assert.match(early.stderr, /resolvers may cache the DNSKEY set without it until .*3600 s.*run activate again after .*--force/s);
  setClock(clock() + 3601_000);
  const activated = await dnssec('rollover', 'activate');
  assert.equal(activated.code, 0, activated.stderr);
  assert.deepEqual(dsLines(activated.stdout), [newDs], 'CDS: the new key only from now on');
  assert.match(activated.stdout, /Replace the old DS at the parent/);
  await reload();
  const tags = await dnskeyTags();
  assert.equal(tags.published, 2);
  assert.deepEqual(tags.signedBy, [tagOf(oldDs), tagOf(newDs)].sort(), 'both keys sign the DNSKEY set');
  assert.deepEqual(tags.cds, [tagOf(newDs)]);
  const soa = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+norec', '+dnssec', 'cdn.example', 'SOA']);
  assert.match(soa.stdout, new RegExp(`RRSIG\\tSOA 13 2 \\d+ \\d+ \\d+ ${tagOf(newDs)} cdn\\.example\\.`), 'the zone is signed by the new key');
  await assertValidates([oldDs], 'active, old DS still at the parent');
  await assertValidates([oldDs, newDs], 'active, both DS');
  await assertValidates([newDs], 'active, new DS only');
});

test('finish: refused without the parent\'s new DS confirmed; then only the new key is published', async () => {
  setClock(clock() + 3601_000);
  const unconfirmed = await dnssec('rollover', 'finish');
  assert.equal(unconfirmed.code, 2);
  assert.match(unconfirmed.stderr, new RegExp(`if the parent still has only the old DS, cdn.example turns bogus.*${newDs.replace(/\./g, '\\.')}.*--parent-ds ${tagOf(newDs)}`, 's'));
  const wrong = await dnssec('rollover', 'finish', '--parent-ds', tagOf(oldDs));
  assert.equal(wrong.code, 2);
  const finished = await dnssec('rollover', 'finish', '--parent-ds', tagOf(newDs));
  assert.equal(finished.code, 0, finished.stderr);
  assert.deepEqual(dsLines(finished.stdout), [newDs]);
  await reload();
  assert.deepEqual(await dnskeyTags(), { published: 1, signedBy: [tagOf(newDs)], cds: [tagOf(newDs)] });
  await assertValidates([newDs], 'finished, new DS');
  const port = await startUnbound([oldDs]);
  try {
    const r = await dig(port, 'status.cdn.example', 'A');
    assert.equal(r.status, 'SERVFAIL', `a resolver left with only the old DS cannot validate any more:\n${r.text}`);
  } finally {
    await stopUnbounds();
  }
  assert.deepEqual(dsLines((await dnssec('ds')).stdout), [newDs], '`ds` prints the new key\'s DS');
});
