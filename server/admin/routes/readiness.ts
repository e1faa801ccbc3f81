// Liveness and readiness, for load balancers and orchestrators.

import type { FastifyPluginAsync } from 'fastify';
import type { AdminHost } from '../running-server.ts';

export const readinessRoutes: FastifyPluginAsync<{ host: AdminHost }> = async (app, { host }) => {
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
};
