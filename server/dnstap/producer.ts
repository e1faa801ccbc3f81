// The DNS worker's side of dnstap: after a query is answered, one AUTH_QUERY
// and one AUTH_RESPONSE frame (each selectable, a sampled share of queries)
// are encoded straight into this worker's ring for the writer thread. The
// query path never waits: a full ring drops the frame and counts it. Nothing
// here allocates per query: the exchange, the extra field and the address
// bytes are reused objects.

import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseAddressInto } from '../lib/address.ts';
import { DecisionExtra, type DecisionLabels, type DnstapDecision } from './extra.ts';
import { AUTH_QUERY, AUTH_RESPONSE, DnstapExchange, INET, INET6, SOCKET_TCP, SOCKET_UDP } from './message.ts';
import { RingProducer } from './ring.ts';
import { SLEEPING } from './control.ts';

export type { DecisionLabels, DnstapDecision };

/** What main hands each DNS worker (structured-cloneable). */
export interface DnstapWorkerConfig {
  ring: SharedArrayBuffer;
  /** Shared with the writer thread (control.ts): whether it sleeps and needs a wake-up. */
  control: SharedArrayBuffer;
  identity: string;
  version: string;
  queries: boolean;
  responses: boolean;
  /** Share of queries logged, (0, 1]. */
  sample: number;
  /** The worker's listen addresses, in the order of its listeners. */
  listen: Array<{ host: string; port: number }>;
}

/** 1 in how many queries is logged for a share in (0, 1]. */
function sampleEvery(share: number): number {
  return Math.max(1, Math.round(1 / share));
}

export class DnstapProducer {
  private readonly ring: RingProducer;
  private readonly control: Int32Array;
  private readonly exchange = new DnstapExchange();
  private readonly extra: DecisionExtra;
  private readonly queries: boolean;
  private readonly responses: boolean;
  private readonly every: number;
  private countdown: number;
  private readonly locals: Array<{ family: number; address: Uint8Array; length: number; port: number }>;
  private lastPeer = '';
  private lastPeerFamily = INET;
  /** performance.timeOrigin, read once: performance.now() + this = wall-clock milliseconds. */
  private readonly timeOrigin = performance.timeOrigin;

  constructor(config: DnstapWorkerConfig, labels: (policy: number, rule: number, endpoint: number) => DecisionLabels) {
    this.ring = new RingProducer(config.ring);
    this.control = new Int32Array(config.control);
    this.exchange.identity = Buffer.from(config.identity, 'utf8');
    this.exchange.version = Buffer.from(config.version, 'utf8');
    this.extra = new DecisionExtra(labels);
    this.queries = config.queries;
    this.responses = config.responses;
    this.every = sampleEvery(config.sample);
    this.countdown = 1;
    this.locals = config.listen.map(({ host, port }) => localAddress(host, port));
  }

  /** A new policy set: decision labels are looked up again (policy, rule and endpoint indexes changed). */
  relabel(labels: (policy: number, rule: number, endpoint: number) => DecisionLabels): void {
    this.extra.relabel(labels);
  }

  /** Whether this query is one to log (a countdown, no random number); call once per query. */
  sample(): boolean {
    if (--this.countdown > 0) return false;
    this.countdown = this.every;
    return true;
  }

  /**
   * Logs one exchange. `startedMs` is performance.now() when the query
   * arrived; `responseLength` 0 means nothing was sent (only the query is logged).
   */
  log(query: Uint8Array, queryLength: number, tcp: boolean, peerAddress: string, peerPort: number, listener: number,
    startedMs: number, response: Uint8Array, responseLength: number, decision: DnstapDecision): void {
    const exchange = this.exchange;
    this.fillPeer(exchange, peerAddress, peerPort);
    const local = this.locals[listener];
    exchange.protocol = tcp ? SOCKET_TCP : SOCKET_UDP;
    exchange.responseAddressLength = local.family === exchange.family ? local.length : 0;
    for (let i = 0; i < exchange.responseAddressLength; i++) exchange.responseAddress[i] = local.address[i];
    exchange.responsePort = local.port;
    const origin = this.timeOrigin;
    setTime(exchange, true, origin + startedMs);
    setTime(exchange, false, origin + performance.now());
    exchange.query = query;
    exchange.queryLength = queryLength;
    exchange.response = response;
    exchange.responseLength = responseLength;
    const extraLength = decision.policy >= 0
      ? this.extra.write(decision, exchange.family === INET ? 4 : 6, exchange.queryAddress) : 0;
    exchange.extra = this.extra.bytes;
    const responded = this.responses && responseLength > 0;
    if (this.queries) {
      // The decision rides on the response; on the query only when no response is logged.
      exchange.extraLength = responded ? 0 : extraLength;
      this.enqueue(AUTH_QUERY);
    }
    if (responded) {
      exchange.extraLength = extraLength;
      this.enqueue(AUTH_RESPONSE);
    }
  }

  private fillPeer(exchange: DnstapExchange, address: string, port: number): void {
    // Queries come from few resolvers and the transports reuse the address
    // text while it repeats, so the text is parsed only when it changes.
    if (address !== this.lastPeer) {
      this.lastPeer = address;
      this.lastPeerFamily = parseAddressInto(address, exchange.queryAddress) === 6 ? INET6 : INET;
    }
    exchange.family = this.lastPeerFamily;
    exchange.queryPort = port;
  }

  private enqueue(type: number): void {
    const size = this.exchange.frameSize(type);
    const at = this.ring.reserve(size);
    if (at < 0) return;
    this.exchange.writeFrame(type, this.ring.bytes, at);
    this.ring.commit();
    const control = this.control;
    if (Atomics.load(control, SLEEPING) !== 0) {
      Atomics.store(control, SLEEPING, 0);
      Atomics.notify(control, SLEEPING);
    }
  }
}

function setTime(exchange: DnstapExchange, query: boolean, wallMs: number): void {
  const seconds = Math.floor(wallMs / 1000);
  const nanoseconds = Math.min(999_999_999, Math.round((wallMs - seconds * 1000) * 1e6));
  if (query) {
    exchange.querySeconds = seconds;
    exchange.queryNanoseconds = nanoseconds;
  } else {
    exchange.responseSeconds = seconds;
    exchange.responseNanoseconds = nanoseconds;
  }
}

/** A listen address as dnstap's response_address: none for a wildcard bind (the real one is not known per query). */
function localAddress(host: string, port: number): { family: number; address: Uint8Array; length: number; port: number } {
  const address = new Uint8Array(16);
  const family = parseAddressInto(host, address);
  const wildcard = address.every((b) => b === 0);
  const dnstapFamily = family === 6 || (family === 0 && isIPv6(host)) ? INET6 : INET;
  return { family: dnstapFamily, address, length: wildcard || family === 0 ? 0 : dnstapFamily === INET ? 4 : 16, port };
}
