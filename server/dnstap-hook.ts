// The DNS worker's dnstap hook: what the worker knows after answering a query
// (the listener, the steering decision, the ECS address that decided) handed
// to the dnstap producer. Kept out of dns-worker.ts so that file only gains a
// call; imports across modules are allowed here, as in the worker itself.

import { NO_ENDPOINT, type DecisionRecorder } from './engine/decision-counters.ts';
import { FAMILY_IPV4 } from './dns/constants.ts';
import type { QueryView } from './dns/query.ts';
import { DnstapProducer, type DecisionLabels, type DnstapDecision, type DnstapWorkerConfig } from './dnstap/producer.ts';
import { MAX_IPV4_BITS, MAX_IPV6_BITS } from './engine/client-address.ts';
import type { PolicySteering } from './engine/steering-hook.ts';
import type { DnsSnapshot } from './snapshot/types.ts';
import { PROTO_TCP, type Peer, type Responder } from './transport/handler.ts';

/** The names behind decision indexes in one policy set. */
function labelsOf(snapshot: DnsSnapshot): (policy: number, rule: number, endpoint: number) => DecisionLabels {
  return (policy, rule, endpoint) => {
    const compiled = snapshot.steering!.policies[policy];
    return { policy: compiled.name, rule: compiled.rules[rule].name, endpoint: endpoint >= 0 ? compiled.endpoints[endpoint].id : NO_ENDPOINT };
  };
}

export class DnstapHook {
  private readonly producer: DnstapProducer;
  private readonly view: QueryView;
  private readonly decision: DnstapDecision;
  /** The listener the current message arrived on (set by the responder of that listener). */
  private listener = 0;

  constructor(config: DnstapWorkerConfig, snapshot: DnsSnapshot, view: QueryView) {
    this.producer = new DnstapProducer(config, labelsOf(snapshot));
    this.view = view;
    this.decision = { policy: -1, rule: -1, endpoint: -1, class: -1, ecsBits: -1, ecsFamily: 4, ecsAddress: view.ecsAddress };
  }

  useSnapshot(snapshot: DnsSnapshot): void {
    this.producer.relabel(labelsOf(snapshot));
  }

  /** A responder for listener `index` that records where each message came in. */
  responderFor(index: number, responder: Responder): Responder {
    return {
      answer: (message, length, protocol, peer) => {
        this.listener = index;
        return responder.answer(message, length, protocol, peer);
      },
      reply: responder.reply,
    };
  }

  /** Called once per query after its reply (`size` octets of `reply`, 0 = none) is final. */
  afterAnswer(message: Uint8Array, length: number, protocol: number, peer: Peer, startedMs: number, reply: Uint8Array, size: number,
    policy: number, steering: PolicySteering | null, decisions: DecisionRecorder | null): void {
    if (!this.producer.sample()) return;
    const decision = this.decision;
    decision.policy = -1;
    if (policy >= 0 && steering !== null && decisions !== null) {
      decision.policy = policy;
      decision.rule = decisions.rule;
      decision.endpoint = decisions.endpoint;
      decision.class = steering.last.class;
      const view = this.view;
      if (steering.lastDecidingFromEcs) {
        const ipv4 = view.ecsFamily === FAMILY_IPV4;
        const cap = ipv4 ? MAX_IPV4_BITS : MAX_IPV6_BITS;
        decision.ecsFamily = ipv4 ? 4 : 6;
        decision.ecsBits = view.ecsSourcePrefix < cap ? view.ecsSourcePrefix : cap;
      } else {
        decision.ecsBits = -1;
      }
    }
    this.producer.log(message, length, protocol === PROTO_TCP, peer.address, peer.port, this.listener, startedMs, reply, size, decision);
  }
}
