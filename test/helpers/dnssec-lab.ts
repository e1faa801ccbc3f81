// A signed copy of the example configuration and a validating unbound in
// front of it, on loopback, for the DNSSEC integration tests: unbound trusts
// only the zone's DS (stub zone to popsteer, a fake root that is never
// reached), so AD=1 means the answer validated from that DS down.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { CLI, testEnvironment } from './server.ts';

const exec = promisify(execFile);

/** Adds `dnssec` to the config's cdn.example zone, makes its key; returns the DS record line. */
export async function signExampleZone(config: string, dnssec = '{ keys: keys, algorithm: 13 }'): Promise<string> {
  const run = (...args: string[]): Promise<{ stdout: string }> => exec(process.execPath, [CLI, 'dnssec', ...args, '--config', config, '--zone', 'cdn.example'], { env: testEnvironment() });
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, `zone: cdn.example\ndnssec: ${dnssec}`));
  await run('keygen');
  const ds = (await run('ds')).stdout.split('\n')[0];
  assert.match(ds, /^cdn\.example\. 3600 IN DS \d+ 13 2 [0-9A-F]{64}$/);
  return ds;
}

/**
 * A loopback port free for UDP and TCP alike right now: unbound binds both,
 * and a port only UDP had free was sometimes a TCP connection's (other tests
 * run beside these).
 */
export async function freeUdpPort(): Promise<number> {
  for (;;) {
    const tcp = createServer();
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const port = (tcp.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const bound = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (bound) return port;
  }
}

/** Whether unbound failed only because another process took its port between the check and its bind. */
export const lostItsPort = (err: unknown): boolean => err instanceof Error && /Address already in use/.test(err.message);

/** startUnbound on a free port, on another one when that port was taken meanwhile (up to 5 tries); resolves with both. */
export async function startUnboundOnFreePort(dir: string, stubPort: number, dsRecord: string): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort();
    try {
      return { child: await startUnbound(dir, port, stubPort, dsRecord), port };
    } catch (err) {
      if (!lostItsPort(err) || attempt === 5) throw err;
    }
  }
}

/** unbound on `port`, trusting only `dsRecord`, with cdn.example stubbed to popsteer (or a proxy) at `stubPort`. */
export async function startUnbound(dir: string, port: number, stubPort: number, dsRecord: string): Promise<ChildProcess> {
  writeFileSync(join(dir, 'root.hints'), '.\t3600000\tIN\tNS\ta.root.test.\na.root.test.\t3600000\tIN\tA\t127.255.255.254\n');
  writeFileSync(join(dir, 'unbound.conf'), [
    'server:',
    '  interface: 127.0.0.1', `  port: ${port}`, '  do-ip6: no', '  username: ""', '  chroot: ""',
    `  directory: "${dir}"`, `  pidfile: "${join(dir, 'unbound.pid')}"`, '  use-syslog: no', '  logfile: ""',
    '  verbosity: 1', '  val-log-level: 2', '  num-threads: 1', '  access-control: 127.0.0.0/8 allow', '  do-not-query-localhost: no',
    `  root-hints: "${join(dir, 'root.hints')}"`,
    '  module-config: "subnetcache validator iterator"',
    '  qname-minimisation: no', '  send-client-subnet: 127.0.0.1', '  max-client-subnet-ipv4: 24',
    // Only the zone's DS is trusted: the chain starts at cdn.example.
    `  trust-anchor: "${dsRecord}"`,
    // A test that tampers must see it on the next query, not answered from a cache of bogus data.
    '  val-bogus-ttl: 0',
    'remote-control:', '  control-enable: no',
    'stub-zone:', '  name: "cdn.example"', `  stub-addr: 127.0.0.1@${stubPort}`, '',
  ].join('\n'));
  const child = spawn('unbound', ['-d', '-c', join(dir, 'unbound.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  return child;
}

export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

export interface Dig { status: string; flags: string[]; answers: string[]; authority: string[]; text: string }

function section(stdout: string, name: string): string[] {
  return stdout.split(`;; ${name} SECTION:\n`)[1]?.split('\n\n')[0].split('\n').filter((l) => l.length > 0) ?? [];
}

export async function dig(port: number, name: string, type: string, ...extra: string[]): Promise<Dig> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(port), '+time=5', '+tries=2', '+dnssec', name, type, ...extra]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]+);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/);
  return { status, flags, answers: section(stdout, 'ANSWER'), authority: section(stdout, 'AUTHORITY'), text: stdout };
}

/** delv's verdict for `name type` straight from popsteer, with the DS as its only trust anchor. */
export async function delv(dir: string, port: number, dsRecord: string, name: string, type: string): Promise<string> {
  const [, , , , tag, alg, digestType, digest] = dsRecord.split(' ');
  writeFileSync(join(dir, 'anchor'), `trust-anchors { cdn.example. static-ds ${tag} ${alg} ${digestType} "${digest}"; };\n`);
  const { stdout, stderr } = await exec('delv', ['@127.0.0.1', '-p', String(port), '-a', join(dir, 'anchor'), '+root=cdn.example', name, type])
    .catch((e: { stdout: string; stderr: string }) => e);
  return stdout + stderr;
}
