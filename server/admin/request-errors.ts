// How the admin answers what it refuses: every error is JSON {error, message}
// with a stable code, and a malformed body is answered with what to send.

import type { FastifyInstance } from 'fastify';
import { HealthInputError } from '../health/overrides.ts';
import type { Logger } from '../log/logger.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** For a POST route: the body to send, shown in its 400 and 415 errors. */
    bodyExample?: string;
  }
}

/** A refusal a route throws: the HTTP status and the stable error code. */
export class RequestError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The response schema of an error, for routes that declare their 404. */
export const errorBody = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;

/** Answers thrown errors and unknown routes as JSON; a 5xx is logged and its detail kept out of the answer. */
export function installErrorHandlers(app: FastifyInstance, log: Logger): void {
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
    if (status >= 500) log.error({ err: err.message, stack: err.stack }, 'admin request failed');
    const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : status >= 500 ? 'internal' : 'bad_request';
    return reply.code(status).send({ error: code, message: status >= 500 ? 'internal error; see the server log' : `${err.message}${status === 400 || status === 415 ? send : ''}` });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));
}
