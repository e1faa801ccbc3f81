// DNS over TCP (RFC 7766) and hostile input against the real server:
// pipelining, the per-connection query cap, idle and half-sent-message
// timeouts, length 0, slowloris, the connection cap (the oldest idle
// connection makes room while UDP keeps answering), and floods of random
// bytes followed by a good query that must be answered.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { CONFORMANCE_CONFIG } from '../conformance/cases.ts';
import { TcpDnsConnection, udpFirstReply } from '../conformance/clients.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';

const IDLE_MS = 600;
const MESSAGE_MS = 800;
const MAX_QUERIES = 5;
const CAP = 50;

/** Short timeouts for the timing tests. */
let quick: StartedServer;
/** Long timeouts and a small connection cap for the cap test. */
let capped: StartedServer;

before(async () => {
  const base = ['--config', CONFORMANCE_CONFIG, '--workers', '1'];
  [quick, capped] = await Promise.all([
    startServer({ admin: false, args: [...base, '--tcp-idle-timeout-ms', String(IDLE_MS), '--tcp-message-timeout-ms', String(MESSAGE_MS), '--tcp-max-queries', String(MAX_QUERIES)] }),
    startServer({ admin: false, args: [...base, '--tcp-idle-timeout-ms', '30000', '--tcp-message-timeout-ms', '30000', '--tcp-max-connections', String(CAP)] }),
  ]);
});
after(async () => { await Promise.all([quick?.stop(), capped?.stop()]); });

const ask = (id: number, name = 'www.cdn.example', type: number = TYPE.A): Uint8Array => query(name, type, { id });

test('pipelined queries on one connection are all answered, each with its own ID', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  try {
    const ids = [101, 102, 103, 104];
    // All four in one write: the server must split the stream into messages itself.
    conn.send(Buffer.concat(ids.map((id, i) => {
      const q = ask(id, i % 2 === 0 ? 'www.cdn.example' : 'long-txt.cdn.example', i % 2 === 0 ? TYPE.A : TYPE.TXT);
      return Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
    })), false);
    const seen: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const reply = await conn.next();
      assert.ok(reply, `reply ${i + 1} of ${ids.length}`);
      const r = readReply(reply);
      assert.equal(r.rcode, 0);
      assert.equal(r.tc, false, 'no truncation over TCP');
      seen.push(r.id);
    }
    assert.deepEqual(seen.sort(), ids);
  } finally {
    conn.close();
  }
});

test(`after ${MAX_QUERIES} queries the server closes the connection, having answered them`, async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  for (let i = 0; i < MAX_QUERIES + 2; i++) conn.send(ask(200 + i));
  let answered = 0;
  while ((await conn.next()) !== null) answered++;
  assert.equal(answered, MAX_QUERIES);
  assert.ok(await conn.closesWithin(1000));
});

test('an idle connection is closed after the idle timeout, not before', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  conn.send(ask(300));
  assert.ok(await conn.next(), 'answered first');
  const started = Date.now();
  assert.ok(await conn.closesWithin(IDLE_MS + 3000), 'closed by the server');
  assert.ok(Date.now() - started >= IDLE_MS - 100, `closed after ${Date.now() - started} ms, idle timeout ${IDLE_MS} ms`);
});

test('a length of 0 closes the connection at once', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  conn.send(Uint8Array.of(0, 0), false);
  assert.ok(await conn.closesWithin(IDLE_MS / 2), 'closed well before the idle timeout');
});

test('a length of 65535 followed by silence is closed on the message timeout', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  conn.send(Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(100, 0x41)]), false);
  const started = Date.now();
  assert.ok(await conn.closesWithin(MESSAGE_MS + 3000), 'closed');
  assert.ok(Date.now() - started >= MESSAGE_MS - 100, 'not before the message timeout');
});

test('one byte then silence (slowloris) is closed within a few seconds', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  conn.send(Uint8Array.of(0), false);
  assert.ok(await conn.closesWithin(MESSAGE_MS + 3000));
});

test('a slow sender trickling one message byte by byte is still cut off at the message deadline', async () => {
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  const q = ask(400);
  const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  let sent = 0;
  // One byte every 150 ms would take far longer than the deadline; activity must not reset it.
  const trickle = setInterval(() => { if (sent < frame.length && !conn.closed) conn.send(frame.subarray(sent, ++sent), false); }, 150);
  try {
    assert.ok(await conn.closesWithin(MESSAGE_MS + 3000));
    assert.ok(sent < frame.length, 'closed before the message was complete');
  } finally {
    clearInterval(trickle);
  }
});

test(`with ${CAP * 4} idle connections open: UDP still answers, a fresh connection is served, the oldest idle ones were closed`, async () => {
  const conns: TcpDnsConnection[] = [];
  try {
    for (let i = 0; i < CAP * 4; i++) conns.push(await TcpDnsConnection.open(capped.dnsPort));
    const udp = await udpFirstReply(capped.dnsPort, [ask(500)]);
    assert.ok(udp, 'UDP answered');
    assert.equal(readReply(udp).id, 500);
    const fresh = await TcpDnsConnection.open(capped.dnsPort);
    conns.push(fresh);
    fresh.send(ask(501));
    const reply = await fresh.next();
    assert.ok(reply, 'a fresh TCP connection is served');
    assert.equal(readReply(reply).id, 501);
    // Every connection older than the newest CAP made room (oldest idle first); the newest are still open.
    const evicted = await Promise.all(conns.slice(0, conns.length - CAP).map((c) => c.closesWithin(2000)));
    assert.ok(evicted.every(Boolean), `${evicted.filter((e) => !e).length} old connections were not closed`);
    const open = conns.filter((c) => !c.closed).length;
    assert.ok(open <= CAP, `${open} connections still open, cap ${CAP}`);
    assert.equal(conns[conns.length - 2].closed, false, 'a recent idle connection is kept');
  } finally {
    for (const c of conns) c.close();
  }
});

test('a flood of random datagrams is survived and the next good query answered', async () => {
  const garbage = Array.from({ length: 500 }, (_, i) => randomBytes(1 + (i % 300)));
  const reply = await udpFirstReply(quick.dnsPort, [...garbage.map((g) => { g[2] |= 0x80; return g; }), ask(600)], 3000);
  // QR=1 on every piece of garbage: none may be answered, so the first reply is the good one.
  assert.ok(reply, 'the good query is answered');
  assert.equal(readReply(reply).id, 600);
  // And without the QR bit: replies to garbage may come first, but the good query's answer comes too.
  const conn = await TcpDnsConnection.open(quick.dnsPort);
  try {
    for (let i = 0; i < MAX_QUERIES - 1; i++) conn.send(randomBytes(12 + i * 40));
    conn.send(ask(601));
    let found = false;
    for (let i = 0; i < MAX_QUERIES && !found; i++) {
      const r = await conn.next();
      if (r === null) break;
      if (r.length >= 2 && r.readUInt16BE(0) === 601) found = true;
    }
    assert.ok(found, 'the good query on the same TCP connection is answered');
  } finally {
    conn.close();
  }
});
