// DNS over TCP (RFC 7766): two-byte length framing, pipelined queries answered
// as they complete, an idle timeout, a deadline for a message once it has
// begun (so a slow sender cannot hold a connection), a cap on connections
// (the oldest idle one makes room) and on queries per connection.

import { createServer, type Server, type Socket } from 'node:net';
import { PROTO_TCP, type Peer, type Responder } from './handler.ts';

export interface TcpLimits {
  idleTimeoutMs: number;
  messageTimeoutMs: number;
  maxConnections: number;
  maxQueriesPerConnection: number;
}

/** A client that stops reading is dropped once this much output is queued. */
const MAX_QUEUED_OUTPUT = 1 << 20;

interface Connection {
  socket: Socket;
  chunks: Buffer[];
  buffered: number;
  queries: number;
  /** Time the current partial message began, or 0 when between messages. */
  messageStarted: number;
  lastActivity: number;
  closing: boolean;
}

export interface TcpListener {
  server: Server;
  port: number;
  connectionCount(): number;
  /** Stop accepting; existing connections finish what they have and close. */
  stopAccepting(): Promise<void>;
  close(): Promise<void>;
}

export function listenTcp(host: string, port: number, limits: TcpLimits, responder: Responder,
  onError: (err: Error) => void, onRefused: () => void): Promise<TcpListener> {
  const connections = new Set<Connection>();
  const peer: Peer = { address: '', family: 0, port: 0 };

  const closeConnection = (conn: Connection): void => {
    if (conn.closing) return;
    conn.closing = true;
    connections.delete(conn);
    conn.socket.destroy();
  };

  // One coarse timer enforces both deadlines for every connection.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const conn of connections) {
      if (conn.messageStarted !== 0 && now - conn.messageStarted > limits.messageTimeoutMs) closeConnection(conn);
      else if (conn.messageStarted === 0 && now - conn.lastActivity > limits.idleTimeoutMs) closeConnection(conn);
    }
  }, Math.max(50, Math.min(500, Math.floor(Math.min(limits.idleTimeoutMs, limits.messageTimeoutMs) / 4))));
  sweep.unref();

  const makeRoom = (): boolean => {
    let oldest: Connection | null = null;
    for (const conn of connections) {
      if (conn.messageStarted === 0 && conn.socket.writableLength === 0 && (!oldest || conn.lastActivity < oldest.lastActivity)) oldest = conn;
    }
    if (!oldest) return false;
    closeConnection(oldest);
    return true;
  };

  const onData = (conn: Connection, data: Buffer): void => {
    const now = Date.now();
    conn.lastActivity = now;
    conn.chunks.push(data);
    conn.buffered += data.length;
    if (conn.messageStarted === 0) conn.messageStarted = now;
    while (conn.buffered >= 2 && !conn.closing) {
      if (conn.chunks[0].length < 2) conn.chunks = [Buffer.concat(conn.chunks)];
      const head = conn.chunks[0];
      const length = (head[0] << 8) | head[1];
      if (length === 0) {
        closeConnection(conn);
        return;
      }
      if (conn.buffered < length + 2) return; // wait for the rest, without allocating for it
      const all = conn.chunks.length === 1 ? head : Buffer.concat(conn.chunks);
      const message = all.subarray(2, 2 + length);
      const rest = all.subarray(2 + length);
      conn.chunks = rest.length > 0 ? [rest] : [];
      conn.buffered = rest.length;
      conn.messageStarted = rest.length > 0 ? now : 0;
      peer.address = conn.socket.remoteAddress ?? '';
      peer.family = conn.socket.remoteFamily === 'IPv6' ? 1 : 0;
      peer.port = conn.socket.remotePort ?? 0;
      let size = 0;
      try {
        size = responder.answer(message, length, PROTO_TCP, peer);
      } catch (err) {
        onError(err as Error);
      }
      conn.queries++;
      if (size > 0) {
        const framed = Buffer.allocUnsafe(size + 2);
        framed[0] = size >> 8;
        framed[1] = size & 0xff;
        responder.reply.copy(framed, 2, 0, size);
        conn.socket.write(framed);
        if (conn.socket.writableLength > MAX_QUEUED_OUTPUT) {
          closeConnection(conn);
          return;
        }
      }
      if (conn.queries >= limits.maxQueriesPerConnection) {
        conn.closing = true;
        connections.delete(conn);
        conn.socket.end();
        return;
      }
    }
  };

  const server = createServer({ noDelay: true, allowHalfOpen: false }, (socket) => {
    if (connections.size >= limits.maxConnections && !makeRoom()) {
      onRefused();
      socket.destroy();
      return;
    }
    const conn: Connection = { socket, chunks: [], buffered: 0, queries: 0, messageStarted: 0, lastActivity: Date.now(), closing: false };
    connections.add(conn);
    socket.on('data', (data) => onData(conn, data));
    socket.on('error', () => closeConnection(conn));
    socket.on('close', () => {
      conn.closing = true;
      connections.delete(conn);
    });
    socket.on('end', () => {
      // The client finished sending; answers already written still go out.
      conn.closing = true;
      connections.delete(conn);
      socket.end();
    });
  });

  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen({ host, port, reusePort: true, exclusive: true, backlog: 1024 }, () => {
      server.off('error', reject);
      server.on('error', onError);
      const address = server.address();
      resolvePromise({
        server,
        port: typeof address === 'object' && address ? address.port : port,
        connectionCount: () => connections.size,
        stopAccepting: () => new Promise<void>((done) => server.close(() => done())),
        close: () => new Promise<void>((done) => {
          clearInterval(sweep);
          for (const conn of connections) closeConnection(conn);
          server.close(() => done());
        }),
      });
    });
  });
}
