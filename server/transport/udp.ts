// UDP listener. Each worker binds its own socket with SO_REUSEPORT, so the
// kernel spreads datagrams over the workers without a hand-off.

import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { PROTO_UDP, type MessageHandler, type Peer } from './handler.ts';

export interface UdpListener {
  socket: Socket;
  port: number;
  close(): Promise<void>;
}

/**
 * Replies always go to the literal address a datagram came from, so the
 * name lookup dgram would run before every send (dns.lookup, a regular
 * expression and a deferred callback per reply) is replaced by a direct call.
 */
function literalAddress(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, typeof family === 'number' ? family : isIPv6(address) ? 6 : 4);
}

export function listenUdp(host: string, port: number, handler: MessageHandler, onError: (err: Error) => void): Promise<UdpListener> {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reusePort: true, ipv6Only: isIPv6(host), lookup: literalAddress });
  const peer: Peer = { address: '', family: 0 };
  socket.on('message', (msg, rinfo) => {
    peer.address = rinfo.address;
    peer.family = rinfo.family === 'IPv6' ? 1 : 0;
    let reply: Buffer | null;
    try {
      reply = handler(msg, msg.length, PROTO_UDP, peer);
    } catch (err) {
      // A bug, never bad input (the parser does not throw): report it and keep serving.
      onError(err as Error);
      return;
    }
    if (reply !== null) socket.send(reply, rinfo.port, rinfo.address);
  });
  return new Promise((resolvePromise, reject) => {
    const onBindError = (err: Error): void => reject(err);
    socket.once('error', onBindError);
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.off('error', onBindError);
      socket.on('error', onError);
      // Generous socket buffers absorb bursts while the worker is busy.
      try {
        socket.setRecvBufferSize(4 * 1024 * 1024);
        socket.setSendBufferSize(4 * 1024 * 1024);
      } catch { /* the kernel's limit applies */ }
      resolvePromise({
        socket,
        port: socket.address().port,
        close: () => new Promise<void>((done) => socket.close(() => done())),
      });
    });
  });
}
