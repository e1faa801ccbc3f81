// Prometheus /metrics and the traffic-share series the status page draws.

import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import type { TrafficHistory } from '../traffic.ts';

export const metricsRoutes: FastifyPluginAsync<{ registry: Registry; traffic: TrafficHistory }> = async (app, { registry, traffic }) => {
  app.get('/v1/traffic', async () => traffic.series());

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
};
