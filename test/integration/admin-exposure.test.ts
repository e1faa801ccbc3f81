// The admin port as something a hostile neighbour can reach, against the real
// server: the Host check that defeats DNS rebinding (IP literals, localhost
// and listed names are served; any other name gets 421 and no data), the
// header deadline for a half-sent request, the connection cap with its
// counts, HTTPS with a certificate and key from files (and `popsteer anycast`
// asking its fitness question over it, verified), and the token checked
// before the body is even read.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { selfSignedCertificate } from '../fixtures/health/targets.ts';
import { askAdminFitness } from '../../server/anycast/fitness-probe.ts';
import { parseAnycastOptions } from '../../server/anycast/options.ts';

const TIMEOUT_MS = 600;
/** Only catches "never". */
const NEVER_MS = 10_000;
const CAP = 8;
const TOKEN = 'exposure-test-token';

let server: StartedServer;

before(async () => {
  server = await startServer({
    args: ['--admin-hosts', 'pop1.ops.example', '--admin-timeout-ms', String(TIMEOUT_MS), '--admin-max-connections', String(CAP)],
    env: { POPSTEER_ADMIN_TOKEN: TOKEN },
  });
});
after(async () => { await server?.stop(); });

interface Answer { status: number; body: string }

/** One request with exactly the Host header given (fetch would not let a test send a foreign one). */
function ask(path: string, host: string | null, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    const req = httpRequest({ host: '127.0.0.1', port: server.adminPort!, path, method: options.method ?? 'GET', headers, agent: false, setHost: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    if (host !== null) req.setHeader('host', host);
    req.on('error', reject);
    req.end(options.body);
  });
}

test('DNS rebinding: a foreign Host gets 421 and no data; IP literals, localhost and listed names are served', async () => {
  const port = server.adminPort!;
  for (const host of ['rebind.attacker.example', `rebind.attacker.example:${port}`, 'localhost.attacker.example', '127.0.0.1.nip.io']) {
    for (const path of ['/v1/pops', '/metrics', '/']) {
      const answer = await ask(path, host);
      assert.equal(answer.status, 421, `${host} ${path}`);
      assert.equal(JSON.parse(answer.body).error, 'misdirected_request');
      assert.doesNotMatch(answer.body, /lhr|popsteer_dns/, 'nothing of the API in the refusal');
    }
  }
  for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `[::1]:${port}`, `localhost:${port}`, 'LOCALHOST', `pop1.ops.example:${port}`, 'POP1.ops.example.']) {
    const answer = await ask('/v1/pops', host);
    assert.equal(answer.status, 200, `${host}: ${answer.body.slice(0, 200)}`);
  }
  // HTTP/1.0 without Host names no foreign host (browsers always send one): served.
  const socket = connect({ port, host: '127.0.0.1' });
  let raw = '';
  socket.on('data', (d) => { raw += String(d); });
  await once(socket, 'connect');
  socket.end('GET /healthz HTTP/1.0\r\n\r\n');
  await once(socket, 'close');
  assert.match(raw, /^HTTP\/1\.1 200/, raw.split('\r\n')[0]);
});

test('auth comes before the body: no token and no body is 401, not 400', async () => {
  for (const [what, options] of [
    ['no body', {}],
    ['empty JSON body', { headers: { 'content-type': 'application/json' }, body: '' }],
    ['malformed body', { headers: { 'content-type': 'application/json' }, body: '{"reason":' }],
    ['form body', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'reason=x' }],
  ] as const) {
    const answer = await ask('/v1/pops/lhr/drain', '127.0.0.1', { method: 'POST', ...options });
    assert.equal(answer.status, 401, `${what}: ${answer.body}`);
    assert.equal(JSON.parse(answer.body).error, 'unauthorized');
  }
});

test('a half-sent request is closed at the header deadline', async () => {
  const socket = connect({ port: server.adminPort!, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const sent = performance.now();
  socket.write('GET /v1/pops HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Still-Typing: ');
  let received = '';
  socket.on('data', (d) => { received += String(d); });
  const closed = await Promise.race([once(socket, 'close').then(() => performance.now() - sent), new Promise<null>((r) => setTimeout(() => r(null), NEVER_MS).unref())]);
  assert.notEqual(closed, null, 'closed by the server');
  assert.match(received, /^HTTP\/1\.1 408/, 'with 408 Request Timeout');
  assert.ok(closed! >= TIMEOUT_MS - 50, `not before the deadline: ${Math.round(closed!)} ms (timeout ${TIMEOUT_MS} ms)`);
});

test(`at the cap (${CAP}) the connection waiting longest makes room; a request in progress is never cut`, async () => {
  const idle = [];
  for (let i = 0; i < CAP * 3; i++) {
    const socket = connect({ port: server.adminPort!, host: '127.0.0.1' });
    socket.on('error', () => {});
    socket.resume();
    await once(socket, 'connect');
    idle.push(socket);
  }
  try {
    // A real request still gets through, answered in full.
    const answer = await ask('/v1/fitness', '127.0.0.1');
    assert.equal(answer.status, 200, answer.body);
    assert.equal(JSON.parse(answer.body).fit, true);
    const closedOld = await Promise.all(idle.slice(0, CAP * 2).map((s) => (s.closed ? true : Promise.race([once(s, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), NEVER_MS).unref())]))));
    assert.ok(closedOld.every(Boolean), 'the oldest waiting connections were closed to make room');
    const metrics = (await ask('/metrics', '127.0.0.1')).body;
    const evicted = Number(/^popsteer_admin_connections_shed_total\{action="evicted"[^}]*\} (\S+)/m.exec(metrics)?.[1]);
    assert.ok(evicted >= CAP * 2, `evictions counted: ${evicted}`);
    assert.match(metrics, new RegExp(`^popsteer_connection_limit\\{listener="admin"[^}]*\\} ${CAP}$`, 'm'));
  } finally {
    for (const s of idle) s.destroy();
  }
});

test('HTTPS with --admin-tls-cert/--admin-tls-key: served over TLS, plain HTTP gets nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-admin-tls-'));
  const certificate = selfSignedCertificate('localhost');
  writeFileSync(join(dir, 'cert.pem'), certificate.cert);
  writeFileSync(join(dir, 'key.pem'), certificate.key, { mode: 0o600 });
  const tls = await startServer({ admin: true, args: ['--admin-tls-cert', join(dir, 'cert.pem'), '--admin-tls-key', join(dir, 'key.pem')] });
  try {
    const listening = tls.logs.find((l) => l.msg === 'admin HTTP listening');
    assert.equal(listening?.tls, true);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: tls.adminPort!, path: '/v1/fitness', servername: 'localhost', ca: certificate.cert, agent: false }, (res) => {
        let text = '';
        res.on('data', (d) => { text += String(d); });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(JSON.parse(body).fit, true);
    const plain = await fetch(`http://127.0.0.1:${tls.adminPort}/v1/fitness`).then((r) => r.status, (err: Error) => err.message);
    assert.notEqual(plain, 200, 'no plain HTTP on the TLS port');
    // `popsteer anycast --admin-ca cert.pem` asks its fitness question over HTTPS, verified.
    const options = parseAnycastOptions(['--admin', `127.0.0.1:${tls.adminPort}`, '--dns', `127.0.0.1:${tls.dnsPort}`, '--prefix', '192.0.2.53/32', '--admin-ca', join(dir, 'cert.pem')]);
    assert.deepEqual(await askAdminFitness({ ...options.admin, tls: options.adminTls }, 10_000), { reasons: [], pop: 'ams' });
    const unverified = await askAdminFitness({ ...options.admin, tls: { ca: selfSignedCertificate('localhost').cert, servername: 'localhost' } }, 10_000);
    assert.match(unverified.reasons.join(), /admin API unreachable/, 'a certificate it cannot verify is unfit, not trusted');
  } finally {
    await tls.stop();
  }
});
