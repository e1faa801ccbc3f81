// A DNS worker thread: its own UDP socket and TCP listener per address (all
// workers share the ports through SO_REUSEPORT), one Engine over the snapshot
// the main thread publishes. Nothing here reads files or compiles anything.

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { DecisionRecorder } from './engine/decision-counters.ts';
import { QueryLog } from './engine/query-log.ts';
import { AnswerCache, ECS_FALLBACK, ECS_NONE, ECS_USED, ReplyFacts } from './engine/answer-cache.ts';
import {
  Counters, OFF_ANSWER_CACHE_HITS, OFF_ANSWER_CACHE_MISSES, OFF_ECS, OFF_RRL_LIMITED, OFF_TCP_CONNECTIONS_REFUSED,
} from './engine/counters.ts';
import { Engine } from './engine/engine.ts';
import { createSteering, type PolicySteering } from './engine/steering-hook.ts';
import { snapshotReceived } from './snapshot/policy-reuse.ts';
import type { DnsSnapshot } from './snapshot/types.ts';
import { PROTO_UDP, type Peer, type Responder } from './transport/handler.ts';
import { RRL_DROP, RRL_SEND, ResponseRateLimiter, slipReply, slipReplyTo, type RrlConfig } from './rrl/limiter.ts';
import { ConnectionSlots } from './transport/slots.ts';
import { listenTcp, type TcpLimits, type TcpListener } from './transport/tcp.ts';
import { listenUdp, type UdpIo, type UdpListener } from './transport/udp.ts';
import { createLogger } from './log/logger.ts';
import { DnstapHook } from './dnstap-hook.ts';
import type { DnstapWorkerConfig } from './dnstap/producer.ts';

export interface DnsWorkerData {
  index: number;
  snapshot: DnsSnapshot;
  listen: Array<{ host: string; port: number }>;
  /** How UDP is read and written (transport/udp.ts). */
  udpIo: UdpIo;
  tcp: TcpLimits;
  /** Open TCP connections of the whole server (transport/slots.ts), and how many may be open. */
  tcpSlots: SharedArrayBuffer;
  tcpMaxConnections: number;
  popId: string;
  versionBind: string | null;
  counters: SharedArrayBuffer;
  /** Health table written by the main thread's health service (health/table.ts). */
  health: SharedArrayBuffer;
  /** Next possible health change and declared load per PoP (steering/signals.ts). */
  signals: SharedArrayBuffer;
  /** Resolver networks whose ECS is used; empty = every resolver. */
  ecsTrust: string[];
  /** Steering decisions per [policy][rule][endpoint] (engine/decision-counters.ts), one buffer per policy set. */
  decisionCounters: SharedArrayBuffer;
  /** Share of queries written to the query log (0 = off). */
  queryLogSample: number;
  /** Replies kept for repeated UDP queries (engine/answer-cache.ts); 0 = off. */
  answerCacheEntries: number;
  logLevel: string;
  /** Response rate limiting for UDP replies (rrl/config.ts rrlConfigOf); null or absent = off. */
  rrl?: RrlConfig | null;
  /** dnstap output (server/dnstap); null or absent = off. */
  dnstap?: DnstapWorkerConfig | null;
}

export type ToWorker =
  | { type: 'snapshot'; snapshot: DnsSnapshot; decisionCounters: SharedArrayBuffer }
  | { type: 'stop-accepting' }
  | { type: 'close' };

export type FromWorker =
  | { type: 'listening'; index: number; udp: number[]; tcp: number[] }
  | { type: 'snapshot-applied'; index: number; hash: string }
  | { type: 'error'; index: number; message: string; stack?: string }
  | { type: 'closed'; index: number };

const data = workerData as DnsWorkerData;
const port = parentPort!;
const counters = new Counters(data.counters, data.index);
const engine = new Engine(data.snapshot, { popId: data.popId, versionBind: data.versionBind, counters });
const healthView = new Int32Array(data.health);
const signalsView = new Float64Array(data.signals);
/** The steering hook and the decision counters of one policy set, swapped together. */
interface Steered {
  hook: PolicySteering;
  decisions: DecisionRecorder;
}
let steered: Steered | null = null;
const useSnapshot = (snapshot: DnsSnapshot, decisionCounters: SharedArrayBuffer): void => {
  steered = snapshot.steering ? {
    hook: createSteering({ tables: snapshot.steering, health: healthView, signals: signalsView, ecsTrust: data.ecsTrust, counters }),
    decisions: new DecisionRecorder(snapshot.steering, decisionCounters, data.index),
  } : null;
  engine.steering = steered?.hook ?? null;
};
useSnapshot(data.snapshot, data.decisionCounters);
const dnstap = data.dnstap ? new DnstapHook(data.dnstap, data.snapshot, engine.view) : null;
const queryLog = data.queryLogSample > 0
  ? new QueryLog(createLogger(data.logLevel, data.popId).child({ module: 'query-log', worker: data.index }), data.queryLogSample)
  : null;
const send = (message: FromWorker): void => port.postMessage(message);
const rrlLog = data.rrl ? createLogger(data.logLevel, data.popId).child({ module: 'rrl', worker: data.index }) : null;
const rrl = data.rrl ? new ResponseRateLimiter(data.rrl, (event) => rrlLog!.warn(event, 'response rate limit: limiting replies to a client network')) : null;

// Repeated UDP queries are answered from the answer cache (engine/answer-cache.ts),
// except while dnstap is on (each frame records the parsed query and the decision).
const answerCache = data.answerCacheEntries > 0 && !data.dnstap ? new AnswerCache(data.answerCacheEntries) : null;
const replyFacts = new ReplyFacts();

/** Answers into the engine's writer buffer; the listeners copy the reply out. */
const answer = (message: Uint8Array, length: number, protocol: number, peer: Peer): number => {
  const started = performance.now();
  // A sampled query is answered in full: its log line reads the parse and the decision.
  const logged = queryLog !== null && queryLog.sample();
  const cache = protocol === PROTO_UDP && !logged ? answerCache : null;
  if (cache !== null) {
    const size = cache.answer(message, length, peer.address, healthView[0], engine.writer.buf);
    if (size > 0) return sendAgain(size, peer, started, cache.facts);
    counters.values[OFF_ANSWER_CACHE_MISSES]++;
  }
  let size = engine.handle(message, length, protocol, peer);
  const current = steered;
  const policy = engine.lastSteered;
  if (current !== null && policy >= 0) current.decisions.record(current.hook.last);
  // Stored before RRL may turn the reply into its slipped form.
  if (cache !== null && size > 0 && engine.reusable) cache.store(message, length, peer.address, healthView[0], engine.writer.buf, size, factsOfLastAnswer(current));
  // RRL: UDP only (a TCP handshake proves the address); after the reply exists, before it is sent.
  if (size > 0 && rrl !== null && protocol === PROTO_UDP) {
    const action = rrl.check(peer.address, engine.responseKey, engine.writer.buf[3] & 0x0f, started);
    if (action !== RRL_SEND) {
      counters.values[OFF_RRL_LIMITED + (action === RRL_DROP ? 0 : 1)]++;
      size = action === RRL_DROP ? 0 : slipReply(engine.writer.buf, engine.view);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  counters.duration(seconds);
  if (logged) {
    queryLog.write(engine.view, peer.address, size > 0 ? engine.writer.buf[3] & 0x0f : -1, seconds, engine.snapshot.steering, policy, current?.decisions ?? null);
  }
  dnstap?.afterAnswer(message, length, protocol, peer, started, engine.writer.buf, size, policy, current?.hook ?? null, current?.decisions ?? null);
  return size;
};

/** What the engine's last answer counted, to be counted again whenever the cache sends its reply. */
function factsOfLastAnswer(current: Steered | null): ReplyFacts {
  const facts = replyFacts;
  const view = engine.view;
  facts.reset();
  facts.qtype = view.qtype;
  facts.rcode = engine.writer.buf[3] & 0x0f;
  facts.responseKey = engine.responseKey;
  facts.questionEnd = view.hasQuestion ? view.questionEnd : 12;
  if (current !== null && engine.lastSteered >= 0) {
    if (view.ecsPresent) facts.ecs = current.hook.lastDecidingFromEcs ? ECS_USED : ECS_FALLBACK;
    facts.decisionSlot = current.decisions.decisionSlot;
    facts.outcomeSlot = current.decisions.outcomeSlot;
  }
  return facts;
}

/** A reply from the answer cache, now in the writer's buffer: counted and rate limited as the engine's own. */
function sendAgain(size: number, peer: Peer, started: number, facts: ReplyFacts): number {
  const values = counters.values;
  values[OFF_ANSWER_CACHE_HITS]++;
  counters.request(PROTO_UDP, peer.family, facts.qtype);
  counters.response(facts.rcode);
  if (facts.ecs !== ECS_NONE) {
    values[OFF_ECS]++;
    values[OFF_ECS + facts.ecs]++;
  }
  if (facts.decisionSlot >= 0) steered?.decisions.countAgain(facts.decisionSlot, facts.outcomeSlot);
  if (rrl !== null) {
    const action = rrl.check(peer.address, facts.responseKey, facts.rcode, started);
    if (action !== RRL_SEND) {
      values[OFF_RRL_LIMITED + (action === RRL_DROP ? 0 : 1)]++;
      size = action === RRL_DROP ? 0 : slipReplyTo(engine.writer.buf, facts.questionEnd);
    }
  }
  counters.duration((performance.now() - started) / 1000);
  return size;
}

const responder: Responder = {
  answer,
  reply: engine.writer.buf,
};

const reportError = (err: Error): void => send({ type: 'error', index: data.index, message: err.message, stack: err.stack });

const udp: UdpListener[] = [];
const tcp: TcpListener[] = [];
const tcpSlots = new ConnectionSlots(data.tcpSlots, data.tcpMaxConnections);
const tcpEvents = { onError: reportError, onRefused: () => { counters.values[OFF_TCP_CONNECTIONS_REFUSED]++; } };

async function start(): Promise<void> {
  for (const [i, address] of data.listen.entries()) {
    const listenerResponder = dnstap?.responderFor(i, responder) ?? responder;
    udp.push(await listenUdp(address.host, address.port, listenerResponder, reportError, data.udpIo));
    tcp.push(await listenTcp(address.host, address.port, data.tcp, tcpSlots, listenerResponder, tcpEvents));
  }
  send({ type: 'listening', index: data.index, udp: udp.map((u) => u.port), tcp: tcp.map((t) => t.port) });
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'snapshot') {
    // Policies this worker already holds came by reference: take its own copies.
    const snapshot = snapshotReceived(message.snapshot, engine.snapshot);
    // Two reference swaps between queries (the worker is single-threaded):
    // each query sees the old set or the new one, never a mix.
    useSnapshot(snapshot, message.decisionCounters);
    engine.snapshot = snapshot;
    answerCache?.invalidate();
    dnstap?.useSnapshot(snapshot);
    send({ type: 'snapshot-applied', index: data.index, hash: snapshot.hash });
  } else if (message.type === 'stop-accepting') {
    for (const t of tcp) void t.stopAccepting();
  } else if (message.type === 'close') {
    void Promise.all([...udp.map((u) => u.close()), ...tcp.map((t) => t.close())]).then(() => {
      send({ type: 'closed', index: data.index });
      port.close();
    });
  }
});

start().catch((err: Error) => {
  send({ type: 'error', index: data.index, message: `cannot listen: ${err.message}` });
  process.exit(1);
});
