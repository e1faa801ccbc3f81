// Composition root: settings → snapshot → DNS worker threads → admin →
// signals. Nothing else lives here.

import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { isIPv6 } from 'node:net';
import { Worker } from 'node:worker_threads';
import { ConfigErrors } from './config/errors.ts';
import type { Settings } from './config/settings.ts';
import { createCounterBuffer } from './engine/counters.ts';
import type { Logger } from './log/logger.ts';
import { loadSnapshot } from './policy/load.ts';
import type { DnsSnapshot } from './snapshot/types.ts';
import type { DnsWorkerData, FromWorker, ToWorker } from './dns-worker.ts';
import { startAdmin, type AdminServer } from './admin/server.ts';

export interface RunningServer {
  settings: Settings;
  snapshot(): DnsSnapshot;
  dnsPorts: number[];
  adminPort: number | null;
  counters: SharedArrayBuffer;
  reload(reason: string): { ok: boolean; errors: string[]; hash: string };
  /** Fit to receive anycast traffic? The reasons say why not. */
  fitness(): { fit: boolean; reasons: string[] };
  /** Extra fitness checks contributed by other modules (health: local PoP drained or down). */
  fitnessChecks: Array<() => string | null>;
  shuttingDown(): boolean;
  shutdown(): Promise<void>;
  startedAt: number;
}

/** A port free for both UDP and TCP on `host`, for `--listen host:0`. */
async function pickPort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const port = await new Promise<number>((resolveP, reject) => {
      udp.once('error', reject);
      udp.bind(0, host, () => resolveP(udp.address().port));
    });
    const free = await new Promise<boolean>((resolveP) => {
      const probe = createServer();
      probe.once('error', () => resolveP(false));
      probe.listen(port, host, () => probe.close(() => resolveP(true)));
    });
    await new Promise<void>((r) => udp.close(() => r()));
    if (free) return port;
  }
  throw new Error(`no free port on ${host}`);
}

export async function startServer(settings: Settings, log: Logger): Promise<RunningServer> {
  const startedAt = Date.now();
  const loaded = loadSnapshot(settings.configDir);
  if (!loaded.snapshot) throw new ConfigErrors(loaded.errors);
  let current: DnsSnapshot = loaded.snapshot;
  log.info({ hash: current.hash, zones: current.zones.map((z) => z.apexText), files: loaded.files.length }, 'configuration loaded');

  const listen = [];
  for (const address of settings.listen) {
    listen.push({ host: address.host, port: address.port === 0 ? await pickPort(address.host) : address.port });
  }
  const counters = createCounterBuffer(settings.workers);
  const workers: Worker[] = [];
  const listening: Array<Promise<void>> = [];
  for (let index = 0; index < settings.workers; index++) {
    const workerData: DnsWorkerData = {
      index, snapshot: current, listen, popId: settings.pop, versionBind: settings.versionBind, counters,
      tcp: {
        idleTimeoutMs: settings.tcpIdleTimeoutMs, messageTimeoutMs: settings.tcpMessageTimeoutMs,
        maxConnections: settings.tcpMaxConnections, maxQueriesPerConnection: settings.tcpMaxQueriesPerConnection,
      },
    };
    const worker = new Worker(new URL('./dns-worker.ts', import.meta.url), { workerData });
    workers.push(worker);
    listening.push(new Promise((resolveP, reject) => {
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'listening') resolveP();
        else if (message.type === 'error') {
          log.error({ worker: message.index, err: message.message, stack: message.stack }, 'DNS worker error');
          if (message.message.startsWith('cannot listen')) reject(new Error(message.message));
        }
      });
      worker.once('error', reject);
      worker.once('exit', (code) => {
        if (!shuttingDown) {
          log.fatal({ worker: index, code }, 'DNS worker exited; stopping');
          process.exitCode = 1;
          void shutdown();
        }
        reject(new Error(`worker ${index} exited with code ${code}`));
      });
    }));
  }
  let shuttingDown = false;
  await Promise.all(listening);
  log.info({ listen: listen.map((l) => `${l.host}:${l.port}`), workers: settings.workers, pop: settings.pop }, 'DNS listening (UDP and TCP)');

  const post = (message: ToWorker): void => { for (const w of workers) w.postMessage(message); };

  const reload = (reason: string): { ok: boolean; errors: string[]; hash: string } => {
    let result;
    try {
      result = loadSnapshot(settings.configDir);
    } catch (err) {
      log.error({ reason, err: (err as Error).message }, 'reload failed; the previous configuration keeps serving');
      return { ok: false, errors: [(err as Error).message], hash: current.hash };
    }
    if (!result.snapshot) {
      const errors = result.errors.map((e) => e.format());
      log.error({ reason, errors }, 'reload rejected; the previous configuration keeps serving');
      return { ok: false, errors, hash: current.hash };
    }
    if (result.snapshot.hash !== current.hash) {
      current = result.snapshot;
      post({ type: 'snapshot', snapshot: current });
      log.info({ reason, hash: current.hash }, 'configuration reloaded');
    }
    return { ok: true, errors: [], hash: current.hash };
  };

  let admin: AdminServer | null = null;
  const server: RunningServer = {
    settings,
    snapshot: () => current,
    dnsPorts: listen.map((l) => l.port),
    adminPort: null,
    counters,
    reload,
    fitness: () => {
      const reasons: string[] = [];
      if (shuttingDown) reasons.push('shutting down');
      for (const check of server.fitnessChecks) {
        const reason = check();
        if (reason) reasons.push(reason);
      }
      return { fit: reasons.length === 0, reasons };
    },
    fitnessChecks: [],
    shuttingDown: () => shuttingDown,
    shutdown: () => shutdown(),
    startedAt,
  };
  if (settings.admin) {
    admin = await startAdmin(server, settings.admin, log);
    server.adminPort = admin.port;
    log.info({ admin: `${settings.admin.host}:${admin.port}` }, 'admin HTTP listening');
  }

  async function shutdown(): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    // Report unfit first so the anycast route is withdrawn, keep answering
    // while routes converge, then stop taking new TCP connections and close.
    log.info({ drainMs: settings.drainMs }, 'shutting down: unfit for anycast, draining');
    if (settings.drainMs > 0) await new Promise((r) => setTimeout(r, settings.drainMs));
    post({ type: 'stop-accepting' });
    await Promise.all(workers.map((w) => new Promise<void>((resolveP) => {
      const timer = setTimeout(() => { void w.terminate().then(() => resolveP()); }, 2000);
      w.on('message', (m: FromWorker) => { if (m.type === 'closed') { clearTimeout(timer); resolveP(); } });
      w.once('exit', () => { clearTimeout(timer); resolveP(); });
      w.postMessage({ type: 'close' } satisfies ToWorker);
    })));
    if (admin) await admin.close();
    log.info('stopped');
  }

  return server;
}
