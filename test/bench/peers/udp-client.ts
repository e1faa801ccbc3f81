// A minimal UDP DNS client for the harness: one socket, one query in flight,
// a timeout per query. Used for readiness, start-up time and the agreement check.

import { createSocket, type Socket } from 'node:dgram';

export interface UdpClient {
  /** Sends `packet` (its ID is overwritten) and resolves with the response, or null on timeout. */
  ask(packet: Buffer, timeoutMs: number): Promise<Buffer | null>;
  close(): void;
}

export async function openUdpClient(port: number, host = '127.0.0.1'): Promise<UdpClient> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  let nextId = 1;
  let pending: { id: number; resolve: (r: Buffer | null) => void; timer: NodeJS.Timeout } | null = null;
  socket.on('message', (message) => {
    if (pending && message.length >= 12 && message.readUInt16BE(0) === pending.id) {
      clearTimeout(pending.timer);
      const { resolve } = pending;
      pending = null;
      resolve(message);
    }
  });
  return {
    ask(packet, timeoutMs) {
      const id = nextId;
      nextId = (nextId % 0xffff) + 1;
      const copy = Buffer.from(packet);
      copy.writeUInt16BE(id, 0);
      return new Promise((resolve) => {
        const timer = setTimeout(() => { pending = null; resolve(null); }, timeoutMs);
        pending = { id, resolve, timer };
        socket.send(copy, port, host);
      });
    },
    close() {
      if (pending) clearTimeout(pending.timer);
      socket.close();
    },
  };
}

/**
 * Sends `packet` every `intervalMs` until a response arrives or `deadlineMs`
 * passes; resolves with the time of the first response (performance.now()),
 * or null. Readiness of a server is only observable by its answering.
 */
export async function waitForFirstAnswer(port: number, packet: Buffer, deadlineMs: number, intervalMs = 10): Promise<number | null> {
  const client = await openUdpClient(port);
  const giveUpAt = performance.now() + deadlineMs;
  try {
    while (performance.now() < giveUpAt) {
      const response = await client.ask(packet, intervalMs);
      if (response) return performance.now();
    }
    return null;
  } finally {
    client.close();
  }
}
