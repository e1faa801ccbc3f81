// popsteer pop …: the request it sends to the admin API and its exit codes,
// against a stand-in admin endpoint on loopback.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runPopCommand } from '../../../server/cli/pop.ts';
import { tempStateFile } from './helpers.ts';

interface Seen { method: string; url: string; authorization: string; body: unknown }
const seen: Seen[] = [];
let admin = '';
const server = createServer((req: IncomingMessage, res) => {
  let text = '';
  req.on('data', (d) => { text += d; });
  req.on('end', () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: String(req.headers.authorization), body: JSON.parse(text || '{}') });
    if (req.url?.startsWith('/v1/pops/nowhere/')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'POPSTEER_ERR_HEALTH_UNKNOWN_SUBJECT', message: 'no PoP or endpoint "nowhere"' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'ams', state: 'down' }));
  });
});

before(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  admin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => { server.close(); });

// Collects the command's output instead of printing it.
function quietly(args: string[]): Promise<number> {
  const lines: string[] = [];
  const sink = { write: (text: string) => lines.push(text) };
  return runPopCommand(args, { out: sink, err: sink });
}

test('drain with an expiry POSTs reason and expiry with the bearer token from the token file', async () => {
  const tokenFile = join(tempStateFile(), '..', 'token');
  writeFileSync(tokenFile, 's3cret\n');
  const code = await quietly(['drain', 'ams', '--reason', 'fibre cut', '--expires', '30m', '--admin', admin, '--token-file', tokenFile]);
  assert.equal(code, 0);
  assert.deepEqual(seen.at(-1), { method: 'POST', url: '/v1/pops/ams/drain', authorization: 'Bearer s3cret', body: { reason: 'fibre cut', expires: 1800 } });
});

test('the token can come from POPSTEER_ADMIN_TOKEN; a refusal from the API exits 1', async () => {
  process.env.POPSTEER_ADMIN_TOKEN = 'from-env';
  try {
    assert.equal(await quietly(['force-down', 'nowhere', '--reason', 'x', '--admin', admin]), 1);
    assert.equal(seen.at(-1)?.authorization, 'Bearer from-env');
  } finally {
    delete process.env.POPSTEER_ADMIN_TOKEN;
  }
});

test('bad usage exits 2 before any request: unknown action, missing reason, bad expiry, expiry on undrain', async () => {
  const before = seen.length;
  for (const args of [
    ['explode', 'ams', '--reason', 'x'],
    ['drain', 'ams'],
    ['drain', 'ams', '--reason', 'x', '--expires', 'soon'],
    ['undrain', 'ams', '--reason', 'x', '--expires', '5m'],
    ['drain', '--reason', 'x'],
  ]) {
    assert.equal(await quietly([...args, '--admin', admin]), 2, args.join(' '));
  }
  assert.equal(seen.length, before);
});

test('no token and an unreachable admin API both exit 1', async () => {
  delete process.env.POPSTEER_ADMIN_TOKEN;
  assert.equal(await quietly(['drain', 'ams', '--reason', 'x', '--admin', admin]), 1);
  process.env.POPSTEER_ADMIN_TOKEN = 't';
  try {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    assert.equal(await quietly(['drain', 'ams', '--reason', 'x', '--admin', `127.0.0.1:${port}`]), 1);
  } finally {
    delete process.env.POPSTEER_ADMIN_TOKEN;
  }
});
