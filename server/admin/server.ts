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

import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { ConfigError, ConfigErrors } from '../config/errors.ts';
import { isLoopbackHost, type ListenAddress } from '../config/settings.ts';
import { explain, formatExplain, type ExplainContext, type ExplainRequest } from '../engine/explain.ts';
import { parseDurationMs } from '../health/duration.ts';
import { HealthInputError, OVERRIDE_ACTIONS, type OverrideAction } from '../health/overrides.ts';
import type { Logger } from '../log/logger.ts';
import type { RunningServer } from '../main.ts';
import { checkBearer, loadAdminToken } from './auth.ts';
import { limitConnections } from './connections.ts';
import { hostAllowed } from './host-check.ts';
import { DecisionTotals } from '../engine/decision-counters.ts';
import { createMetrics } from './metrics.ts';
import { registerOpenApi } from './openapi.ts';
import { describePolicy } from './policies-view.ts';
import { TrafficHistory } from './traffic.ts';
import { buildWorldMap, type WorldMap } from './world-map.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** For a POST route: the body to send, shown in its 400 and 415 errors. */
    bodyExample?: string;
  }
}

/** What the admin needs from the running server. */
export type AdminHost = Pick<RunningServer,
  'settings' | 'snapshot' | 'policies' | 'geo' | 'health' | 'healthTable' | 'counters' | 'decisionCounters' | 'reloads' | 'reload' | 'fitness' | 'startedAt'
  | 'setLoad' | 'dnstap' | 'signals' | 'connectionCaps' | 'tcpConnections'>;

export interface AdminServer {
  port: number;
  /** Open connections, and those evicted or refused at the cap. */
  connections(): { open: number; evicted: number; refused: number };
  close(): Promise<void>;
}

export interface AdminOptions {
  env?: NodeJS.ProcessEnv;
  /** Traffic-share sampling for the status page. */
  trafficIntervalMs?: number;
  trafficSamples?: number;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const STATUS_PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
};
const BODY_LIMIT_BYTES = 16 * 1024;
/** What an override call takes, shown in its errors. */
const OVERRIDE_BODY_EXAMPLE = '{"reason": "fibre work", "expires": "30m"} (both optional)';
/** The reason recorded for an override sent without one. */
const NO_REASON = 'no reason given (the request had none)';
const MAX_OVERRIDE_SECONDS = 30 * 24 * 3600;
const MAP_CELL_DEGREES = ['1', '2', '3', '5'];

class RequestError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const errorBody = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;

/** Refusals are logged at most once per this interval, with the count of those not logged: a flood must not flood the log. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** A warn() that writes at most one line per `intervalMs`; the next line carries how many were left out. */
function throttledWarn(log: Logger, intervalMs: number): (fields: Record<string, unknown>, message: string) => void {
  let last = -Infinity;
  let unlogged = 0;
  return (fields, message) => {
    const now = performance.now();
    if (now - last < intervalMs) {
      unlogged++;
      return;
    }
    log.warn({ ...fields, refusedUnlogged: unlogged }, message);
    last = now;
    unlogged = 0;
  };
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

function overrideExpiry(expires: number | string | undefined, now: number): number | null {
  if (expires === undefined) return null;
  const ms = parseDurationMs(expires);
  if (ms === null || ms <= 0) throw new RequestError(400, 'bad_request', `expires must be a positive number of seconds or a duration such as "30m", not ${JSON.stringify(expires)}`);
  if (ms > MAX_OVERRIDE_SECONDS * 1000) throw new RequestError(400, 'bad_request', `expires must be at most ${MAX_OVERRIDE_SECONDS / 86400} days`);
  return now + ms;
}

export async function startAdmin(host: AdminHost, address: ListenAddress, log: Logger, options: AdminOptions = {}): Promise<AdminServer> {
  const adminLog = log.child({ module: 'admin' });
  let token: ReturnType<typeof loadAdminToken>;
  try {
    token = loadAdminToken(host.settings.adminTokenFile, options.env ?? process.env);
  } catch (err) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', host.settings.adminTokenFile ?? 'admin-token-file', null, '', (err as Error).message)]);
  }
  if (token.digest === null) adminLog.warn('no admin token configured (--admin-token-file or POPSTEER_ADMIN_TOKEN): mutating admin calls are refused');
  else adminLog.info({ token: token.source }, 'admin token loaded');

  const tls = readTlsFiles(host.settings);
  const exposure = isLoopbackHost(address.host) ? null : tls ? 'over HTTPS' : 'over plain HTTP: the bearer token and every answer cross the network in clear; configure --admin-tls-cert and --admin-tls-key';
  if (exposure !== null) adminLog.warn({ admin: `${address.host}:${address.port}` }, `the admin API is reachable beyond this machine (--admin-expose), ${exposure}`);
  let connectionStats = (): { open: number; evicted: number; refused: number } => ({ open: 0, evicted: 0, refused: 0 });
  const serverFactory = (handler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const server = tls ? createHttpsServer({ ...httpOptions(host.settings.adminTimeoutMs), ...tls, handshakeTimeout: host.settings.adminTimeoutMs }, handler)
      : createHttpServer(httpOptions(host.settings.adminTimeoutMs), handler);
    // Whatever else happens, no socket lives on without traffic for long.
    server.setTimeout(host.settings.adminTimeoutMs * 2);
    connectionStats = limitConnections(server, host.connectionCaps.admin);
    return server;
  };

  const totals = new DecisionTotals(host.settings.workers);
  const decisions = memoized(() => totals.read(host.snapshot().steering, host.decisionCounters()), 200);
  const healthMetrics = memoized(() => host.health.metricsSnapshot(), 200);
  const registry = createMetrics({
    counters: host.counters,
    workers: host.settings.workers,
    pop: host.settings.pop,
    policyHash: () => host.snapshot().hash,
    policyLoadedAt: () => host.snapshot().loadedAt,
    decisions,
    health: healthMetrics,
    reloads: host.reloads,
    geoDatabase: () => ({ type: host.geo().database.databaseType, buildEpochMs: host.geo().database.buildEpoch.getTime() }),
    dnstap: () => host.dnstap(),
    fit: () => host.fitness().fit,
    connections: () => ({ caps: host.connectionCaps, tcpOpen: host.tcpConnections(), admin: connectionStats() }),
  });
  const traffic = new TrafficHistory(() => totals.read(host.snapshot().steering, host.decisionCounters()).decisions,
    options.trafficIntervalMs ?? 5000, options.trafficSamples ?? 120);
  traffic.start();
  const statusPage = Object.fromEntries(Object.entries(STATUS_PAGE_FILES).map(([path, { file, type }]) =>
    [path, { body: readFileSync(new URL(`./status/${file}`, import.meta.url)), type }]));

  let mapCache: { key: string; map: WorldMap } | null = null;

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, serverFactory, ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (err instanceof RequestError) return reply.code(err.status).send({ error: err.code, message: err.message });
    if (err instanceof HealthInputError) {
      const notFound = err.code !== 'POPSTEER_ERR_HEALTH_BAD_OVERRIDE';
      return reply.code(notFound ? 404 : 400).send({ error: notFound ? 'not_found' : 'bad_request', message: err.message });
    }
    // A malformed body: say what to send instead.
    const example = req.routeOptions.config?.bodyExample;
    const send = example ? `; send a JSON object such as ${example} with content-type application/json` : '';
    if (err.validation) return reply.code(400).send({ error: 'bad_request', message: `${err.message}${send}` });
    const status = err.statusCode ?? 500;
    if (status >= 500) adminLog.error({ err: err.message, stack: err.stack }, 'admin request failed');
    const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : status >= 500 ? 'internal' : 'bad_request';
    return reply.code(status).send({ error: code, message: status >= 500 ? 'internal error; see the server log' : `${err.message}${status === 400 || status === 415 ? send : ''}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  const refusalLog = throttledWarn(adminLog, REFUSAL_LOG_INTERVAL_MS);
  // DNS rebinding guard, before anything else is looked at.
  const listedHosts = new Set(host.settings.adminHosts);
  app.addHook('onRequest', async (req, reply) => {
    if (hostAllowed(req.headers.host, listedHosts)) return;
    refusalLog({ host: req.headers.host, ip: req.ip, url: req.url.split('?')[0] }, 'admin request for a foreign host name refused');
    return reply.code(421).send({
      error: 'misdirected_request',
      message: `this admin API answers to IP addresses, localhost and the names in --admin-hosts, not "${req.headers.host}"; add the name to --admin-hosts (admin_hosts) if it is yours`,
    });
  });
  // An empty body is no body: routes whose every field is optional take it as {}.
  app.removeContentTypeParser('application/json');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = String(body);
    if (text === '') return done(null, undefined);
    return parseJson(req, text, done);
  });

  /** onRequest hook of mutating routes: the token is checked before the body is read or validated. */
  const requireToken = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const result = checkBearer(token, req.headers.authorization);
    if (!result.ok) {
      refusalLog({ route: req.routeOptions.url, ip: req.ip, error: result.error }, 'mutating admin call refused');
      return reply.code(result.status).send({ error: result.error, message: result.message });
    }
  };

  // Before the routes: @fastify/swagger describes each route as it is added.
  await registerOpenApi(app, VERSION);

  // ---- liveness and readiness
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const snapshot = host.snapshot();
    const waiting: string[] = [];
    if (!snapshot) waiting.push('zones and policies not loaded');
    if (host.geo().database.index.locationCount === 0) waiting.push('GeoIP data not loaded');
    if (!host.health.ready()) waiting.push('first probe round not done (probes.yaml initial_state: wait)');
    const ready = waiting.length === 0;
    reply.code(ready ? 200 : 503);
    return { ready, waiting, hash: snapshot?.hash ?? null, zones: snapshot?.zones.map((z) => z.apexText) ?? [] };
  });

  // ---- read-only views
  app.get('/v1/status', async () => {
    const snapshot = host.snapshot();
    const db = host.geo().database;
    return {
      version: VERSION,
      pop: host.settings.pop,
      started_at: new Date(host.startedAt).toISOString(),
      uptime_seconds: Math.round((Date.now() - host.startedAt) / 1000),
      workers: host.settings.workers,
      policy_hash: snapshot.hash,
      policy_loaded_at: new Date(snapshot.loadedAt).toISOString(),
      policies: host.policies().map((p) => p.name),
      zones: snapshot.zones.map((z) => z.apexText),
      geoip: { type: db.databaseType, build_date: db.buildEpoch.toISOString(), locations: db.index.locationCount },
      health: { ready: host.health.ready(), cut_off: host.health.cutOff().active },
      reloads: { success: host.reloads.success, failure: host.reloads.failure, last_error: host.reloads.lastError },
    };
  });

  app.get('/v1/pops', async () => {
    const status = host.health.status();
    const catalog = host.geo().catalog;
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return {
      ready: status.ready,
      cut_off: { active: status.cutOff.active, share: status.cutOff.share, since: iso(status.cutOff.since) },
      pops: status.subjects.map((s) => {
        const pop = catalog.pops[catalog.ordinalOf.get(s.id) ?? -1];
        return {
          id: s.id,
          name: pop?.name ?? s.id,
          location: pop ? { lat: pop.lat, lon: pop.lon, country: pop.country, continent: pop.continent } : null,
          self: s.id === host.settings.pop,
          state: s.state,
          since: iso(s.since),
          probe_state: s.probeState,
          override: s.override ? { kind: s.override.kind, reason: s.override.reason, since: iso(s.override.since), expires: iso(s.override.expires) } : null,
          quorum: s.quorum,
          targets: s.targets.map((t) => ({
            id: t.id, kind: t.kind, state: t.state, since: iso(t.since),
            last_probe: t.last ? { ok: t.last.ok, reason: t.last.reason, detail: t.last.detail, duration_ms: t.last.durationMs, at: iso(t.last.at) } : null,
            interval_ms: t.intervalMs, timeout_ms: t.timeoutMs, rise: t.rise, fall: t.fall,
          })),
        };
      }),
    };
  });

  app.get('/v1/policies', async () => {
    const snapshot = host.snapshot();
    return { hash: snapshot.hash, loaded_at: new Date(snapshot.loadedAt).toISOString(), policies: host.policies().map(describePolicy) };
  });

  // Whether this instance should receive anycast traffic (read by `popsteer anycast`).
  app.get('/v1/fitness', async (_req, reply) => {
    const fitness = host.fitness();
    reply.code(fitness.fit ? 200 : 503);
    return { pop: host.settings.pop, ...fitness };
  });

  app.get<{ Querystring: { name: string; client?: string; resolver?: string; down?: string; type?: 'A' | 'AAAA'; format?: 'json' | 'text' } }>('/v1/explain', {
    schema: {
      querystring: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 255 },
          client: { type: 'string', minLength: 1, maxLength: 64 },
          resolver: { type: 'string', minLength: 1, maxLength: 64 },
          down: { type: 'string', maxLength: 1024 },
          type: { type: 'string', enum: ['A', 'AAAA'] },
          format: { type: 'string', enum: ['json', 'text'] },
        },
      },
    },
  }, async (req, reply) => {
    const q = req.query;
    const request: ExplainRequest = {
      name: q.name, client: q.client, resolver: q.resolver, type: q.type,
      down: q.down ? q.down.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
    };
    let result;
    try {
      result = explain(explainContext(host), request);
    } catch (err) {
      throw new RequestError(400, 'bad_request', (err as Error).message);
    }
    if (q.format === 'text') return reply.type('text/plain; charset=utf-8').send(`${formatExplain(result)}\n`);
    return result;
  });

  app.get<{ Querystring: { name?: string; cell?: string } }>('/v1/map', {
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1, maxLength: 255 }, cell: { type: 'string', enum: MAP_CELL_DEGREES } },
      },
    },
  }, async (req) => {
    const policies = host.policies();
    const wanted = (req.query.name ?? policies[0]?.name ?? '').replace(/\.$/, '').toLowerCase();
    const policy = policies.find((p) => p.name.replace(/\.$/, '').toLowerCase() === wanted);
    if (!policy) throw new RequestError(404, 'not_found', `no policy named "${req.query.name ?? ''}"; active: ${policies.map((p) => p.name).join(', ')}`);
    const cell = Number(req.query.cell ?? 2);
    const health = new Int32Array(host.healthTable);
    const key = `${host.snapshot().hash}|${health[0]}|${policy.name}|${cell}`;
    if (mapCache?.key !== key) {
      mapCache = { key, map: buildWorldMap(policy, host.geo().context.index, Int32Array.from(health), cell) };
    }
    return { ...mapCache.map, hash: host.snapshot().hash, policies: policies.map((p) => p.name) };
  });

  app.get('/v1/traffic', async () => traffic.series());

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  for (const [path, page] of Object.entries(statusPage)) {
    app.get(path, async (_req, reply) => reply.type(page.type).header('cache-control', 'no-cache').send(page.body));
  }

  // ---- mutating
  app.post<{ Params: { id: string; action: OverrideAction }; Body: { reason?: string; expires?: number | string } }>('/v1/pops/:id/:action', {
    onRequest: requireToken,
    config: { bodyExample: OVERRIDE_BODY_EXAMPLE },
    // No body at all: an override without a reason, which then says so.
    preValidation: async (req) => { if (req.body === undefined || req.body === null) req.body = {}; },
    schema: {
      params: {
        type: 'object',
        properties: { id: { type: 'string', minLength: 1, maxLength: 64 }, action: { type: 'string', enum: [...OVERRIDE_ACTIONS] } },
      },
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          reason: { type: 'string', minLength: 1, maxLength: 500, pattern: '\\S' },
          expires: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'string', pattern: '^\\d+(\\.\\d+)?(ms|s|m|h)$' }] },
        },
      },
    },
  }, async (req) => {
    const { id, action } = req.params;
    const expiresAt = overrideExpiry(req.body.expires, Date.now());
    const reason = req.body.reason ?? NO_REASON;
    const subject = host.health.setOverride(id, action, reason, expiresAt);
    adminLog.info({ subject: id, action, reason, expires: expiresAt === null ? null : new Date(expiresAt).toISOString(), ip: req.ip }, 'override set through the admin API');
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return {
      id: subject.id, state: subject.state, since: iso(subject.since),
      override: subject.override ? { kind: subject.override.kind, reason: subject.override.reason, since: iso(subject.override.since), expires: iso(subject.override.expires) } : null,
    };
  });

  app.post('/v1/reload', { onRequest: requireToken }, async (_req, reply) => {
    const outcome = host.reload('admin API');
    if (!outcome.ok) return reply.code(422).send({ error: 'invalid_configuration', message: 'the new configuration was rejected; the previous one keeps serving', errors: outcome.errors, hash: outcome.hash });
    return { hash: outcome.hash, changed: outcome.changed };
  });

  app.post<{ Body: { target: string; state: 'up' | 'down'; reason?: string } }>('/v1/health', {
    onRequest: requireToken,
    config: { bodyExample: '{"target": "ams-monitor", "state": "down", "reason": "edge unreachable"} (reason optional)' },
    schema: {
      body: {
        type: 'object',
        required: ['target', 'state'],
        additionalProperties: false,
        properties: {
          target: { type: 'string', minLength: 1, maxLength: 128 },
          state: { type: 'string', enum: ['up', 'down'] },
          reason: { type: 'string', maxLength: 500 },
        },
      },
      response: { 404: errorBody },
    },
  }, async (req) => {
    const target = host.health.pushExternal(req.body.target, req.body.state === 'up', req.body.reason ?? '');
    return { id: target.id, state: target.state, since: new Date(target.since).toISOString(), last_probe: target.last };
  });

  // Load feed for capacity steps: a PoP's load relative to its capacity (1 = full).
  app.post<{ Body: { pop: string; load: number } }>('/v1/load', {
    onRequest: requireToken,
    config: { bodyExample: '{"pop": "ams", "load": 0.8}' },
    schema: {
      body: {
        type: 'object',
        required: ['pop', 'load'],
        additionalProperties: false,
        properties: { pop: { type: 'string', minLength: 1, maxLength: 64 }, load: { type: 'number', minimum: 0, maximum: 100 } },
      },
      response: { 404: errorBody },
    },
  }, async (req) => {
    if (!host.setLoad(req.body.pop, req.body.load)) {
      throw new RequestError(404, 'not_found', `unknown PoP "${req.body.pop}"; known: ${host.geo().catalog.ids.join(', ')}`);
    }
    return { pop: req.body.pop, load: req.body.load };
  });

  try {
    await app.listen({ host: address.host, port: address.port });
  } catch (err) {
    traffic.stop();
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_ADMIN_ADDRESS', 'admin', null, '/admin',
      `cannot listen on ${address.host}:${address.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; another process may hold it: stop it, choose another --admin address, or --admin off`)]);
  }
  const bound = app.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : address.port;
  return {
    port,
    connections: () => connectionStats(),
    close: async () => {
      traffic.stop();
      await app.close();
    },
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
function readTlsFiles(settings: AdminHost['settings']): { cert: Buffer; key: Buffer } | null {
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

function explainContext(host: AdminHost): ExplainContext {
  const overrides = new Map<string, string>();
  for (const s of host.health.status().subjects) {
    if (s.override) overrides.set(s.id, `${s.override.kind}: ${s.override.reason}`);
  }
  // The same inputs the DNS workers decide with: live health, signals and ecs_trust.
  return {
    snapshot: host.snapshot(),
    geo: host.geo().context,
    health: new Int32Array(host.healthTable),
    signals: new Float64Array(host.signals),
    ecsTrust: host.settings.ecsTrust,
    subjects: host.geo().catalog.ids,
    selfPop: host.settings.pop,
    overrides,
  };
}
