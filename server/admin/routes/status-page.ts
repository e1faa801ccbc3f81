// The status page: three static files, read once at start-up.

import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';

const STATUS_PAGE_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
};

export const statusPageRoutes: FastifyPluginAsync = async (app) => {
  for (const [path, { file, type }] of Object.entries(STATUS_PAGE_FILES)) {
    const body = readFileSync(new URL(`../status/${file}`, import.meta.url));
    app.get(path, async (_req, reply) => reply.type(type).header('cache-control', 'no-cache').send(body));
  }
};
