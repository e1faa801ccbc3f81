// A real NATS cluster for fleet tests: three nats-server processes (Debian's
// nats-server) with JetStream, routed to each other, on free loopback ports,
// each with its own configuration and store under a temporary directory;
// optionally with users and permissions, TLS, a JetStream domain and leaf
// node ports, and leaf nodes (one nats-server as at a PoP) connected to it.
// Never the system service. Servers can be killed, stopped and started again
// on the same ports and stores (a hub outage); every one still running when
// the test file ends is killed then.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

export interface NatsNode {
  name: string;
  clientPort: number;
  url: string;
  running(): boolean;
  /** Starts it (again) and resolves once it says it is ready. */
  start(): Promise<void>;
  /** SIGKILL (a crash) or SIGTERM; resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves once this run of the server has logged a line matching `pattern` (the test's own timeout bounds it). */
  waitForOutput(pattern: RegExp): Promise<void>;
  /** SIGSTOP: the process holds its sockets but answers nothing, as behind a cut link; thaw() resumes it. */
  freeze(): void;
  thaw(): void;
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** nats://127.0.0.1:port,… (tls:// with TLS) of every node, for --fleet. */
  urls: string;
  /** nats-leaf://127.0.0.1:port of every node, when started with leafnodes. */
  leafUrls: string[];
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;
const alive = new Set<ChildProcess>();
after(() => { for (const child of alive) child.kill('SIGKILL'); });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Runs `call` again every 250 ms while a cluster elects its stream leaders ("no responders" for a moment), up to a minute. */
export async function retryWhileElecting<T>(call: () => Promise<T>, waitMs = 60_000): Promise<T> {
  for (const deadline = Date.now() + waitMs; ;) {
    try {
      return await call();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Subjects a user may publish to or subscribe to (nats-server `permissions`). */
export interface NatsPermissions {
  publish?: { allow?: string[]; deny?: string[] };
  subscribe?: { allow?: string[]; deny?: string[] };
}

export interface ClusterOptions {
  /** Nodes: 3 by default; 1 is a single server without a cluster block. */
  size?: number;
  /** Clients must log in with this user and password. */
  auth?: { user: string; password: string };
  /** Clients log in as one of these users, each with its own permissions (none: may do anything). */
  users?: Array<{ user: string; password: string; permissions?: NatsPermissions }>;
  /** Clients must speak TLS, with this certificate and key (PEM files); urls are then tls://. */
  tls?: { certFile: string; keyFile: string };
  /** The JetStream domain (a hub that leaf nodes mirror from names its domain). */
  domain?: string;
  /** Every node accepts leaf node connections (leafUrls). */
  leafnodes?: boolean;
}

/** A nats-server configuration value: JSON is close enough to its syntax (quoted strings keep `$` literal). */
const confValue = (value: unknown): string => JSON.stringify(value);

function authorizationBlock(options: ClusterOptions): string {
  if (options.auth) return `authorization { user: ${confValue(options.auth.user)}, password: ${confValue(options.auth.password)} }`;
  if (!options.users) return '';
  const users = options.users.map((u) => `{ user: ${confValue(u.user)}, password: ${confValue(u.password)}${u.permissions ? `, permissions: ${confValue(u.permissions)}` : ''} }`);
  return `authorization { users: [\n  ${users.join(',\n  ')}\n] }`;
}

/** Starts a JetStream cluster (3 nodes unless told) and waits until every node is ready. */
export async function startNatsCluster(options: ClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-nats-'));
  const clientPorts: number[] = [];
  const clusterPorts: number[] = [];
  const leafPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    clientPorts.push(await freePort());
    clusterPorts.push(await freePort());
    leafPorts.push(await freePort());
  }
  const nodes = clientPorts.map((clientPort, i) => {
    const name = `n${i + 1}`;
    const config = join(dir, `${name}.conf`);
    const routes = clusterPorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
    writeFileSync(config, [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${clientPort}`,
      jetstreamBlock(join(dir, name), options.domain),
      options.leafnodes ? `leafnodes { listen: 127.0.0.1:${leafPorts[i]} }` : '',
      size > 1 ? `cluster { name: popsteer-test, listen: 127.0.0.1:${clusterPorts[i]}, routes: [${routes.join(', ')}] }` : '',
      authorizationBlock(options),
      options.tls ? `tls { cert_file: ${confValue(options.tls.certFile)}, key_file: ${confValue(options.tls.keyFile)} }` : '',
      '',
    ].join('\n'));
    return natsNode(name, clientPort, config, options.tls ? 'tls' : 'nats');
  });
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    leafUrls: options.leafnodes ? leafPorts.map((p) => `nats-leaf://127.0.0.1:${p}`) : [],
    stop: async () => { await Promise.all(nodes.map((n) => n.stop('SIGKILL'))); },
  };
  await Promise.all(nodes.map((n) => n.start()));
  return cluster;
}

const jetstreamBlock = (storeDir: string, domain?: string): string =>
  `jetstream { store_dir: ${confValue(storeDir)}, max_memory_store: 64MB, max_file_store: 256MB${domain ? `, domain: ${confValue(domain)}` : ''} }`;

/**
 * A leaf node, as at a PoP: one nats-server with its own JetStream domain,
 * connected to the hub's leaf node ports; clients connect to it on loopback.
 * Ready when this resolves; its leaf connection may come a moment later
 * (waitForOutput(/Leafnode connection created/)).
 */
export async function startNatsLeaf(hub: NatsCluster, options: { domain: string }): Promise<NatsNode> {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-nats-leaf-'));
  const clientPort = await freePort();
  const config = join(dir, 'leaf.conf');
  writeFileSync(config, [
    `server_name: leaf-${options.domain}`,
    `listen: 127.0.0.1:${clientPort}`,
    jetstreamBlock(join(dir, 'store'), options.domain),
    `leafnodes { remotes: [ { urls: ${confValue(hub.leafUrls)} } ] }`,
    '',
  ].join('\n'));
  const node = natsNode(`leaf-${options.domain}`, clientPort, config);
  await node.start();
  return node;
}

function natsNode(name: string, clientPort: number, config: string, scheme: 'nats' | 'tls' = 'nats'): NatsNode {
  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  /** What this run of the server has logged (stderr), for waitForOutput. */
  let output = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  return {
    name,
    clientPort,
    url: `${scheme}://127.0.0.1:${clientPort}`,
    running: () => child !== null,
    async start() {
      if (child) return;
      const proc = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      output = '';
      alive.add(proc);
      exited = once(proc, 'exit').then(() => { alive.delete(proc); if (child === proc) child = null; });
      proc.stderr!.on('data', (d) => {
        if (output.length < 1_000_000) output += String(d);
        for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].pattern.test(output)) waiters.splice(i, 1)[0].resolve();
      });
      await waitForReady(proc, name);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!child) return;
      child.kill(signal);
      await exited;
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    waitForOutput(pattern: RegExp) {
      if (pattern.test(output)) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ pattern, resolve }));
    },
  };
}

/** Resolves on nats-server's "Server is ready" line (it logs to stderr). */
function waitForReady(proc: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`nats-server ${name} not ready in ${READY_TIMEOUT_MS} ms:\n${output}`)), READY_TIMEOUT_MS);
    proc.stderr!.on('data', (d) => {
      if (output.length < 20_000) output += String(d);
      if (output.includes('Server is ready')) { clearTimeout(timer); resolve(); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`nats-server ${name} exited with ${code}:\n${output}`)); });
  });
}
