// A real NATS cluster for fleet tests: three nats-server processes (Debian's
// nats-server) with JetStream, routed to each other, on free loopback ports,
// each with its own configuration and store under a temporary directory.
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
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** nats://127.0.0.1:port,… (tls:// with TLS) of every node, for --fleet. */
  urls: string;
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
  for (let i = 0; i < size; i++) {
    clientPorts.push(await freePort());
    clusterPorts.push(await freePort());
  }
  const nodes = clientPorts.map((clientPort, i) => {
    const name = `n${i + 1}`;
    const config = join(dir, `${name}.conf`);
    const routes = clusterPorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
    writeFileSync(config, [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${clientPort}`,
      `jetstream { store_dir: "${join(dir, name)}", max_memory_store: 64MB, max_file_store: 256MB }`,
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
    stop: async () => { await Promise.all(nodes.map((n) => n.stop('SIGKILL'))); },
  };
  await Promise.all(nodes.map((n) => n.start()));
  return cluster;
}

function natsNode(name: string, clientPort: number, config: string, scheme: 'nats' | 'tls' = 'nats'): NatsNode {
  let child: ChildProcess | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  return {
    name,
    clientPort,
    url: `${scheme}://127.0.0.1:${clientPort}`,
    running: () => child !== null,
    async start() {
      if (child) return;
      const proc = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      alive.add(proc);
      exited = once(proc, 'exit').then(() => { alive.delete(proc); if (child === proc) child = null; });
      await waitForReady(proc, name);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!child) return;
      child.kill(signal);
      await exited;
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
