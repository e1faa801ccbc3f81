// `make openapi`: prints the admin API's OpenAPI description as the server
// serves it (GET /v1/openapi.json), for contrib/openapi.json. Starts the
// server with the example configuration on ephemeral loopback ports, asks,
// and stops it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveSettings } from '../config/settings.ts';
import { createLogger } from '../log/logger.ts';
import { startServer } from '../main.ts';

async function main(): Promise<void> {
  const state = mkdtempSync(join(tmpdir(), 'popsteer-openapi-'));
  const { settings } = resolveSettings(['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1', '--drain-ms', '0',
    '--state-file', join(state, 'state.json'), '--pop', 'ams'], {}, process.cwd());
  const server = await startServer(settings, createLogger('silent', settings.pop));
  try {
    const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/openapi.json`);
    if (!response.ok) throw new Error(`GET /v1/openapi.json: ${response.status}`);
    process.stdout.write(`${JSON.stringify(await response.json(), null, 2)}\n`);
  } finally {
    await server.shutdown();
    rmSync(state, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`openapi: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
