// Admin HTTP API (fastify, ajv-validated routes): health and readiness,
// status, PoPs and overrides, reload, explain, the external health feed, the
// active policies, metrics, and the status page. Read-only endpoints are open
// on the admin address; mutating ones need the bearer token (auth.ts), checked
// before the body is read. Every error is JSON {error, message}; a request is
// checked completely before anything is applied.
//
// The port is guarded like a public one: a connection cap (connections.ts),
// short header, request and keep-alive deadlines, a Host check against DNS
// rebinding (host-check.ts), and HTTPS when a certificate is configured.
//
// startAdmin reads top to bottom: token and TLS, the HTTP server, the metric
// sources, the guards, then one fastify plugin per route group (routes/, each
// with its schemas), then listen. What it needs from the running server is
// admin/running-server.ts.

import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { ConfigError, ConfigErrors } from '../config/errors.ts';
import { isLoopbackHost, type ListenAddress } from '../config/settings.ts';
import { DecisionTotals } from '../engine/decision-counters.ts';
import type { Logger } from '../log/logger.ts';
import { loadAdminToken, type AdminToken } from './auth.ts';
import { limitConnections } from './connections.ts';
import { guardHostHeader, parseJsonBodies, throttledWarn, tokenCheck } from './guards.ts';
import { createMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import { installErrorHandlers } from './request-errors.ts';
import { controlRoutes } from './routes/control.ts';
import { explainRoutes } from './routes/explain.ts';
import { fleetRoutes } from './routes/fleet.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { readinessRoutes } from './routes/readiness.ts';
import { statusPageRoutes } from './routes/status-page.ts';
import { viewRoutes } from './routes/views.ts';
import type { AdminHost, AdminSettings } from './running-server.ts';
import { TrafficHistory } from './traffic.ts';

export type { AdminHost } from './running-server.ts';

export interface AdminServer {
  port: number;
  /** Open connections, and those evicted or refused at the cap. */
  connections(): { open: number; evicted: number; refused: number };
  close(): Promise<void>;
}

interface AdminOptions {
  env?: NodeJS.ProcessEnv;
  /** Traffic-share sampling for the status page. */
  trafficIntervalMs?: number;
  trafficSamples?: number;
}

type ConnectionStats = { open: number; evicted: number; refused: number };

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const BODY_LIMIT_BYTES = 16 * 1024;

export async function startAdmin(host: AdminHost, address: ListenAddress, log: Logger, options: AdminOptions = {}): Promise<AdminServer> {
  const adminLog = log.child({ module: 'admin' });
  const token = adminToken(host.settings, options.env ?? process.env, adminLog);
  const tls = readTlsFiles(host.settings);
  warnIfExposed(address, tls !== null, adminLog);

  let connectionStats = (): ConnectionStats => ({ open: 0, evicted: 0, refused: 0 });
  const serverFactory = (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const server = createGuardedServer(host.settings, tls, handler);
    connectionStats = limitConnections(server, host.connectionCaps.admin);
    return server;
  };
  const { registry, traffic } = metricSources(host, () => connectionStats(), options);

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, serverFactory, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  const refusalLog = throttledWarn(adminLog);
  installErrorHandlers(app, adminLog);
  guardHostHeader(app, host.settings.adminHosts, refusalLog);
  parseJsonBodies(app);
  // Before the routes: @fastify/swagger describes each route as it is added.
  await registerOpenApi(app, VERSION);

  // The order of the groups is the order of the OpenAPI paths.
  await app.register(readinessRoutes, { host });
  await app.register(viewRoutes, { host, version: VERSION });
  await app.register(explainRoutes, { host });
  await app.register(fleetRoutes, { host });
  await app.register(metricsRoutes, { registry, traffic });
  await app.register(statusPageRoutes);
  await app.register(controlRoutes, { host, log: adminLog, requireToken: tokenCheck(token, refusalLog) });

  const port = await listen(app, address, () => traffic.stop());
  return {
    port,
    connections: () => connectionStats(),
    close: async () => {
      traffic.stop();
      await app.close();
    },
  };
}

/** The bearer token for mutating calls; an unreadable token file stops start-up (exit 2). */
function adminToken(settings: AdminSettings, env: NodeJS.ProcessEnv, log: Logger): AdminToken {
  let token: AdminToken;
  try {
    token = loadAdminToken(settings.adminTokenFile, env);
  } catch (err) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', settings.adminTokenFile ?? 'admin-token-file', null, '', (err as Error).message)]);
  }
  if (token.digest === null) log.warn('no admin token configured (--admin-token-file or POPSTEER_ADMIN_TOKEN): mutating admin calls are refused');
  else log.info({ token: token.source }, 'admin token loaded');
  return token;
}

function warnIfExposed(address: ListenAddress, https: boolean, log: Logger): void {
  if (isLoopbackHost(address.host)) return;
  const exposure = https ? 'over HTTPS' : 'over plain HTTP: the bearer token and every answer cross the network in clear; configure --admin-tls-cert and --admin-tls-key';
  log.warn({ admin: `${address.host}:${address.port}` }, `the admin API is reachable beyond this machine (--admin-expose), ${exposure}`);
}

/** The HTTP(S) server under fastify, with the admin's deadlines. */
function createGuardedServer(settings: AdminSettings, tls: { cert: Buffer; key: Buffer } | null, handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const server = tls ? createHttpsServer({ ...httpOptions(settings.adminTimeoutMs), ...tls, handshakeTimeout: settings.adminTimeoutMs }, handler)
    : createHttpServer(httpOptions(settings.adminTimeoutMs), handler);
  // Whatever else happens, no socket lives on without traffic for long.
  server.setTimeout(settings.adminTimeoutMs * 2);
  return server;
}

/** The Prometheus registry over the running server's counters, and the sampled traffic shares (started). */
function metricSources(host: AdminHost, adminConnections: () => ConnectionStats, options: AdminOptions): { registry: ReturnType<typeof createMetrics>; traffic: TrafficHistory } {
  const totals = new DecisionTotals(host.settings.workers);
  const decisions = memoized(() => totals.read(host.snapshot().steering, host.decisionCounters()), 200);
  const registry = createMetrics({
    counters: host.counters,
    workers: host.settings.workers,
    pop: host.settings.pop,
    policyHash: () => host.snapshot().hash,
    policyLoadedAt: () => host.snapshot().loadedAt,
    decisions,
    health: memoized(() => host.health.metricsSnapshot(), 200),
    reloads: host.reloads,
    geoDatabase: () => ({ type: host.geo().database.databaseType, buildEpochMs: host.geo().database.buildEpoch.getTime() }),
    dnstap: () => host.dnstap(),
    fit: () => host.fitness().fit,
    connections: () => ({ caps: host.connectionCaps, tcpOpen: host.tcpConnections(), admin: adminConnections() }),
    fleetConnected: () => (host.fleet ? (host.fleet.status().connected ? 1 : 0) : null),
    fleetRevisionServed: () => host.fleetRevision?.()?.served ?? null,
    fleetHealth: () => {
      const h = host.fleet?.status().health;
      return h ? { observersLive: h.observersLive, local: h.source === 'local', disagreements: h.disagreements, probers: h.targets.map((t) => ({ target: t.target, count: t.probers.length })) } : null;
    },
    dnssecExpirySeconds: () => host.dnssecExpirySeconds?.() ?? null,
  });
  const traffic = new TrafficHistory(() => totals.read(host.snapshot().steering, host.decisionCounters()).decisions,
    options.trafficIntervalMs ?? 5000, options.trafficSamples ?? 120);
  traffic.start();
  return { registry, traffic };
}

/** Listens on the admin address; the bound port (for port 0). A taken address stops start-up (exit 2). */
async function listen(app: FastifyInstance, address: ListenAddress, onFailure: () => void): Promise<number> {
  try {
    await app.listen({ host: address.host, port: address.port });
  } catch (err) {
    onFailure();
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_ADMIN_ADDRESS', 'admin', null, '/admin',
      `cannot listen on ${address.host}:${address.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; another process may hold it: stop it, choose another --admin address, or --admin off`)]);
  }
  const bound = app.server.address();
  return typeof bound === 'object' && bound ? bound.port : address.port;
}

/** Reuses one computed value for `ms` (one scrape reads health and decision counts many times). */
function memoized<T>(compute: () => T, ms: number): () => T {
  let value: T | undefined;
  let at = -Infinity;
  return () => {
    const now = performance.now();
    if (value === undefined || now - at > ms) {
      value = compute();
      at = now;
    }
    return value;
  };
}

/** Node's HTTP deadlines from the one admin timeout; the checking interval makes them take effect near on time. */
function httpOptions(timeoutMs: number): ServerOptions {
  return {
    headersTimeout: timeoutMs,
    requestTimeout: timeoutMs * 2,
    keepAliveTimeout: timeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4))),
    maxHeaderSize: 16 * 1024,
  };
}

/** The certificate and key for HTTPS, or null for plain HTTP. Unreadable files stop start-up (exit 2). */
function readTlsFiles(settings: AdminSettings): { cert: Buffer; key: Buffer } | null {
  if (settings.adminTlsCert === null || settings.adminTlsKey === null) return null;
  const read = (file: string, setting: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', file, null, '', `${setting}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)]);
    }
  };
  return { cert: read(settings.adminTlsCert, '--admin-tls-cert'), key: read(settings.adminTlsKey, '--admin-tls-key') };
}
