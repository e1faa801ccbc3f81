// Is an address already served by another process? The DNS workers bind with
// SO_REUSEPORT so that they can share one port; the kernel lets any other
// process of the same user join that group just as silently, and then splits
// the queries between two servers that may disagree (one drained, one not).
// So before binding, the address is tried once without SO_REUSEPORT: that
// bind fails with EADDRINUSE exactly when some socket already holds it. The
// trial sockets are closed at once; what is left is the moment between this
// check and the workers' bind.

import { createSocket } from 'node:dgram';
import { createServer, isIPv6 } from 'node:net';

/** 'udp' or 'tcp' when another socket holds host:port for that protocol, else null (other bind errors are the real bind's to report). */
export async function addressInUse(host: string, port: number, protocols: ReadonlyArray<'udp' | 'tcp'> = ['udp', 'tcp']): Promise<'udp' | 'tcp' | null> {
  for (const protocol of protocols) {
    const code = protocol === 'udp' ? await tryUdp(host, port) : await tryTcp(host, port);
    if (code === 'EADDRINUSE') return protocol;
  }
  return null;
}

function tryUdp(host: string, port: number): Promise<string | null> {
  return new Promise((resolveCode) => {
    // As udp.ts binds: an IPv6 address for IPv6 only.
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: isIPv6(host) });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      try {
        socket.close();
      } catch { /* never bound */ }
      resolveCode(err.code ?? err.message);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolveCode(null)));
  });
}

function tryTcp(host: string, port: number): Promise<string | null> {
  return new Promise((resolveCode) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolveCode(err.code ?? err.message));
    // As tcp.ts listens: an IPv6 wildcard takes IPv4 too.
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolveCode(null)));
  });
}
