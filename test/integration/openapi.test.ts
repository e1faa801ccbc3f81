// The admin API's OpenAPI description: served by a running server at
// /v1/openapi.json, valid OpenAPI 3 by @apidevtools/swagger-parser (schema
// and references), covering every route that server/admin/routes/
// registers, with the token required on every mutating call; and
// contrib/openapi.json is that same document (`make openapi` writes it).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; summary?: string; responses?: Record<string, unknown> }>>;
}

let server: StartedServer;
let served: OpenApiDocument;
before(async () => {
  server = await startServer({ args: ['--pop', 'ams'] });
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/openapi.json`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /application\/json/);
  served = await response.json() as OpenApiDocument;
});
after(async () => { await server?.stop(); });

/** Every route the route groups (server/admin/routes/) register, as "METHOD /openapi/{path}". */
function registeredRoutes(): string[] {
  const routesDir = join(REPO_ROOT, 'server/admin/routes');
  const source = readdirSync(routesDir).map((file) => readFileSync(join(routesDir, file), 'utf8')).join('\n');
  const routes = [...source.matchAll(/app\.(get|post|put|patch|delete)(?:<[^(]*?>)?\(\s*'([^']+)'/g)]
    .map((m) => `${m[1].toUpperCase()} ${m[2].replace(/:([A-Za-z_]+)/g, '{$1}')}`);
  // The status page files are registered in a loop over this table.
  const pages = /STATUS_PAGE_FILES[^=]*=\s*\{([\s\S]*?)\n\};/.exec(source);
  assert.ok(pages, 'routes/status-page.ts has its table of status page files');
  for (const m of pages[1].matchAll(/^\s*'([^']+)':/gm)) routes.push(`GET ${m[1]}`);
  routes.push('GET /v1/openapi.json');
  return routes;
}

test('the served document is valid OpenAPI 3', async () => {
  assert.match(served.openapi, /^3\.\d+\.\d+$/);
  await SwaggerParser.validate(structuredClone(served) as never);
});

test('it describes every route of the admin API, each with a summary and its responses', () => {
  const routes = registeredRoutes();
  assert.ok(routes.length >= 18, `found ${routes.length} routes in server/admin/routes/`);
  const described = Object.entries(served.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
  for (const route of routes) assert.ok(described.includes(route), `${route} is in the description`);
  for (const [path, operations] of Object.entries(served.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      assert.ok(operation.summary, `${method} ${path} has a summary`);
      assert.ok(operation.responses && Object.keys(operation.responses).length > 0, `${method} ${path} has responses`);
    }
  }
});

test('every mutating call says it needs the bearer token; read-only calls do not', () => {
  for (const [path, operations] of Object.entries(served.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (method === 'get') assert.equal(operation.security, undefined, `GET ${path} is open`);
      else assert.deepEqual(operation.security, [{ bearerAuth: [] }], `${method.toUpperCase()} ${path} needs the token`);
    }
  }
});

test('contrib/openapi.json is the served document (run `make openapi` after changing a route)', () => {
  const committed = JSON.parse(readFileSync(join(REPO_ROOT, 'contrib/openapi.json'), 'utf8')) as unknown;
  assert.deepEqual(committed, served);
});
