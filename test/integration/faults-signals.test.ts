// Signals to the real server process. SIGTERM: report unfit, keep answering
// UDP and open TCP connections through the drain time, then close every
// socket (idle TCP connections do not hold the exit) and exit 0 within the
// drain time plus a small bound. A second SIGTERM exits at once. SIGHUP
// reloads: an edit that no file watch sees (the policy file is a symlink to a
// file elsewhere) takes effect after SIGHUP and not before.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startServer } from '../helpers/server.ts';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { TestDnsClient } from '../helpers/dns-client.ts';
import { TcpDnsConnection } from '../conformance/clients.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';

const DRAIN_MS = 1500;
/** Closing workers and the admin server after the drain. */
const CLOSE_BOUND_MS = 2500;

test('SIGTERM: answers through the drain time, closes idle TCP connections, exits 0 in time', async (t) => {
  const server = await startServer({ admin: false, args: ['--drain-ms', String(DRAIN_MS)] });
  const client = new TestDnsClient(server.dnsPort);
  const idle = await TcpDnsConnection.open(server.dnsPort);
  const busy = await TcpDnsConnection.open(server.dnsPort);
  try {
    const exited = once(server.process, 'exit');
    const signalled = performance.now();
    server.process.kill('SIGTERM');
    await server.waitForLog((l) => l.msg === 'shutting down: unfit for anycast, draining');
    // Inside the drain time: UDP and an open TCP connection are still answered.
    const udp = await client.query('www.cdn.example', 'A');
    assert.equal(udp.rcode, 'NOERROR');
    busy.send(query('www.cdn.example', TYPE.A, { id: 77 }));
    const tcpReply = await busy.next(1000);
    assert.ok(tcpReply, 'a query on an open TCP connection is answered during the drain');
    assert.equal(readReply(tcpReply).id, 77);
    assert.ok(performance.now() - signalled < DRAIN_MS, 'those answers came inside the drain time');

    const [code] = await exited;
    const tookMs = performance.now() - signalled;
    t.diagnostic(`exit ${Math.round(tookMs)} ms after SIGTERM with --drain-ms ${DRAIN_MS}`);
    assert.equal(code, 0);
    assert.ok(tookMs >= DRAIN_MS - 50, `kept serving for the drain time: exited after ${Math.round(tookMs)} ms`);
    assert.ok(tookMs < DRAIN_MS + CLOSE_BOUND_MS, `exited ${Math.round(tookMs)} ms after SIGTERM (drain ${DRAIN_MS} ms)`);
    assert.ok(await idle.closesWithin(100), 'the idle TCP connection was closed, not left hanging');
    assert.ok(server.logs.some((l) => l.msg === 'stopped'));
  } finally {
    client.close();
    idle.close();
    busy.close();
    await server.stop();
  }
});

test('a second SIGTERM exits at once, without waiting for the drain', async (t) => {
  const server = await startServer({ admin: false, args: ['--drain-ms', '30000'] });
  try {
    const exited = once(server.process, 'exit');
    server.process.kill('SIGTERM');
    await server.waitForLog((l) => l.msg === 'shutting down: unfit for anycast, draining');
    const second = performance.now();
    server.process.kill('SIGTERM');
    const [code] = await exited;
    t.diagnostic(`exit ${Math.round(performance.now() - second)} ms after the second SIGTERM`);
    assert.ok(performance.now() - second < 1000, `exited ${Math.round(performance.now() - second)} ms after the second SIGTERM`);
    assert.notEqual(code, 0, 'an interrupted drain is not a clean exit');
  } finally {
    await server.stop('SIGKILL');
  }
});

test('SIGHUP reloads: an edit no file watch sees applies after SIGHUP', async () => {
  const config = copyExampleConfig();
  // The policy file is a symlink to a file in another directory: editing it raises no event in steering/.
  const elsewhere = mkdtempSync(join(tmpdir(), 'popsteer-policy-'));
  const real = join(elsewhere, 'www.yaml');
  const link = join(config, 'steering', 'www.yaml');
  writeFileSync(real, readFileSync(link));
  rmSync(link);
  symlinkSync(real, link);
  const server = await startServer({ admin: false, args: ['--config', config] });
  const client = new TestDnsClient(server.dnsPort);
  const ttlOf = async (): Promise<number> => {
    const reply = await client.query('www.cdn.example', 'A');
    return (reply.answers![0] as { ttl: number }).ttl;
  };
  try {
    assert.equal(await ttlOf(), 60);
    writeFileSync(real, readFileSync(real, 'utf8').replace('ttl: 60', 'ttl: 42'));
    // Give a (wrong) watch every chance to fire: a debounce is 150 ms; ask again after a few round trips.
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(await ttlOf(), 60, 'no reload without SIGHUP');
    server.process.kill('SIGHUP');
    const reloaded = await server.waitForLog((l) => l.msg === 'configuration reloaded');
    assert.equal(reloaded.reason, 'SIGHUP');
    assert.equal(await ttlOf(), 42);
  } finally {
    client.close();
    await server.stop();
  }
});
