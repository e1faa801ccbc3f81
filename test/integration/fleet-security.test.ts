// The fleet on a locked-down NATS cluster (README "Running a fleet",
// credentials and TLS): a real 3-server JetStream cluster that speaks only
// TLS (a CA and a server certificate made with openssl in a temporary
// directory) and lets each PoP's user publish heartbeats under its own PoP
// only, read the buckets, write overrides and loads, and nothing else
// (no stream created, purged or deleted). Two instances (lhr, ams) join with
// tls://, --fleet-ca and their own user: heartbeats, a drain and a load go
// through. The server itself refuses a heartbeat written by lhr's user under
// ams's key, and a client without the CA cannot connect at all.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { connect, usernamePasswordAuthenticator, type NatsConnection } from 'nats';
import { startNatsCluster, type NatsCluster, type NatsPermissions, retryWhileElecting } from '../helpers/nats.ts';
import { fleetViewWhen } from '../helpers/fleet-view.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const TOKEN = 'fleet-security-token';
const WAIT_MS = 60_000;
const FLEET = 'popsteer';
const BUCKETS = ['overrides', 'instances', 'observations', 'revisions', 'load'].map((b) => `KV_${FLEET}-${b}`);
const POPS = ['lhr', 'ams'];
const password = (user: string): string => `${user}-secret`;

/**
 * What one PoP's instances may do (the README's NATS configuration, word for
 * word): read every popsteer bucket through the JetStream API, write
 * overrides and loads, and heartbeats and probe observations under their own
 * PoP only.
 */
function instancePermissions(pop: string): NatsPermissions {
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        ...BUCKETS.flatMap((s) => [
          `$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`,
          `$JS.API.CONSUMER.CREATE.${s}`, `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.DELETE.${s}.>`, `$JS.API.CONSUMER.INFO.${s}.>`,
          `$JS.FC.${s}.>`,
        ]),
        `$KV.${FLEET}-overrides.>`, `$KV.${FLEET}-load.>`, `$KV.${FLEET}-instances.${pop}.>`, `$KV.${FLEET}-observations.${pop}.>`,
      ],
    },
    subscribe: { allow: ['_INBOX.>'] },
  };
}

let dir: string;
let hub: NatsCluster;
let servers: StartedServer[] = [];
let ca: string;

async function openssl(...args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsteer-fleet-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=popsteer test CA');
  await openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  ca = join(dir, 'ca.pem');
  hub = await startNatsCluster({
    tls: { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') },
    users: [{ user: 'admin', password: password('admin') }, ...POPS.map((pop) => ({ user: pop, password: password(pop), permissions: instancePermissions(pop) }))],
  });
  // The buckets are made by the fleet's administrator (an instance may not create streams).
  const admin = await client('admin');
  const js = admin.jetstream();
  await retryWhileElecting(() => js.views.kv(`${FLEET}-overrides`, { history: 64, replicas: 3 }));
  await retryWhileElecting(() => js.views.kv(`${FLEET}-instances`, { history: 1, replicas: 3, ttl: 24 * 3600 * 1000 }));
  await retryWhileElecting(() => js.views.kv(`${FLEET}-observations`, { history: 1, replicas: 3, ttl: 24 * 3600 * 1000 }));
  await retryWhileElecting(() => js.views.kv(`${FLEET}-revisions`, { history: 1, replicas: 3 }));
  await retryWhileElecting(() => js.views.kv(`${FLEET}-load`, { history: 16, replicas: 3 }));
  await admin.close();
  servers = await Promise.all(POPS.map((pop) => {
    const creds = join(dir, `${pop}.creds`);
    writeFileSync(creds, `${pop}:${password(pop)}\n`);
    return startServer({ env: { POPSTEER_ADMIN_TOKEN: TOKEN }, args: ['--pop', pop, '--fleet', hub.urls, '--fleet-creds', creds, '--fleet-ca', ca] });
  }));
  await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS)));
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await hub?.stop();
});

function client(user: string): Promise<NatsConnection> {
  return connect({ servers: hub.urls.split(','), authenticator: usernamePasswordAuthenticator(user, password(user)), tls: { caFile: ca }, maxReconnectAttempts: 0 });
}

type FleetView = { connected: boolean; instances: Array<{ pop: string; connected: boolean }>; loads: Array<{ pop: string; load: number }> };

test('over TLS with a user per PoP: heartbeats, a drain and a load go through', async () => {
  // Heartbeats come every 2 s: wait for both.
  const view = await fleetViewWhen<FleetView>(servers[1], (v) => v.instances.length === 2);
  assert.equal(view.connected, true);
  assert.deepEqual(view.instances.map((i) => [i.pop, i.connected]), [['ams', true], ['lhr', true]]);

  const drain = await fetch(`http://127.0.0.1:${servers[0].adminPort}/v1/pops/mad/drain`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'locked down' }),
  });
  assert.equal(drain.status, 200, await drain.clone().text());
  await servers[1].waitForLog((l) => l.msg === 'fleet: override applied' && l.subject === 'mad' && l.reason === 'locked down', WAIT_MS);

  const load = await fetch(`http://127.0.0.1:${servers[1].adminPort}/v1/load`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ pop: 'fra', load: 0.5 }),
  });
  assert.equal(load.status, 200, await load.clone().text());
  await servers[0].waitForLog((l) => l.msg === 'fleet: declared load applied' && l.pop === 'fra' && l.load === 0.5, WAIT_MS);
});

test('a heartbeat or an observation under another PoP\'s identity is refused by the server; under its own it is taken', async () => {
  const nc = await client('lhr');
  const kv = await nc.jetstream({ timeout: 5000 }).views.kv(`${FLEET}-instances`);
  const forged = await kv.put('ams.forged', new TextEncoder().encode('{}')).then(() => null, (err: Error & { code?: string; permissionContext?: unknown }) => err);
  assert.equal(forged?.code, 'PERMISSIONS_VIOLATION', forged?.message);
  const context = forged?.permissionContext as { operation: string; subject: string } | undefined;
  assert.deepEqual([context?.operation, context?.subject], ['publish', `$KV.${FLEET}-instances.ams.forged`]);
  const own = await kv.put('lhr.checked', new TextEncoder().encode('{}'));
  assert.ok(own > 0);
  // The same for probe observations: the verdict counts lhr's user only for lhr's instances.
  const observations = await nc.jetstream({ timeout: 5000 }).views.kv(`${FLEET}-observations`);
  const forgedObservation = await observations.put('ams.forged.dGFyZ2V0', new TextEncoder().encode('{}')).then(() => null, (err: Error & { code?: string }) => err);
  assert.equal(forgedObservation?.code, 'PERMISSIONS_VIOLATION', forgedObservation?.message);
  // Neither may it create, purge or delete a stream.
  await assert.rejects(nc.jetstream({ timeout: 5000 }).views.kv(`${FLEET}-other`, { replicas: 3 }));
  await nc.close();

  const admin = await client('admin');
  const instances = await admin.jetstream().views.kv(`${FLEET}-instances`);
  assert.equal(await instances.get('ams.forged'), null, 'nothing was written under ams');
  assert.notEqual(await instances.get('lhr.checked'), null);
  await admin.close();
});

test('a client that does not know the CA cannot connect; an unreadable --fleet-ca stops start-up (exit 2)', async () => {
  await assert.rejects(connect({ servers: hub.urls.split(','), authenticator: usernamePasswordAuthenticator('admin', password('admin')), maxReconnectAttempts: 0 }));
  const missing = join(dir, 'missing-ca.pem');
  const r = await runCli(['serve', '--listen', '127.0.0.1:0', '--admin', 'off', '--pop', 'lhr', '--fleet', hub.urls, '--fleet-creds', join(dir, 'lhr.creds'), '--fleet-ca', missing, '--state-file', join(dir, 'state.json')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*--fleet-ca: cannot read: ENOENT`));
});
