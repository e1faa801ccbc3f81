// The batched UDP listener (native recvmmsg/sendmmsg) over real loopback
// sockets: every datagram answered to its own sender, bursts larger than a
// batch, IPv6, oversized datagrams dropped, a throwing responder contained,
// and the port released on close. `make test` builds the native module, so
// it must load here.

import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { PROTO_UDP, type Peer, type Responder } from '../../../server/transport/handler.ts';
import { listenUdpBatched, nativeUdp, nativeUdpUnavailable } from '../../../server/transport/udp-batch.ts';
import { listenUdp, resolveUdpIo } from '../../../server/transport/udp.ts';

/** Replies "<sender address>|<protocol>|<message>"; throws on a message "boom". */
class EchoResponder implements Responder {
  readonly reply = Buffer.alloc(4096);
  readonly seen: string[] = [];
  answer(message: Uint8Array, length: number, protocol: number, peer: Peer): number {
    const text = Buffer.from(message.buffer, message.byteOffset, length).toString();
    if (text === 'boom') throw new Error('responder failed');
    this.seen.push(peer.address);
    return this.reply.write(`${peer.address}|${peer.family}|${protocol}|${text}`);
  }
}

async function client(type: 'udp4' | 'udp6', host: string): Promise<Socket> {
  const socket = createSocket(type);
  socket.bind(0, host);
  await once(socket, 'listening');
  return socket;
}

/** Sends each message and collects `count` replies (or fails after 3 s). */
async function exchange(socket: Socket, port: number, host: string, messages: string[], count = messages.length): Promise<string[]> {
  const replies: string[] = [];
  const done = new Promise<void>((resolveDone, reject) => {
    const timer = setTimeout(() => reject(new Error(`${replies.length} of ${count} replies within 3 s`)), 3000);
    socket.on('message', (m) => {
      replies.push(m.toString());
      if (replies.length === count) {
        clearTimeout(timer);
        resolveDone();
      }
    });
  });
  for (const m of messages) socket.send(m, port, host);
  await done;
  return replies;
}

test('the native module is built and auto selects it', () => {
  assert.ok(nativeUdp(), `native module: ${nativeUdpUnavailable()}`);
  assert.equal(resolveUdpIo('auto').io, 'batch');
  assert.equal(resolveUdpIo('dgram').io, 'dgram');
});

test('a burst of 350 datagrams from three senders: each answered once, to its sender', async () => {
  const responder = new EchoResponder();
  const errors: Error[] = [];
  const listener = await listenUdp('127.0.0.1', 0, responder, (e) => errors.push(e), 'batch');
  assert.equal(listener.io, 'batch');
  const senders = await Promise.all([client('udp4', '127.0.0.1'), client('udp4', '127.0.0.2'), client('udp4', '127.0.0.3')]);
  try {
    const results = await Promise.all(senders.map((s, k) => {
      const messages = Array.from({ length: k === 0 ? 150 : 100 }, (_, i) => `q${k}-${i}`);
      return exchange(s, listener.port, '127.0.0.1', messages);
    }));
    for (let k = 0; k < senders.length; k++) {
      const expectedAddress = `127.0.0.${k + 1}`;
      const expected = Array.from({ length: k === 0 ? 150 : 100 }, (_, i) => `${expectedAddress}|0|${PROTO_UDP}|q${k}-${i}`);
      assert.deepEqual([...results[k]].sort(), [...expected].sort(), `sender ${expectedAddress}`);
    }
    assert.deepEqual(errors, []);
  } finally {
    for (const s of senders) s.close();
    await listener.close();
  }
});

test('IPv6: the sender is reported by its RFC 5952 text', async () => {
  const responder = new EchoResponder();
  const listener = await listenUdp('::1', 0, responder, () => {}, 'batch');
  const sender = await client('udp6', '::1');
  try {
    assert.deepEqual(await exchange(sender, listener.port, '::1', ['six']), [`::1|1|${PROTO_UDP}|six`]);
  } finally {
    sender.close();
    await listener.close();
  }
});

test('an oversized datagram is dropped, a throwing responder is reported, and the next query is answered', async () => {
  const responder = new EchoResponder();
  const errors: Error[] = [];
  const listener = await listenUdp('127.0.0.1', 0, responder, (e) => errors.push(e), 'batch');
  const sender = await client('udp4', '127.0.0.1');
  try {
    const replies = await exchange(sender, listener.port, '127.0.0.1', ['x'.repeat(5000), 'boom', 'after'], 1);
    assert.deepEqual(replies, [`127.0.0.1|0|${PROTO_UDP}|after`]);
    assert.equal(errors.length, 1);
    assert.match(errors[0].message, /responder failed/);
  } finally {
    sender.close();
    await listener.close();
  }
});

test('close releases the port: it can be bound again at once', async () => {
  const first = await listenUdp('127.0.0.1', 0, new EchoResponder(), () => {}, 'batch');
  const port = first.port;
  await first.close();
  await first.close(); // idempotent
  const plain = createSocket('udp4');
  plain.bind(port, '127.0.0.1');
  await once(plain, 'listening');
  plain.close();
});

test('a port taken without SO_REUSEPORT is refused with the reason', async () => {
  const holder = createSocket('udp4');
  holder.bind(0, '127.0.0.1');
  await once(holder, 'listening');
  try {
    await assert.rejects(listenUdp('127.0.0.1', holder.address().port, new EchoResponder(), () => {}, 'batch'), /bind: Address already in use/);
  } finally {
    holder.close();
  }
});

test('replies are never fragmented: DF set and path-MTU information ignored, IPv4 and IPv6 (RFC 9715 §3.1)', () => {
  const native = nativeUdp()!;
  for (const [host, ipv6] of [['127.0.0.1', false], ['::1', true]] as const) {
    const listener = listenUdpBatched(native, host, 0, ipv6, new EchoResponder(), () => {});
    try {
      assert.deepEqual(listener.fragmentation(), { mtuDiscover: 'probe', dontFragment: true }, host);
    } finally {
      void listener.close();
    }
  }
});
