// What every admin request passes before a route sees it: the Host check
// against DNS rebinding, the JSON body parser (an empty body is no body), and
// for mutating routes the bearer token, checked before the body is read.
// Refusals are logged, throttled so that a flood cannot flood the log.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log/logger.ts';
import { checkBearer, type AdminToken } from './auth.ts';
import { hostAllowed } from './host-check.ts';

/** Refusals are logged at most once per this interval, with the count of those not logged. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

type RefusalLog = (fields: Record<string, unknown>, message: string) => void;
/** onRequest hook of a mutating route. */
export type TokenCheck = (req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** A warn() that writes at most one line per `intervalMs`; the next line carries how many were left out. */
export function throttledWarn(log: Logger, intervalMs = REFUSAL_LOG_INTERVAL_MS): RefusalLog {
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

/** Refuses (421) a request whose Host is neither an IP address, localhost nor a listed name: before anything else is looked at. */
export function guardHostHeader(app: FastifyInstance, adminHosts: readonly string[], refusalLog: RefusalLog): void {
  const listedHosts = new Set(adminHosts);
  app.addHook('onRequest', async (req, reply) => {
    if (hostAllowed(req.headers.host, listedHosts)) return;
    refusalLog({ host: req.headers.host, ip: req.ip, url: req.url.split('?')[0] }, 'admin request for a foreign host name refused');
    return reply.code(421).send({
      error: 'misdirected_request',
      message: `this admin API answers to IP addresses, localhost and the names in --admin-hosts, not "${req.headers.host}"; add the name to --admin-hosts (admin_hosts) if it is yours`,
    });
  });
}

/** JSON bodies, where an empty body is no body: routes whose every field is optional take it as {}. */
export function parseJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = String(body);
    if (text === '') return done(null, undefined);
    return parseJson(req, text, done);
  });
}

/** The onRequest hook of mutating routes: the token is checked before the body is read or validated. */
export function tokenCheck(token: AdminToken, refusalLog: RefusalLog): TokenCheck {
  return async (req, reply) => {
    const result = checkBearer(token, req.headers.authorization);
    if (!result.ok) {
      refusalLog({ route: req.routeOptions.url, ip: req.ip, error: result.error }, 'mutating admin call refused');
      return reply.code(result.status).send({ error: result.error, message: result.message });
    }
  };
}
