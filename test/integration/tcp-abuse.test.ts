// TCP clients that try to hold the server's memory or its descriptors, against
// the real server with short configured deadlines:
//
// - a client that reaches the query limit and then streams up to 1 GiB: the
//   server stops reading, its memory stays flat, and the connection is gone
//   within the idle timeout;
// - connections lingering after the query limit (the client never reads or
//   closes) and half-closed ones (the client sent FIN and never reads a
//   large backlog of replies): each holds its slot of the server-wide cap
//   until the server has closed it — a connection beyond the cap is refused
//   and counted — and each is closed within its deadline.
//
// "Within the deadline" is an event (the socket's close) bounded by a
// generous limit that only catches "never".

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { TcpDnsConnection } from '../conformance/clients.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';
import { residentBytes } from '../soak/dnsperf-once.ts';

const IDLE_MS = 1500;
/** Only catches a connection that is never closed. */
/**
 * Deadlines for the cap tests: setting up CAP misbehaving connections must fit
 * inside them (or the first would be closed before the last is open), and on a
 * loaded 2-core machine that takes seconds, so they get more room than IDLE_MS.
 */
const CAP_DEADLINE_MS = 6000;
const NEVER_MS = CAP_DEADLINE_MS + 10_000;
const STREAM_BYTES = 1024 * 1024 * 1024;
const RSS_GROWTH_LIMIT = 20 * 1024 * 1024;
const CAP = 6;

const framed = (packet: Uint8Array): Buffer => Buffer.concat([Buffer.from([packet.length >> 8, packet.length & 0xff]), packet]);

async function metric(server: StartedServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line ? Number(line.split(' ').pop()) : Number.NaN;
}

/** Resolves with the milliseconds until `socket` closes, or null after `limitMs`. */
async function closesAfter(socket: Socket, since: number, limitMs: number): Promise<number | null> {
  if (socket.closed) return performance.now() - since;
  let timer: NodeJS.Timeout | undefined;
  // Not events.once: it rejects on the 'error' (a reset) that comes before 'close'.
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - since)));
  const never = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), limitMs); });
  const result = await Promise.race([closed, never]);
  clearTimeout(timer);
  return result;
}

/** Collects the IDs of framed replies on `socket`; the function returned resolves once `count` have come. */
function replyIds(socket: Socket): (count: number) => Promise<number[]> {
  let pending = Buffer.alloc(0);
  const ids: number[] = [];
  let waiter: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      ids.push(pending.readUInt16BE(2));
      pending = pending.subarray(2 + pending.readUInt16BE(0));
    }
    waiter?.();
  });
  return (count) => new Promise((resolve, reject) => {
    const check = (): void => { if (ids.length >= count) resolve(ids.slice(0, count)); };
    waiter = check;
    socket.once('close', () => reject(new Error(`closed after ${ids.length} of ${count} replies`)));
    check();
  });
}

/** Resolves when the socket can take more, or is gone (a reset is not an error here). */
function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

test('streaming 1 GiB past the query limit: reading stops, memory stays flat, the connection closes within the idle timeout', async (t) => {
  const server = await startServer({ admin: false, args: ['--tcp-max-queries', '5', '--tcp-idle-timeout-ms', String(IDLE_MS)] });
  // A client that ignores the server's FIN and keeps sending (allowHalfOpen).
  const socket = connect({ port: server.dnsPort, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => { /* the server's reset shows as close */ });
  await once(socket, 'connect');
  try {
    const pid = server.process.pid!;
    const before = residentBytes(pid);
    const replies = replyIds(socket);
    for (let i = 0; i < 5; i++) socket.write(framed(query('www.cdn.example', TYPE.A, { id: i + 1 })));
    assert.deepEqual(await replies(5), [1, 2, 3, 4, 5], 'the 5 allowed queries are answered');
    const limitReached = performance.now();

    // Well-formed queries past the limit, as fast as the server takes them.
    const chunk = Buffer.concat(Array.from({ length: 16384 }, (_, i) => framed(query('www.cdn.example', TYPE.A, { id: i & 0xffff }))));
    let written = 0;
    while (written < STREAM_BYTES && !socket.destroyed) {
      written += chunk.length;
      if (!socket.write(chunk)) await drainedOrClosed(socket);
    }
    const closedAfter = await closesAfter(socket, limitReached, NEVER_MS);
    const growth = residentBytes(pid) - before;
    const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
    t.diagnostic(`client wrote ${mib(written)} MiB after the limit; connection closed ${closedAfter === null ? 'never' : `${Math.round(closedAfter)} ms`} after the 5th reply (idle timeout ${IDLE_MS} ms); server VmRSS growth ${mib(growth)} MB`);
    assert.notEqual(closedAfter, null, 'the server closed the connection');
    assert.ok(growth < RSS_GROWTH_LIMIT, `VmRSS grew ${mib(growth)} MB (limit ${mib(RSS_GROWTH_LIMIT)} MB)`);
    assert.ok(written < STREAM_BYTES, `the server stopped reading: the client could write only ${mib(written)} MiB`);
  } finally {
    socket.destroy();
    await server.stop();
  }
});

/** Polls the server's open-connection gauge (a state change, bounded) until it reads `count`; the milliseconds it took, or null. */
async function gaugeReaches(server: StartedServer, count: number, since: number, limitMs: number): Promise<number | null> {
  while (performance.now() - since < limitMs) {
    if (await metric(server, 'popsteer_dns_tcp_connections') === count) return performance.now() - since;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}

/**
 * Opens CAP connections that each misbehave through `misbehave` (which
 * returns once the server has answered on it, so it was accepted), then
 * checks that they hold every slot, that one more is refused and counted,
 * and that the server closes them all within the deadline.
 */
async function capAndDeadlines(t: { diagnostic(text: string): void }, server: StartedServer, what: string,
  misbehave: (socket: Socket) => Promise<void>): Promise<void> {
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < CAP; i++) {
      const socket = connect({ port: server.dnsPort, host: '127.0.0.1', allowHalfOpen: true });
      socket.on('error', () => { /* the server's reset shows as close */ });
      await once(socket, 'connect');
      sockets.push(socket);
      await misbehave(socket);
    }
    const since = performance.now();
    // Every slot held by a connection that is not idle: the next one is refused, and counted.
    const extra = await TcpDnsConnection.open(server.dnsPort);
    extra.send(query('www.cdn.example', TYPE.A, { id: 9 }));
    assert.equal(await extra.next(NEVER_MS), null, 'a connection beyond the cap gets no answer');
    assert.ok(extra.closed, 'and is closed');
    assert.equal(await metric(server, 'popsteer_dns_tcp_connections_refused_total'), 1, 'the refusal is counted');
    assert.equal(await metric(server, 'popsteer_dns_tcp_connections'), CAP, `${what} connections hold their slots`);

    const allClosed = await gaugeReaches(server, 0, since, NEVER_MS);
    t.diagnostic(`${what}: ${CAP} connections at a cap of ${CAP} across 2 workers, one more refused; all closed by the server ${allClosed === null ? 'never' : `within ${Math.round(allClosed)} ms`} (idle timeout ${CAP_DEADLINE_MS} ms)`);
    assert.notEqual(allClosed, null, `the server still holds ${await metric(server, 'popsteer_dns_tcp_connections')} ${what} connections`);
    // The clients see it too, once they look: reading meets the reset, and so does writing after the server's FIN.
    for (const socket of sockets) {
      socket.resume();
      if (!socket.writableEnded) socket.write(Uint8Array.of(0));
    }
    const seen = await Promise.all(sockets.map((socket) => closesAfter(socket, since, NEVER_MS)));
    assert.ok(seen.every((ms) => ms !== null), 'every client socket was closed by the server');

    // Their slots are free again: a new client is served.
    const fresh = await TcpDnsConnection.open(server.dnsPort);
    try {
      fresh.send(query('www.cdn.example', TYPE.A, { id: 10 }));
      const reply = await fresh.next(NEVER_MS);
      assert.ok(reply, 'a new connection is answered once the misbehaving ones are gone');
      assert.equal(readReply(reply).id, 10);
    } finally {
      fresh.close();
    }
  } finally {
    for (const s of sockets) s.destroy();
  }
}

/** Resolves once `socket` has received at least `bytes` octets. */
async function received(socket: Socket, bytes: number): Promise<void> {
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen < bytes) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${seen} of ${bytes} octets`)));
  });
}

test(`connections lingering after the query limit count against the server-wide cap (${CAP}, two workers) and are closed within the idle timeout`, async (t) => {
  const server = await startServer({
    workers: 2,
    args: ['--tcp-max-queries', '2', '--tcp-max-connections', String(CAP), '--tcp-idle-timeout-ms', String(CAP_DEADLINE_MS), '--tcp-message-timeout-ms', String(CAP_DEADLINE_MS)],
  });
  try {
    await capAndDeadlines(t, server, 'lingering', async (socket) => {
      // Both allowed queries; the server answers and ends its side. The client takes the replies but never closes.
      const ended = once(socket, 'end');
      socket.resume();
      socket.write(Buffer.concat([framed(query('www.cdn.example', TYPE.A, { id: 1 })), framed(query('www.cdn.example', TYPE.A, { id: 2 }))]));
      await ended;
    });
  } finally {
    await server.stop();
  }
});

test('half-closed connections with replies they never read count against the cap and are closed within the idle timeout', async (t) => {
  const server = await startServer({
    workers: 2,
    args: ['--tcp-max-connections', String(CAP), '--tcp-idle-timeout-ms', String(CAP_DEADLINE_MS), '--tcp-message-timeout-ms', String(CAP_DEADLINE_MS), '--tcp-max-queries', '1000000'],
  });
  try {
    // 100,000 queries for a 600-byte TXT answer: some 60 MB of replies, far more than the kernel's socket buffers take.
    const backlog = Buffer.concat(Array.from({ length: 100_000 }, (_, i) => framed(query('long-txt.cdn.example', TYPE.TXT, { id: i & 0xffff }))));
    await capAndDeadlines(t, server, 'half-closed', async (socket) => {
      const answered = received(socket, 1);
      socket.end(backlog); // FIN after the queries
      await answered;
      socket.pause(); // and not one more octet read
    });
  } finally {
    await server.stop();
  }
});
