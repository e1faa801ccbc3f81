// UDP listener. Each worker binds its own socket with SO_REUSEPORT, so the
// kernel spreads datagrams over the workers without a hand-off. Batched
// system calls (udp-batch.ts) when the native module is built, dgram otherwise.

import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { PROTO_UDP, type Peer, type Responder } from './handler.ts';
import { listenUdpBatched, nativeUdp, nativeUdpUnavailable } from './udp-batch.ts';

export interface UdpListener {
  port: number;
  /** 'batch' (recvmmsg/sendmmsg) or 'dgram'. */
  io: UdpIo;
  close(): Promise<void>;
}

/** How UDP datagrams are read and written: 'auto' = batch when the native module loads, else dgram. */
type UdpIoSetting = 'auto' | 'batch' | 'dgram';
export type UdpIo = 'batch' | 'dgram';

/** What 'auto' resolves to here, and why when it is dgram. */
export function resolveUdpIo(setting: UdpIoSetting): { io: UdpIo; reason: string } {
  if (setting === 'dgram') return { io: 'dgram', reason: 'udp_io: dgram' };
  if (nativeUdp() !== null) return { io: 'batch', reason: '' };
  if (setting === 'batch') throw new Error(`udp_io: batch, but the native module does not load (${nativeUdpUnavailable()}); run \`make native\``);
  return { io: 'dgram', reason: `native module not loaded: ${nativeUdpUnavailable()}` };
}

export function listenUdp(host: string, port: number, responder: Responder, onError: (err: Error) => void,
  io: UdpIo = 'dgram'): Promise<UdpListener> {
  const native = io === 'batch' ? nativeUdp() : null;
  if (native !== null) {
    try {
      const listener = listenUdpBatched(native, host, port, isIPv6(host), responder, onError);
      return Promise.resolve({ port: listener.port, io: 'batch', close: listener.close });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
  return listenDgram(host, port, responder, onError);
}

/**
 * Replies always go to the literal address a datagram came from, so the
 * name lookup dgram would run before every send (dns.lookup, a regular
 * expression and a deferred callback per reply) is replaced by a direct call.
 */
function literalAddress(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, typeof family === 'number' ? family : isIPv6(address) ? 6 : 4);
}

function listenDgram(host: string, port: number, responder: Responder, onError: (err: Error) => void): Promise<UdpListener> {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reusePort: true, ipv6Only: isIPv6(host), lookup: literalAddress });
  const peer: Peer = { address: '', family: 0, port: 0 };
  socket.on('message', (msg, rinfo) => {
    peer.address = rinfo.address;
    peer.family = rinfo.family === 'IPv6' ? 1 : 0;
    peer.port = rinfo.port;
    let size: number;
    try {
      size = responder.answer(msg, msg.length, PROTO_UDP, peer);
    } catch (err) {
      // A bug, never bad input (the parser does not throw): report it and keep serving.
      onError(err as Error);
      return;
    }
    if (size === 0) return;
    // dgram sends asynchronously: the reply needs a Buffer of its own.
    const reply = Buffer.allocUnsafe(size);
    responder.reply.copy(reply, 0, 0, size);
    socket.send(reply, rinfo.port, rinfo.address);
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
        port: socket.address().port,
        io: 'dgram',
        close: () => new Promise<void>((done) => socket.close(() => done())),
      });
    });
  });
}
