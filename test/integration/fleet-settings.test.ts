// Joining a fleet: the settings that refuse to (exit 2, naming what to
// change) and a real join with user/password credentials on a single NATS
// server, where the buckets fall back to one replica.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const started: Array<{ stop(): Promise<unknown> }> = [];
after(async () => { for (const s of started.reverse()) await s.stop(); });

const serve = (...args: string[]) => runCli(['serve', '--listen', '127.0.0.1:0', '--admin', 'off', ...args]);

test('a fleet beyond loopback without credentials is refused at start-up (exit 2)', async () => {
  const r = await serve('--fleet', 'nats://192.0.2.1:4222');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--fleet: nats:\/\/192\.0\.2\.1:4222 is beyond loopback; give NATS credentials with --fleet-creds FILE/);
});

test('a loopback fleet without credentials needs --fleet-insecure-loopback', async () => {
  const r = await serve('--fleet', 'nats://127.0.0.1:4222');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /or --fleet-insecure-loopback/);
});

test('a server that is not nats://host:port and an unreadable credentials file are named', async () => {
  const bad = await serve('--fleet', 'http://127.0.0.1:4222', '--fleet-insecure-loopback');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"http:\/\/127\.0\.0\.1:4222" is not nats:\/\/host:port/);
  const missing = join(mkdtempSync(join(tmpdir(), 'popsteer-creds-')), 'none.creds');
  const creds = await serve('--fleet', 'nats://127.0.0.1:4222', '--fleet-creds', missing);
  assert.equal(creds.code, 2, creds.stderr);
  assert.ok(creds.stderr.includes(missing) && creds.stderr.includes('--fleet-creds: cannot read: ENOENT'), creds.stderr);
});

test('popsteer.yaml fleet: mapping; an unknown key under it is named with its line', async () => {
  const config = copyExampleConfig();
  writeFileSync(join(config, 'popsteer.yaml'), 'fleet:\n  servers: [nats://127.0.0.1:4222]\n  insecure_loopback: true\n  replicas: 3\n');
  const r = await serve('--config', config);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /popsteer\.yaml:4:.*unknown setting "fleet\.replicas"/);
});

test('joins with user/password credentials on a single NATS server; a drain applies', async () => {
  const hub: NatsCluster = await startNatsCluster({ size: 1, auth: { user: 'popsteer', password: 's3cret-fleet' } });
  started.push(hub);
  const creds = join(mkdtempSync(join(tmpdir(), 'popsteer-creds-')), 'fleet.creds');
  writeFileSync(creds, '# the fleet user\npopsteer:s3cret-fleet\n', { mode: 0o600 });
  const server: StartedServer = await startServer({ env: { POPSTEER_ADMIN_TOKEN: 't' }, args: ['--pop', 'ams', '--fleet', hub.urls, '--fleet-creds', creds, '--fleet-name', 'authtest'] });
  started.push(server);
  await server.waitForLog((l) => l.msg === 'fleet: following overrides and instances', 60_000);
  const answer = await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops/lhr/drain`, {
    method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'with credentials' }),
  });
  assert.equal(answer.status, 200, await answer.clone().text());
  const fleet = await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/fleet`)).json() as { name: string; overrides: Array<{ subject: string; reason: string }> };
  assert.equal(fleet.name, 'authtest');
  assert.deepEqual(fleet.overrides.map((o) => [o.subject, o.reason]), [['lhr', 'with credentials']]);
  assert.ok(server.logs.some((l) => l.msg === 'fleet: three replicas impossible here (a single NATS server?); the bucket is created with one'));
});
