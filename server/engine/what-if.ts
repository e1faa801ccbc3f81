// Offline decisions for tools (diff, the status page's map): which endpoint a
// client network gets for a steered name under a snapshot and a health table,
// computed by the same Engine and the steering createSteering() builds for
// the DNS workers; the answer is read from the decider's own record.

import { TYPE_A } from '../dns/constants.ts';
import { wireToName } from '../dns/name.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import { ENDPOINT_CNAME } from '../steering/types.ts';
import { classAt } from '../steering/lazy-classes.ts';
import { Counters } from './counters.ts';
import { Engine, TRANSPORT_UDP } from './engine.ts';
import { syntheticQuery } from './explain.ts';
import { createSteering, type PolicySteering, type SteeringInputs } from './steering-hook.ts';

export class WhatIf {
  private readonly engine: Engine;
  private readonly steering: PolicySteering | null;
  private readonly snapshot: DnsSnapshot;

  /** `inputs` as for serving (health, signals, ecs_trust); the snapshot brings the tables. */
  constructor(snapshot: DnsSnapshot, inputs: Omit<SteeringInputs, 'tables' | 'counters'>, selfPop: string) {
    this.snapshot = snapshot;
    this.engine = new Engine(snapshot, { popId: selfPop, versionBind: null, counters: new Counters(null, 0) });
    this.steering = snapshot.steering ? createSteering({ ...inputs, tables: snapshot.steering, counters: this.engine.counters }) : null;
    this.engine.steering = this.steering;
  }

  /** Names of the steered policies in this snapshot. */
  steeredNames(): string[] {
    return this.snapshot.steering?.policies.map((p) => p.name) ?? [];
  }

  /**
   * The outcome for a client network (CIDR) as a short label: the endpoint id,
   * "cname:<target>", an rcode name, or "static" for names that are not steered.
   */
  outcome(name: string, cidr: string): string {
    const query = syntheticQuery(name, TYPE_A, cidr);
    const steering = this.steering;
    const size = this.engine.handle(query, query.length, TRANSPORT_UDP, { address: '127.0.0.1', family: 0 });
    const rcode = size >= 4 ? this.engine.writer.buf[3] & 0x0f : -1;
    if (!steering || this.engine.lastSteered < 0) return rcode === 0 ? 'static' : `rcode ${rcode}`;
    if (rcode === 2) return 'SERVFAIL';
    const r = steering.last.resolution;
    if (r.count === 0) return 'NODATA';
    const e = this.snapshot.steering!.policies[steering.last.policy].endpoints[r.chosen[0]];
    return e.kind === ENDPOINT_CNAME ? `cname:${wireToName(e.cname!)}` : e.id;
  }

  /** The rule that decided the last outcome(), by name ('' when the name is not steered). */
  lastRule(): string {
    const last = this.steering?.last;
    if (!last || this.engine.lastSteered < 0) return '';
    const policy = this.snapshot.steering!.policies[last.policy];
    return policy.rules[classAt(policy, last.class).rule].name;
  }
}
