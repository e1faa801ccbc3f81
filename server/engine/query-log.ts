// The sampled query log: one JSON line for one query in N, written from the
// DNS worker that answered it. The sampling decision is a countdown (no random
// number per query) and the line is built only for the sampled query.

import { formatAddress } from '../lib/address.ts';
import { wireToName } from '../dns/name.ts';
import type { QueryView } from '../dns/query.ts';
import type { Logger } from '../log/logger.ts';
import type { SteeringTables } from '../steering/types.ts';
import { NO_ENDPOINT, type DecisionRecorder } from './decision-counters.ts';

const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY', 257: 'CAA' };

/** 1 in how many queries is logged for a sample rate in (0, 1]; 0 = off. */
function sampleInterval(rate: number): number {
  return rate > 0 ? Math.max(1, Math.round(1 / rate)) : 0;
}

export class QueryLog {
  private readonly log: Logger;
  private readonly every: number;
  private countdown: number;

  constructor(log: Logger, rate: number) {
    this.log = log;
    this.every = sampleInterval(rate);
    this.countdown = this.every;
  }

  /** Whether this query is one to log; call once per query. */
  sample(): boolean {
    if (this.every === 0) return false;
    if (--this.countdown > 0) return false;
    this.countdown = this.every;
    return true;
  }

  write(view: QueryView, resolver: string, rcode: number, latencySeconds: number, tables: SteeringTables | null, policy: number, decision: DecisionRecorder | null): void {
    const client = view.ecsPresent
      ? `${formatAddress(view.ecsFamily === 1 ? 4 : 6, view.ecsAddress)}/${view.ecsSourcePrefix}`
      : resolver;
    let name = '';
    try {
      name = view.keyLength > 0 ? wireToName(view.key.subarray(0, view.keyLength)) : '';
    } catch {
      name = '(unreadable)';
    }
    const steered = tables !== null && policy >= 0 && decision !== null && decision.rule >= 0;
    const compiled = steered ? tables.policies[policy] : null;
    this.log.info({
      client,
      resolver,
      name,
      type: TYPE_NAMES[view.qtype] ?? `TYPE${view.qtype}`,
      rcode,
      policy: compiled?.name ?? null,
      rule: compiled ? compiled.rules[decision!.rule].name : null,
      answer: compiled ? (decision!.endpoint >= 0 ? compiled.endpoints[decision!.endpoint].id : NO_ENDPOINT) : null,
      latency_us: Math.round(latencySeconds * 1e6),
    }, 'query');
  }
}
