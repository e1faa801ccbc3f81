// "What would this server answer, and why": the explain trace for one name
// and client, and the world map of a policy's answers. Both read the same
// inputs the DNS workers decide with (live health, signals, ecs_trust).

import type { FastifyPluginAsync } from 'fastify';
import { explain, formatExplain, type ExplainContext, type ExplainRequest } from '../../engine/explain.ts';
import { healthEpoch } from '../../health/table.ts';
import { RequestError } from '../request-errors.ts';
import type { AdminHost } from '../running-server.ts';
import { buildWorldMap, type WorldMap } from '../world-map.ts';

const MAP_CELL_DEGREES = ['1', '2', '3', '5'];

interface ExplainQuery { name: string; client?: string; resolver?: string; down?: string; type?: 'A' | 'AAAA'; format?: 'json' | 'text' }
interface MapQuery { name?: string; cell?: string }

const explainSchema = {
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
};

const mapSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1, maxLength: 255 }, cell: { type: 'string', enum: MAP_CELL_DEGREES } },
  },
};

export const explainRoutes: FastifyPluginAsync<{ host: AdminHost }> = async (app, { host }) => {
  app.get<{ Querystring: ExplainQuery }>('/v1/explain', { schema: explainSchema }, async (req, reply) => {
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

  // A map is built once per (snapshot, health epoch, policy, cell size).
  let mapCache: { key: string; map: WorldMap } | null = null;
  app.get<{ Querystring: MapQuery }>('/v1/map', { schema: mapSchema }, async (req) => {
    const policies = host.policies();
    const wanted = (req.query.name ?? policies[0]?.name ?? '').replace(/\.$/, '').toLowerCase();
    const policy = policies.find((p) => p.name.replace(/\.$/, '').toLowerCase() === wanted);
    if (!policy) throw new RequestError(404, 'not_found', `no policy named "${req.query.name ?? ''}"; active: ${policies.map((p) => p.name).join(', ')}`);
    const cell = Number(req.query.cell ?? 2);
    const health = new Int32Array(host.healthTable);
    const key = `${host.snapshot().hash}|${healthEpoch(health)}|${policy.name}|${cell}`;
    if (mapCache?.key !== key) {
      mapCache = { key, map: buildWorldMap(policy, host.geo().context.index, Int32Array.from(health), cell) };
    }
    return { ...mapCache.map, hash: host.snapshot().hash, policies: policies.map((p) => p.name) };
  });
};

function explainContext(host: AdminHost): ExplainContext {
  const overrides = new Map<string, string>();
  for (const s of host.health.status().subjects) {
    if (s.override) overrides.set(s.id, `${s.override.kind}: ${s.override.reason}`);
    else {
      // In a fleet: the verdict and its evidence, for the targets that decide this subject.
      const verdicts = s.targets.filter((t) => t.verdict !== null).map((t) => `${t.id} ${t.verdict!.evidence}`);
      if (verdicts.length > 0) overrides.set(s.id, `fleet verdict: ${verdicts.join('; ')}`);
    }
  }
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
