// Raw DNS clients for tests: send exactly the bytes given over UDP or TCP and
// hand back exactly the bytes received. Every wait is bounded by a timeout and
// driven by socket events.

import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';

export class Timeout extends Error {}

/** Sends `packets` from one fresh UDP socket and resolves with the first datagram back (null after `timeoutMs`). */
export async function udpFirstReply(port: number, packets: Uint8Array[], timeoutMs = 2000, host = '127.0.0.1'): Promise<Buffer | null> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const reply = new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      socket.once('message', (msg) => { clearTimeout(timer); resolve(msg); });
    });
    for (const packet of packets) await new Promise<void>((resolve, reject) => socket.send(packet, port, host, (err) => (err ? reject(err) : resolve())));
    return await reply;
  } finally {
    socket.close();
  }
}

/** One TCP connection speaking RFC 1035 §4.2.2 framing; replies are queued as they arrive. */
export class TcpDnsConnection {
  readonly socket: Socket;
  private pending = Buffer.alloc(0);
  private readonly replies: Buffer[] = [];
  private readonly waiters: Array<(reply: Buffer | null) => void> = [];
  closed = false;
  readonly closedAt: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 2 && this.pending.length >= 2 + this.pending.readUInt16BE(0)) {
        const length = this.pending.readUInt16BE(0);
        const reply = Buffer.from(this.pending.subarray(2, 2 + length));
        this.pending = this.pending.subarray(2 + length);
        const waiter = this.waiters.shift();
        if (waiter) waiter(reply);
        else this.replies.push(reply);
      }
    });
    socket.on('error', () => { /* a reset by the server shows up as 'close' */ });
    this.closedAt = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0)) waiter(null);
      resolve();
    }));
  }

  static async open(port: number, host = '127.0.0.1'): Promise<TcpDnsConnection> {
    const socket = connect({ port, host, noDelay: true });
    await once(socket, 'connect');
    return new TcpDnsConnection(socket);
  }

  /** Writes one framed message (or raw bytes with `framed` false). */
  send(packet: Uint8Array, framed = true): void {
    if (!framed) {
      this.socket.write(packet);
      return;
    }
    const frame = Buffer.alloc(packet.length + 2);
    frame.writeUInt16BE(packet.length, 0);
    frame.set(packet, 2);
    this.socket.write(frame);
  }

  /** The next reply, or null when the connection closes or `timeoutMs` passes first. */
  next(timeoutMs = 2000): Promise<Buffer | null> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(deliver);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, timeoutMs);
      const deliver = (reply: Buffer | null): void => { clearTimeout(timer); resolve(reply); };
      this.waiters.push(deliver);
    });
  }

  /** Resolves true when the server closes the connection within `timeoutMs`. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const result = await Promise.race([this.closedAt.then(() => true), timedOut]);
    clearTimeout(timer);
    return result;
  }

  close(): void {
    this.socket.destroy();
  }
}
