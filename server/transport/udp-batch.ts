// UDP listener on batched system calls (native/udp_batch.c): up to SLOTS
// datagrams per recvmmsg(2), their replies in one sendmmsg(2), no object or
// Buffer allocated per query. Used when the native module is built (the
// Makefile does); udp.ts falls back to dgram otherwise.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { copyWords, wordView } from '../lib/words.ts';
import { PROTO_UDP, type Peer, type Responder } from './handler.ts';

/** Datagrams per system call. Larger batches stop paying off well before this on two cores. */
const SLOTS = 64;
/** Longest query accepted; a longer datagram is dropped (a DNS query is a few hundred octets). */
const IN_SLOT = 4096;
/** Longest UDP reply: the engine caps UDP at 1232 octets (writer.ts udpSizeLimit). */
const OUT_SLOT = 2048;
/** Batches handled per wake-up before the event loop gets a turn (timers, snapshots, TCP). */
const BATCHES_PER_TURN = 16;

interface NativeUdp {
  open(host: string, port: number, ipv6: boolean, slots: number, inSlot: number, outSlot: number,
    inBuf: Uint8Array, names: Uint8Array, lengths: Int32Array, outBuf: Uint8Array, onReadable: () => void): [unknown, number];
  receive(handle: unknown): number;
  send(handle: unknown, count: number): number;
  sourceText(handle: unknown, slot: number): string;
  fragmentation(handle: unknown): { mtuDiscover: string; dontFragment: boolean };
  close(handle: unknown): void;
  /** malloc_trim(0): returns freed heap memory to the kernel. */
  releaseFreeMemory(): boolean;
  NAME_SLOT: number;
}

const NATIVE_MODULE_PATH = fileURLToPath(new URL('../../build/udp_batch.node', import.meta.url));

let nativeModule: NativeUdp | null | undefined;
let loadError = '';

/** The native module, or null (with the reason in `nativeUdpUnavailable()`) when it is not built or does not load. */
export function nativeUdp(): NativeUdp | null {
  if (nativeModule === undefined) {
    try {
      nativeModule = createRequire(import.meta.url)(NATIVE_MODULE_PATH) as NativeUdp;
    } catch (err) {
      nativeModule = null;
      loadError = (err as Error).message.split('\n')[0];
    }
  }
  return nativeModule;
}

export function nativeUdpUnavailable(): string {
  return loadError;
}

interface BatchUdpListener {
  port: number;
  /** The socket's path-MTU mode and DF setting, as the kernel reports them. */
  fragmentation(): { mtuDiscover: string; dontFragment: boolean };
  close(): Promise<void>;
}

export function listenUdpBatched(native: NativeUdp, host: string, port: number, ipv6: boolean,
  responder: Responder, onError: (err: Error) => void): BatchUdpListener {
  const nameSlot = native.NAME_SLOT;
  const inBuf = new Uint8Array(SLOTS * IN_SLOT);
  const names = new Uint8Array(SLOTS * nameSlot);
  const lengths = new Int32Array(SLOTS);
  const outBuf = Buffer.alloc(SLOTS * OUT_SLOT);
  const queries: Uint8Array[] = [];
  for (let i = 0; i < SLOTS; i++) queries.push(inBuf.subarray(i * IN_SLOT, (i + 1) * IN_SLOT));
  const peer: Peer = { address: '', family: 0, port: 0 };
  const copyReply = replyCopier(responder.reply, outBuf);
  const sources = new SourceAddresses(names, nameSlot, (slot) => native.sourceText(handle, slot));
  let closed = false;
  let handle: unknown = null;

  const drain = (): void => {
    for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
      const count = native.receive(handle);
      if (count === 0) return;
      for (let i = 0; i < count; i++) {
        const length = lengths[i];
        lengths[i] = 0;
        if (length < 0) continue;
        peer.family = sources.read(i);
        peer.address = sources.address;
        peer.port = sources.port(i);
        let size: number;
        try {
          size = responder.answer(queries[i], length, PROTO_UDP, peer);
        } catch (err) {
          // A bug, never bad input (the parser does not throw): report it and keep serving.
          onError(err as Error);
          continue;
        }
        if (size === 0) continue;
        if (size > OUT_SLOT) {
          onError(new Error(`UDP reply of ${size} octets exceeds the ${OUT_SLOT}-octet slot`));
          continue;
        }
        copyReply(i * OUT_SLOT, size);
        lengths[i] = size;
      }
      native.send(handle, count);
      if (count < SLOTS) return;
    }
  };

  // Called by the event loop when the socket is readable. Whatever is still
  // queued after BATCHES_PER_TURN reports again on the loop's next turn.
  const onReadable = (): void => {
    if (closed) return;
    try {
      drain();
    } catch (err) {
      onError(err as Error);
    }
  };

  const opened = native.open(host, port, ipv6, SLOTS, IN_SLOT, OUT_SLOT, inBuf, names, lengths, outBuf, onReadable);
  handle = opened[0];
  return {
    port: opened[1],
    fragmentation: () => native.fragmentation(handle),
    close: () => {
      if (!closed) {
        closed = true;
        native.close(handle);
      }
      return Promise.resolve();
    },
  };
}

/**
 * Copies a reply of `size` octets from `reply` to `out` at `at`, by words
 * (lib/words.ts) when both buffers are word-aligned, else by Buffer.copy.
 */
function replyCopier(reply: Buffer, out: Buffer): (at: number, size: number) => void {
  const from = wordView(reply);
  const to = wordView(out);
  if (from === null || to === null) return (at, size) => { reply.copy(out, at, 0, size); };
  // `at` is a multiple of OUT_SLOT and size ≤ OUT_SLOT: the rounded-up words stay inside both buffers and the slot.
  return (at, size) => copyWords(from, 0, to, at >> 2, size);
}

/**
 * The text address the engine takes, for the struct sockaddr the kernel wrote
 * for each datagram. Queries arrive from a small set of resolvers, so the text
 * of the last address seen is reused while the bytes repeat; only a new
 * address costs a call for its text.
 */
class SourceAddresses {
  address = '';
  private readonly names: Uint8Array;
  private readonly slot: number;
  private readonly last = new Uint8Array(16);
  private lastFamily = -1;
  private readonly textOf: (slot: number) => string;

  constructor(names: Uint8Array, slot: number, textOf: (slot: number) => string) {
    this.names = names;
    this.slot = slot;
    this.textOf = textOf;
  }

  /** Slot i's source port (sin_port and sin6_port sit at the same offset, in network order). */
  port(i: number): number {
    const base = i * this.slot;
    return (this.names[base + 2] << 8) | this.names[base + 3];
  }

  /** Reads slot i's source; sets `address`, returns the family (0 = IPv4, 1 = IPv6). */
  read(i: number): number {
    const base = i * this.slot;
    const names = this.names;
    // sa_family is in host order: 2 = AF_INET, 10 = AF_INET6 on Linux.
    const family = (names[base] | (names[base + 1] << 8)) === 10 ? 1 : 0;
    const start = base + (family === 1 ? 8 : 4);
    const size = family === 1 ? 16 : 4;
    const last = this.last;
    let same = family === this.lastFamily;
    for (let k = 0; same && k < size; k++) same = last[k] === names[start + k];
    if (same) return family;
    for (let k = 0; k < size; k++) last[k] = names[start + k];
    this.lastFamily = family;
    this.address = this.textOf(i);
    return family;
  }
}
