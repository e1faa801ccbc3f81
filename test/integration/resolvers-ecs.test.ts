// popsteer behind real recursive resolvers that cache by ECS scope: unbound
// (subnetcache) and PowerDNS Recursor, each started by the test on loopback
// with its own configuration, stub/forward zone for cdn.example pointing at
// popsteer, and a fake root on an unused loopback address (nothing leaves the
// machine). Clients with different subnets ask through the resolver (`dig
// +subnet=`); every answer is checked against an independent nearest-PoP
// computation (the maxmind reader and a haversine over the catalog), among
// them pairs of adjacent /24s with different nearest PoPs. A private-address
// client asks first: with scope 0 the resolver would hand its answer to
// everyone after it. Everything is asked twice: the second round must come
// from the resolver's ECS cache (popsteer's request counter does not move)
// with the same answers.

import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Reader, type CityResponse } from 'maxmind';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { loadScenario } from '../bench/peers/scenario.ts';
import { seededRandom } from '../unit/geo/helpers.ts';

const exec = promisify(execFile);
const scenario = loadScenario();
let server: StartedServer;

/** A port free for UDP and TCP on 127.0.0.1 (the resolvers need it in their configuration). */
async function freePort(): Promise<number> {
  for (;;) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    const tcpFree = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
}

function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.sqrt(a));
}

interface Client { subnet: string; expected: string }

/**
 * /24 networks with a location whose nearest PoP is clear (the second is at
 * least 50 km further), and adjacent pairs (x.y.z.0/24, x.y.z^1.0/24) whose
 * nearest PoPs differ. Computed from the database file with the maxmind
 * reader, independently of popsteer's index.
 */
function sampleClients(): { singles: Client[]; pairs: Array<[Client, Client]> } {
  const reader = new Reader<CityResponse>(readFileSync(scenario.mmdb));
  const expectedFor = (network: string): string | null => {
    const loc = reader.get(network)?.location;
    if (!loc || loc.latitude === undefined || loc.longitude === undefined) return null;
    const ranked = scenario.pops.map((p) => ({ id: p.id, km: haversineKm(loc.latitude!, loc.longitude!, p.lat, p.lon) })).sort((a, b) => a.km - b.km);
    return ranked[1].km - ranked[0].km >= 50 ? ranked[0].id : null;
  };
  const random = seededRandom(0xec5);
  const singles: Client[] = [];
  const pairs: Array<[Client, Client]> = [];
  for (let attempt = 0; attempt < 200_000 && (singles.length < 40 || pairs.length < 6); attempt++) {
    const a = 1 + Math.floor(random() * 222);
    if (a === 10 || a === 100 || a === 127 || a === 169 || a === 172 || a === 192 || a === 198 || a === 203) continue;
    const b = Math.floor(random() * 256);
    const c = Math.floor(random() * 256);
    const here = expectedFor(`${a}.${b}.${c}.0`);
    if (here === null) continue;
    const client = { subnet: `${a}.${b}.${c}.0/24`, expected: here };
    if (singles.length < 40) singles.push(client);
    if (pairs.length < 6) {
      const there = expectedFor(`${a}.${b}.${c ^ 1}.0`);
      if (there !== null && there !== here) pairs.push([client, { subnet: `${a}.${b}.${c ^ 1}.0/24`, expected: there }]);
    }
  }
  return { singles, pairs };
}

async function requestsServed(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^popsteer_dns_requests_total\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}

async function digThrough(port: number, subnet: string | null): Promise<string> {
  const args = ['@127.0.0.1', '-p', String(port), '+time=5', '+tries=2', '+short', 'www.cdn.example', 'A'];
  if (subnet !== null) args.push(`+subnet=${subnet}`);
  const { stdout } = await exec('dig', args);
  const addresses = stdout.trim().split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
  assert.equal(addresses.length, 1, `one A record through the resolver for ${subnet ?? 'no ECS'}: ${stdout}`);
  return popOf(addresses[0]);
}

/** Starts a resolver in the foreground and resolves once it logs `ready`; the test stops it. */
async function startResolver(command: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const lines = (stream: NodeJS.ReadableStream): Promise<void> => new Promise((resolve) => {
    createInterface({ input: stream }).on('line', (line) => {
      output += `${line}\n`;
      if (ready.test(line)) resolve();
    });
  });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`${command} exited with ${code} before it was ready:\n${output}`); });
  await Promise.race([lines(child.stdout!), lines(child.stderr!), exited]);
  exited.catch(() => undefined);
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** A root zone whose only server is an unused loopback address: no query ever leaves the machine. */
function fakeRootHints(dir: string): string {
  const file = join(dir, 'root.hints');
  writeFileSync(file, '.\t3600000\tIN\tNS\ta.root.test.\na.root.test.\t3600000\tIN\tA\t127.255.255.254\n');
  return file;
}

const clients = sampleClients();

before(async () => {
  assert.ok(clients.singles.length === 40 && clients.pairs.length === 6, `sampled ${clients.singles.length} networks and ${clients.pairs.length} pairs`);
  // The second round must come from the resolvers' caches however long the
  // first takes on a loaded machine: www's TTL goes from 60 s to an hour.
  const config = copyExampleConfig();
  const www = join(config, 'steering', 'www.yaml');
  const policy = readFileSync(www, 'utf8');
  assert.match(policy, /^    ttl: 60$/m, 'the example www policy sets ttl: 60');
  writeFileSync(www, policy.replace(/^    ttl: 60$/m, '    ttl: 3600'));
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config] });
});
after(async () => {
  await server?.stop();
});

/**
 * The sequence every resolver must pass: a private client first, then every
 * network and pair, each answer checked; then all again, from the cache.
 */
async function privateFirstThenEveryone(port: number, privateClients: Array<string | null>): Promise<void> {
  for (const subnet of privateClients) {
    assert.equal(await digThrough(port, subnet), 'ams', `${subnet ?? 'loopback client'}: the resolver's address decides (no location: this PoP)`);
  }
  const everyone = [...clients.singles, ...clients.pairs.flat()];
  const first: string[] = [];
  for (const c of everyone) {
    const got = await digThrough(port, c.subnet);
    assert.equal(got, c.expected, `${c.subnet}: nearest PoP ${c.expected}, got ${got} (a private client's answer must not be reused for it)`);
    first.push(got);
  }
  for (const [a, b] of clients.pairs) assert.notEqual(first[everyone.indexOf(a)], first[everyone.indexOf(b)], `${a.subnet} and ${b.subnet} differ`);
  const served = await requestsServed();
  for (const [i, c] of everyone.entries()) assert.equal(await digThrough(port, c.subnet), first[i], `${c.subnet}: same answer from the cache`);
  for (const subnet of privateClients) assert.equal(await digThrough(port, subnet), 'ams');
  assert.equal(await requestsServed(), served, 'the second round was answered from the resolver\'s ECS cache: popsteer saw none of it');
}

describe('unbound 1.17 with subnetcache', () => {
  let unbound: ChildProcess | undefined;
  let port = 0;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsteer-unbound-'));
    port = await freePort();
    writeFileSync(join(dir, 'unbound.conf'), [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  do-ip6: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${join(dir, 'unbound.pid')}"`,
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  num-threads: 1',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      `  root-hints: "${fakeRootHints(dir)}"`,
      '  module-config: "subnetcache iterator"',
      // Minimisation would first ask the (fake, silent) root about the stub's parent and stall the first query.
      '  qname-minimisation: no',
      '  send-client-subnet: 127.0.0.1',
      // client-subnet-always-forward would bypass the ECS cache for clients that send ECS (unbound issue 387).
      '  max-client-subnet-ipv4: 24',
      '  max-client-subnet-ipv6: 56',
      // Room for every network of the test in one name's ECS tree (default 100 nodes: the first round would evict itself).
      '  max-ecs-tree-size-ipv4: 4096',
      '  max-ecs-tree-size-ipv6: 4096',
      'remote-control:',
      '  control-enable: no',
      'stub-zone:',
      '  name: "cdn.example"',
      `  stub-addr: 127.0.0.1@${server.dnsPort}`,
      '',
    ].join('\n'));
    unbound = await startResolver('unbound', ['-d', '-c', join(dir, 'unbound.conf')], /start of service/);
  });
  after(async () => stop(unbound));

  test('a loopback and a private client first, then 52 networks: each gets its nearest PoP, the second round from the cache', async () => {
    // Without +subnet unbound sends the loopback client's 127.0.0.0/24.
    await privateFirstThenEveryone(port, [null, '10.1.2.0/24', '192.168.7.0/24']);
  });
});

describe('PowerDNS Recursor 4.8', () => {
  let recursor: ChildProcess | undefined;
  let port = 0;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsteer-pdns-recursor-'));
    port = await freePort();
    writeFileSync(join(dir, 'recursor.conf'), [
      'local-address=127.0.0.1',
      `local-port=${port}`,
      'daemon=no',
      'disable-syslog=yes',
      `socket-dir=${dir}`,
      'threads=1',
      'dnssec=off',
      `hint-file=${fakeRootHints(dir)}`,
      'security-poll-suffix=',
      `forward-zones=cdn.example=127.0.0.1:${server.dnsPort}`,
      'edns-subnet-allow-list=cdn.example',
      'use-incoming-edns-subnet=yes',
      'ecs-add-for=0.0.0.0/0, ::/0',
      'ecs-ipv4-bits=24',
      'ecs-ipv6-bits=56',
      'loglevel=6',
      '',
    ].join('\n'));
    recursor = await startResolver('pdns_recursor', [`--config-dir=${dir}`], /Listening for queries.*protocol="TCP"/);
  });
  after(async () => stop(recursor));

  test('private clients first, then 52 networks: each gets its nearest PoP, the second round from the cache', async () => {
    await privateFirstThenEveryone(port, ['10.1.2.0/24', '192.168.7.0/24', '127.0.0.0/24']);
  });
});
