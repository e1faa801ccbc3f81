// Connection limits of the admin HTTP server. The admin port answers
// without a token for reads, so anyone who can reach it can open
// connections; each one is a descriptor of the process that also runs the
// DNS listeners and the health probes. So the admin server holds at most
// `max` connections.
//
// At the cap, one connection that has no request in progress (half-sent
// headers, an idle keep-alive, a TLS handshake never finished) is closed to
// make room: the longest-waiting one of the peer address that holds the most
// connections. A flood from a few addresses then displaces only itself,
// while a client with one connection — `popsteer anycast` polling
// /v1/fitness, a Prometheus scrape — is not evicted between its accept and
// its request, however many flood connections the kernel hands over in the
// same turn of the event loop. With every connection busy, the newcomer is
// refused. Deadlines (header, request and keep-alive timeouts, set on the
// server) close the rest.
//
// Connections are keyed by the peer's address and port: the raw socket seen
// at accept and the TLS socket a request arrives on share them.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';

interface AdminConnectionStats {
  open: number;
  /** Closed at the cap to make room for a new one. */
  evicted: number;
  /** Refused at the cap, every connection having a request in progress. */
  refused: number;
}

interface Peer {
  /** Open connections from this address. */
  open: number;
  /** Its connections without a request in progress, the longest waiting first, by key. */
  waiting: Map<string, Socket>;
}

/** Caps the server's connections; returns live statistics for metrics. */
export function limitConnections(server: Server, max: number): () => AdminConnectionStats {
  const open = new Map<string, Socket>();
  const peers = new Map<string, Peer>();
  let evicted = 0;
  let refused = 0;

  const peerOf = (address: string): Peer => {
    let peer = peers.get(address);
    if (peer === undefined) {
      peer = { open: 0, waiting: new Map() };
      peers.set(address, peer);
    }
    return peer;
  };

  const forget = (address: string, key: string): void => {
    open.delete(key);
    const peer = peers.get(address)!;
    peer.waiting.delete(key);
    if (--peer.open === 0) peers.delete(address);
  };

  const makeRoom = (): boolean => {
    let heaviest: Peer | null = null;
    let heaviestAddress = '';
    for (const [address, peer] of peers) {
      if (peer.waiting.size > 0 && (heaviest === null || peer.open > heaviest.open)) {
        heaviest = peer;
        heaviestAddress = address;
      }
    }
    if (heaviest === null) return false;
    const [key, socket] = heaviest.waiting.entries().next().value!;
    forget(heaviestAddress, key);
    socket.destroy();
    evicted++;
    return true;
  };

  server.on('connection', (socket: Socket) => {
    if (open.size >= max && !makeRoom()) {
      refused++;
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    const key = `${address}|${socket.remotePort}`;
    const peer = peerOf(address);
    peer.open++;
    peer.waiting.set(key, socket);
    open.set(key, socket);
    socket.once('close', () => {
      if (open.get(key) === socket) forget(address, key); // else evicted: already forgotten
    });
  });

  server.on('request', (req, res) => {
    const address = req.socket.remoteAddress ?? '';
    const key = `${address}|${req.socket.remotePort}`;
    const socket = open.get(key);
    if (socket === undefined) return;
    peers.get(address)!.waiting.delete(key);
    res.once('finish', () => {
      // Waiting again (keep-alive): to the back of the line.
      if (open.get(key) === socket && !socket.destroyed) peers.get(address)!.waiting.set(key, socket);
    });
  });

  return () => ({ open: open.size, evicted, refused });
}
