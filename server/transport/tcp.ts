// DNS over TCP (RFC 7766): two-byte length framing, pipelined queries answered
// as they complete, and limits on everything a client could hold:
//
// - bytes in: at most one message (2 + 65,535 octets) is waited for, plus
//   the rest of one socket read; nothing more is read while replies wait;
// - bytes out: while the client does not read its replies (the socket asks
//   for a drain), no further query is answered and nothing more is read;
// - time: every connection, in every state, has a deadline — idle between
//   messages, a message once begun (a slow sender cannot hold it), and a
//   closing connection (query limit reached, or the client sent FIN) gets
//   half the idle timeout to take its replies before it is reset, so it is
//   gone within the idle timeout whatever the client does;
// - connections: one cap for the whole server, counted in shared slots
//   (slots.ts) by every worker; a socket holds its slot until it has really
//   closed. At the cap the oldest idle connection of this worker makes room;
//   with none idle, the new connection is refused and counted.
//
// A closing connection still reads (and discards) a little, so that a client
// which sent a few queries past the limit has its FIN seen and its socket
// released at once; past DISCARD_LIMIT it is not read at all until its deadline.

import { createServer, type Server, type Socket } from 'node:net';
import { PROTO_TCP, type Peer, type Responder } from './handler.ts';
import type { ConnectionSlots } from './slots.ts';

export interface TcpLimits {
  idleTimeoutMs: number;
  messageTimeoutMs: number;
  maxQueriesPerConnection: number;
}

/** Input read and thrown away once a connection is closing, before reading stops. */
const DISCARD_LIMIT = 64 * 1024;

interface Connection {
  socket: Socket;
  chunks: Buffer[];
  buffered: number;
  queries: number;
  /** When the current partial message began, or 0 when between messages. */
  messageStarted: number;
  /** Last bytes received, or replies taken by the client. */
  lastActivity: number;
  /** When the connection began closing (our end or the client's), or 0 while open. */
  closingSince: number;
  discarded: number;
  /** Waiting for the client to read its replies before answering more. */
  waitingForDrain: boolean;
  /** False once the slot went to the connection that evicted this one. */
  holdsSlot: boolean;
}

export interface TcpListener {
  server: Server;
  port: number;
  /** Sockets of this listener not yet closed (whatever their state). */
  connectionCount(): number;
  /** Stop accepting; existing connections finish what they have and close. */
  stopAccepting(): Promise<void>;
  close(): Promise<void>;
}

interface TcpEvents {
  onError(err: Error): void;
  /** A connection refused at the cap. */
  onRefused(): void;
}

export function listenTcp(host: string, port: number, limits: TcpLimits, slots: ConnectionSlots, responder: Responder,
  events: TcpEvents): Promise<TcpListener> {
  const connections = new TcpConnections(limits, slots, responder, events);
  const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => connections.accept(socket));
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort: true, exclusive: true, backlog: 1024 }, () => {
      server.off('error', reject);
      server.on('error', events.onError);
      const address = server.address();
      resolvePromise({
        server,
        port: typeof address === 'object' && address ? address.port : port,
        connectionCount: () => connections.size,
        stopAccepting: () => new Promise<void>((done) => server.close(() => done())),
        close: () => new Promise<void>((done) => {
          connections.closeAll();
          server.close(() => done());
        }),
      });
    });
  });
}

const now = (): number => performance.now();

/** The connections of one listener: their framing, limits and deadlines. */
class TcpConnections {
  private readonly open = new Set<Connection>();
  /** Reused for every query: who asked. */
  private readonly peer: Peer = { address: '', family: 0, port: 0 };
  private readonly limits: TcpLimits;
  private readonly slots: ConnectionSlots;
  private readonly responder: Responder;
  private readonly events: TcpEvents;
  private readonly sweep: NodeJS.Timeout;

  constructor(limits: TcpLimits, slots: ConnectionSlots, responder: Responder, events: TcpEvents) {
    this.limits = limits;
    this.slots = slots;
    this.responder = responder;
    this.events = events;
    // One coarse timer enforces every deadline of every connection.
    this.sweep = setInterval(() => this.enforceDeadlines(),
      Math.max(50, Math.min(500, Math.floor(Math.min(limits.idleTimeoutMs, limits.messageTimeoutMs) / 4))));
    this.sweep.unref();
  }

  get size(): number {
    return this.open.size;
  }

  accept(socket: Socket): void {
    if (!this.slots.tryTake() && !this.evictOldestIdle()) {
      this.events.onRefused();
      socket.destroy();
      return;
    }
    const conn: Connection = {
      socket, chunks: [], buffered: 0, queries: 0, messageStarted: 0, lastActivity: now(), closingSince: 0, discarded: 0,
      waitingForDrain: false, holdsSlot: true,
    };
    this.open.add(conn);
    socket.on('data', (data: Buffer) => this.onData(conn, data));
    socket.on('error', () => this.destroy(conn));
    // The client finished sending: what was answered still goes out, then our FIN.
    socket.on('end', () => this.finish(conn));
    socket.on('close', () => {
      this.open.delete(conn);
      if (conn.holdsSlot) this.slots.release();
      conn.holdsSlot = false;
    });
  }

  closeAll(): void {
    clearInterval(this.sweep);
    for (const conn of this.open) this.destroy(conn);
  }

  private destroy(conn: Connection): void {
    if (conn.closingSince === 0) conn.closingSince = now();
    conn.chunks = [];
    conn.buffered = 0;
    conn.socket.destroy();
  }

  /**
   * Past a deadline with replies unsent or our FIN unanswered: a reset, so
   * that neither side keeps the connection (no FIN_WAIT2 or unsent data left
   * in the kernel on our side) and the client learns at once.
   */
  private abort(conn: Connection): void {
    if (conn.socket.destroyed) return;
    conn.chunks = [];
    conn.buffered = 0;
    conn.socket.resetAndDestroy();
  }

  /**
   * Ends our side once the replies already written are sent; the deadline
   * covers a client that never takes them. Reading goes on (discarding, up to
   * DISCARD_LIMIT) so that the client's FIN is seen and the socket released.
   */
  private finish(conn: Connection): void {
    if (conn.closingSince !== 0) return;
    conn.closingSince = now();
    conn.chunks = [];
    conn.buffered = 0;
    conn.socket.end();
    conn.socket.resume();
  }

  private deadlineOf(conn: Connection): number {
    if (conn.closingSince !== 0) return conn.closingSince + this.limits.idleTimeoutMs / 2;
    if (conn.messageStarted !== 0 && !conn.waitingForDrain) return conn.messageStarted + this.limits.messageTimeoutMs;
    return conn.lastActivity + this.limits.idleTimeoutMs;
  }

  private enforceDeadlines(): void {
    const at = now();
    for (const conn of this.open) {
      if (at <= this.deadlineOf(conn)) continue;
      if (conn.closingSince !== 0 || conn.waitingForDrain) this.abort(conn);
      else this.destroy(conn);
    }
  }

  /** Closes this worker's oldest idle connection and hands its slot over; false when none is idle. */
  private evictOldestIdle(): boolean {
    let oldest: Connection | null = null;
    for (const conn of this.open) {
      const idle = conn.holdsSlot && conn.closingSince === 0 && conn.messageStarted === 0 && !conn.waitingForDrain && conn.socket.writableLength === 0;
      if (idle && (oldest === null || conn.lastActivity < oldest.lastActivity)) oldest = conn;
    }
    if (oldest === null) return false;
    oldest.holdsSlot = false;
    this.destroy(oldest);
    return true;
  }

  private answerOne(conn: Connection, message: Uint8Array, length: number): void {
    const peer = this.peer;
    peer.address = conn.socket.remoteAddress ?? '';
    peer.family = conn.socket.remoteFamily === 'IPv6' ? 1 : 0;
    peer.port = conn.socket.remotePort ?? 0;
    let size = 0;
    try {
      size = this.responder.answer(message, length, PROTO_TCP, peer);
    } catch (err) {
      this.events.onError(err as Error);
    }
    conn.queries++;
    if (size === 0) return;
    const framed = Buffer.allocUnsafe(size + 2);
    framed[0] = size >> 8;
    framed[1] = size & 0xff;
    this.responder.reply.copy(framed, 2, 0, size);
    conn.socket.write(framed);
  }

  /** Answers every complete message buffered, until the client must read first or the query limit is reached. */
  private answerBuffered(conn: Connection): void {
    while (conn.buffered >= 2 && conn.closingSince === 0) {
      if (conn.socket.writableNeedDrain) {
        this.waitForDrain(conn);
        return;
      }
      if (conn.chunks[0].length < 2) conn.chunks = [Buffer.concat(conn.chunks)];
      const head = conn.chunks[0];
      const length = (head[0] << 8) | head[1];
      if (length === 0) {
        this.destroy(conn);
        return;
      }
      if (conn.buffered < length + 2) return; // wait for the rest, without allocating for it
      const all = conn.chunks.length === 1 ? head : Buffer.concat(conn.chunks);
      const rest = all.subarray(2 + length);
      conn.chunks = rest.length > 0 ? [rest] : [];
      conn.buffered = rest.length;
      conn.messageStarted = rest.length > 0 ? now() : 0;
      this.answerOne(conn, all.subarray(2, 2 + length), length);
      if (conn.queries >= this.limits.maxQueriesPerConnection) this.finish(conn);
    }
  }

  /** Stops reading until the client has taken its replies; the idle deadline runs meanwhile. */
  private waitForDrain(conn: Connection): void {
    if (conn.waitingForDrain) return;
    conn.waitingForDrain = true;
    conn.socket.pause();
    conn.socket.once('drain', () => {
      conn.waitingForDrain = false;
      conn.lastActivity = now();
      this.answerBuffered(conn);
      if (!conn.waitingForDrain && conn.closingSince === 0) conn.socket.resume();
    });
  }

  private onData(conn: Connection, data: Buffer): void {
    if (conn.closingSince !== 0) {
      conn.discarded += data.length;
      if (conn.discarded > DISCARD_LIMIT) conn.socket.pause();
      return;
    }
    const at = now();
    conn.lastActivity = at;
    conn.chunks.push(data);
    conn.buffered += data.length;
    if (conn.messageStarted === 0) conn.messageStarted = at;
    this.answerBuffered(conn);
  }
}
