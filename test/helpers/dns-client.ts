// A small DNS client for tests: one UDP socket, many queries in flight matched
// by ID, ECS per query; decoding by dns-packet (an independent codec).

import { createSocket, type Socket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface QueryOptions {
  /** ECS client subnet, e.g. "81.2.69.0/24". */
  subnet?: string;
  timeoutMs?: number;
  edns?: boolean;
}

export type Decoded = dnsPacket.DecodedPacket & { rcode?: string };

/** An answer record as decoded (dns-packet's types model OPT separately). */
export type DecodedRecord = { type: string; name: string; ttl: number; data: unknown };

export function records(p: Decoded): DecodedRecord[] {
  return (p.answers ?? []) as unknown as DecodedRecord[];
}

export class TestDnsClient {
  private readonly socket: Socket;
  private readonly pending = new Map<number, { resolve: (p: Decoded) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private readonly port: number;
  private readonly host: string;

  /** `localAddress` sends from that address (e.g. 127.0.0.2, a resolver elsewhere on loopback). */
  constructor(port: number, host = '127.0.0.1', localAddress?: string) {
    this.port = port;
    this.host = host;
    this.socket = createSocket('udp4');
    // Sends made before the bind completes are queued by dgram.
    if (localAddress) this.socket.bind({ address: localAddress, port: 0 });
    this.socket.on('message', (msg) => {
      const id = msg.readUInt16BE(0);
      const waiter = this.pending.get(id);
      if (!waiter) return;
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      try {
        waiter.resolve(dnsPacket.decode(msg) as Decoded);
      } catch (err) {
        waiter.reject(err as Error);
      }
    });
  }

  query(name: string, type: dnsPacket.RecordType = 'A', options: QueryOptions = {}): Promise<Decoded> {
    let id = this.nextId;
    do {
      id = (id % 65535) + 1;
    } while (this.pending.has(id));
    this.nextId = id;
    const additionals: dnsPacket.Answer[] = [];
    if (options.edns !== false) {
      const ednsOptions: Array<Record<string, unknown>> = [];
      if (options.subnet) {
        const [ip, length] = options.subnet.split('/');
        const family = ip.includes(':') ? 2 : 1;
        ednsOptions.push({ code: 'CLIENT_SUBNET', family, sourcePrefixLength: Number(length), scopePrefixLength: 0, ip } as never);
      }
      additionals.push({ type: 'OPT', name: '.', udpPayloadSize: 1232, options: ednsOptions } as never);
    }
    const packet = dnsPacket.encode({ type: 'query', id, flags: 0, questions: [{ type, name }], additionals });
    return new Promise((resolve, reject) => {
      // The verdict waits until the replies already received are read: after
      // this process was busy (a large synchronous file write in a test), Node
      // runs due timers before it reads the socket, and a reply that came in
      // time would count as lost.
      const timer = setTimeout(() => setImmediate(() => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        reject(new Error(`timeout: ${name} ${type} ${options.subnet ?? ''}`));
      }), options.timeoutMs ?? 3000);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(packet, this.port, this.host);
    });
  }

  /** Runs queries with at most `concurrency` in flight. */
  async queryAll<T>(items: T[], make: (item: T) => Promise<Decoded>, concurrency = 64): Promise<Decoded[]> {
    const out = new Array<Decoded>(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const i = next++;
        out[i] = await make(items[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
    return out;
  }

  close(): void {
    for (const w of this.pending.values()) clearTimeout(w.timer);
    this.pending.clear();
    this.socket.close();
  }
}

/** The first A/AAAA address in an answer, or the CNAME target, or null. */
export function firstAnswer(p: Decoded): string | null {
  const a = (p.answers ?? []).find((r) => r.type === 'A' || r.type === 'AAAA' || r.type === 'CNAME') as { data?: unknown } | undefined;
  return a ? String(a.data) : null;
}

/** The ECS option of a reply, if any. */
export function replyEcs(p: Decoded): { sourcePrefixLength: number; scopePrefixLength: number; ip: string } | null {
  const opt = (p.additionals ?? []).find((r) => r.type === 'OPT') as unknown as { options?: Array<Record<string, unknown>> } | undefined;
  const ecs = opt?.options?.find((o) => o.code === 8 || o.type === 'CLIENT_SUBNET');
  return ecs ? { sourcePrefixLength: Number(ecs.sourcePrefixLength), scopePrefixLength: Number(ecs.scopePrefixLength), ip: String(ecs.ip) } : null;
}
