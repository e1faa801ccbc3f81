// Admin HTTP API (fastify). Read-only endpoints are open on the admin address;
// mutating ones will require a bearer token.

import Fastify from 'fastify';
import type { ListenAddress } from '../config/settings.ts';
import type { Logger } from '../log/logger.ts';
import { createMetrics } from './metrics.ts';

export interface AdminHost {
  settings: { pop: string; workers: number };
  snapshot(): { hash: string; loadedAt: number; zones: Array<{ apexText: string }> };
  counters: SharedArrayBuffer;
  reload(reason: string): { ok: boolean; errors: string[]; hash: string };
  fitness(): { fit: boolean; reasons: string[] };
  startedAt: number;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

const VERSION = '0.1.0';

export async function startAdmin(host: AdminHost, address: ListenAddress, log: Logger): Promise<AdminServer> {
  const app = Fastify({ logger: false });
  const registry = createMetrics({
    counters: host.counters,
    workers: host.settings.workers,
    pop: host.settings.pop,
    policyHash: () => host.snapshot().hash,
    policyLoadedAt: () => host.snapshot().loadedAt,
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const snapshot = host.snapshot();
    const ready = snapshot !== null;
    reply.code(ready ? 200 : 503);
    return { ready, zones: snapshot.zones.map((z) => z.apexText), hash: snapshot.hash };
  });
  app.get('/v1/status', async () => {
    const snapshot = host.snapshot();
    return {
      version: VERSION,
      pop: host.settings.pop,
      uptime_seconds: Math.round((Date.now() - host.startedAt) / 1000),
      workers: host.settings.workers,
      policy_hash: snapshot.hash,
      policy_loaded_at: new Date(snapshot.loadedAt).toISOString(),
      zones: snapshot.zones.map((z) => z.apexText),
    };
  });
  // Whether this instance should receive anycast traffic (read by `popsteer anycast`).
  app.get('/v1/fitness', async (_req, reply) => {
    const fitness = host.fitness();
    reply.code(fitness.fit ? 200 : 503);
    return { pop: host.settings.pop, ...fitness };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  await app.listen({ host: address.host, port: address.port });
  const bound = app.server.address();
  const port = typeof bound === 'object' && bound ? bound.port : address.port;
  void log;
  return { port, close: () => app.close() };
}
