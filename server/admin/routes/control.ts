// The mutating calls, each behind the bearer token (checked onRequest, before
// the body is read): PoP overrides, reload, the external health feed and the
// load feed. A request is checked completely before anything is applied.

import type { FastifyPluginAsync } from 'fastify';
import { parseDurationMs } from '../../health/duration.ts';
import { OVERRIDE_ACTIONS, type OverrideAction } from '../../health/overrides.ts';
import type { Logger } from '../../log/logger.ts';
import type { TokenCheck } from '../guards.ts';
import { errorBody, RequestError } from '../request-errors.ts';
import type { AdminHost } from '../running-server.ts';
import { fleetLoad, fleetOverride } from './fleet.ts';
import { describeOverride, isoTime } from './views.ts';

/** What an override call takes, shown in its errors. */
const OVERRIDE_BODY_EXAMPLE = '{"reason": "fibre work", "expires": "30m"} (both optional)';
/** The reason recorded for an override sent without one. */
const NO_REASON = 'no reason given (the request had none)';
const MAX_OVERRIDE_SECONDS = 30 * 24 * 3600;

interface OverrideCall { Params: { id: string; action: OverrideAction }; Body: { reason?: string; expires?: number | string; author?: string } }
interface HealthFeedCall { Body: { target: string; state: 'up' | 'down'; reason?: string } }
interface LoadFeedCall { Body: { pop: string; load: number } }

const overrideSchema = {
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
      // Who asks, recorded with the override in the fleet's history.
      author: { type: 'string', minLength: 1, maxLength: 100 },
    },
  },
};

const healthFeedSchema = {
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
};

const loadFeedSchema = {
  body: {
    type: 'object',
    required: ['pop', 'load'],
    additionalProperties: false,
    properties: { pop: { type: 'string', minLength: 1, maxLength: 64 }, load: { type: 'number', minimum: 0, maximum: 100 } },
  },
  response: { 404: errorBody },
};

export const controlRoutes: FastifyPluginAsync<{ host: AdminHost; log: Logger; requireToken: TokenCheck }> = async (app, { host, log, requireToken }) => {
  app.post<OverrideCall>('/v1/pops/:id/:action', {
    onRequest: requireToken,
    config: { bodyExample: OVERRIDE_BODY_EXAMPLE },
    // No body at all: an override without a reason, which then says so.
    preValidation: async (req) => { if (req.body === undefined || req.body === null) req.body = {}; },
    schema: overrideSchema,
  }, async (req) => {
    const { id, action } = req.params;
    const expiresAt = overrideExpiry(req.body.expires, Date.now());
    const reason = req.body.reason ?? NO_REASON;
    const author = `${req.body.author ?? 'admin API'} (${req.ip} via ${host.settings.pop})`;
    const subject = host.fleet ? await fleetOverride(host, id, action, reason, expiresAt, author) : host.health.setOverride(id, action, reason, expiresAt);
    log.info({ subject: id, action, reason, expires: isoTime(expiresAt), ip: req.ip }, 'override set through the admin API');
    return { id: subject.id, state: subject.state, since: isoTime(subject.since), override: describeOverride(subject.override) };
  });

  app.post('/v1/reload', { onRequest: requireToken }, async (_req, reply) => {
    const outcome = await host.reload('admin API');
    if (!outcome.ok) return reply.code(422).send({ error: 'invalid_configuration', message: 'the new configuration was rejected; the previous one keeps serving', errors: outcome.errors, hash: outcome.hash });
    return { hash: outcome.hash, changed: outcome.changed };
  });

  app.post<HealthFeedCall>('/v1/health', {
    onRequest: requireToken,
    config: { bodyExample: '{"target": "ams-monitor", "state": "down", "reason": "edge unreachable"} (reason optional)' },
    schema: healthFeedSchema,
  }, async (req) => {
    const target = host.health.pushExternal(req.body.target, req.body.state === 'up', req.body.reason ?? '');
    return { id: target.id, state: target.state, since: new Date(target.since).toISOString(), last_probe: target.last };
  });

  // Load feed for capacity steps: a PoP's load relative to its capacity (1 = full).
  app.post<LoadFeedCall>('/v1/load', {
    onRequest: requireToken,
    config: { bodyExample: '{"pop": "ams", "load": 0.8}' },
    schema: loadFeedSchema,
  }, async (req) => {
    const { pop, load } = req.body;
    const unknown = (): never => { throw new RequestError(404, 'not_found', `unknown PoP "${pop}"; known: ${host.geo().catalog.ids.join(', ')}`); };
    // In a fleet the load is written for every instance and applies here through the fleet, once acknowledged.
    if (host.fleetLoad) {
      if (!host.geo().catalog.ids.includes(pop)) unknown();
      await fleetLoad(host, pop, load, `admin API (${req.ip} via ${host.settings.pop})`);
    } else if (!host.setLoad(pop, load)) {
      unknown();
    }
    log.info({ pop, load, ip: req.ip, fleet: Boolean(host.fleetLoad) }, 'declared load set through the admin API');
    return { pop, load };
  });
};

/** When an override ends: null for never; a 400 for a duration that is not positive or longer than the cap. */
function overrideExpiry(expires: number | string | undefined, now: number): number | null {
  if (expires === undefined) return null;
  const ms = parseDurationMs(expires);
  if (ms === null || ms <= 0) throw new RequestError(400, 'bad_request', `expires must be a positive number of seconds or a duration such as "30m", not ${JSON.stringify(expires)}`);
  if (ms > MAX_OVERRIDE_SECONDS * 1000) throw new RequestError(400, 'bad_request', `expires must be at most ${MAX_OVERRIDE_SECONDS / 86400} days`);
  return now + ms;
}
