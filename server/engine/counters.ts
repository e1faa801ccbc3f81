// Per-query counters as plain increments into a Float64Array. Each DNS worker
// owns one region of a SharedArrayBuffer; the admin thread sums the regions at
// scrape time and hands them to prom-client (admin/metrics.ts), so the query
// path never does a label lookup.

import {
  RCODE_BADVERS, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_CAA, TYPE_CNAME, TYPE_HTTPS, TYPE_MX, TYPE_NS, TYPE_SOA,
  TYPE_SRV, TYPE_SVCB, TYPE_TXT,
} from '../dns/constants.ts';

export const TRANSPORTS = ['udp', 'tcp'] as const;
export const FAMILIES = ['ipv4', 'ipv6'] as const;
export const QTYPE_BUCKETS = ['A', 'AAAA', 'CNAME', 'NS', 'SOA', 'MX', 'TXT', 'SRV', 'CAA', 'HTTPS', 'SVCB', 'ANY', 'other'] as const;
export const RCODE_BUCKETS = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'BADVERS', 'other'] as const;
/** Request duration histogram bounds in seconds (Prometheus `le`). */
export const DURATION_BOUNDS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];
export const ECS_OUTCOMES = ['present', 'used', 'fallback'] as const;

const QTYPE_INDEX = new Int8Array(65536).fill(QTYPE_BUCKETS.length - 1);
[TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_SOA, TYPE_MX, TYPE_TXT, TYPE_SRV, TYPE_CAA, TYPE_HTTPS, TYPE_SVCB, TYPE_ANY]
  .forEach((t, i) => { QTYPE_INDEX[t] = i; });

// Layout of one worker's region.
export const OFF_REQUESTS = 0; // [transport][family][qtype]
const REQUESTS_SIZE = TRANSPORTS.length * FAMILIES.length * QTYPE_BUCKETS.length;
export const OFF_RESPONSES = OFF_REQUESTS + REQUESTS_SIZE; // [rcode]
export const OFF_TRUNCATED = OFF_RESPONSES + RCODE_BUCKETS.length;
export const OFF_DROPPED = OFF_TRUNCATED + 1; // malformed or QR=1, no reply sent
export const OFF_ECS = OFF_DROPPED + 1; // [present, used, fallback]
export const OFF_DURATION_BUCKETS = OFF_ECS + ECS_OUTCOMES.length; // counts per bucket (not cumulative), then above the last bound
export const OFF_DURATION_SUM = OFF_DURATION_BUCKETS + DURATION_BOUNDS.length + 1;
export const OFF_DURATION_COUNT = OFF_DURATION_SUM + 1;
export const OFF_TCP_CONNECTIONS_REFUSED = OFF_DURATION_COUNT + 1;
export const OFF_DECISION_CACHE_HITS = OFF_TCP_CONNECTIONS_REFUSED + 1;
export const OFF_DECISION_CACHE_MISSES = OFF_DECISION_CACHE_HITS + 1;
export const OFF_DECISION_CACHE_SIZE = OFF_DECISION_CACHE_MISSES + 1; // a gauge
/** UDP replies limited by response rate limiting (server/rrl), by action. */
export const RRL_ACTIONS = ['dropped', 'slipped'] as const;
export const OFF_RRL_LIMITED = OFF_DECISION_CACHE_SIZE + 1; // [dropped, slipped]
/** UDP queries answered from the answer cache (engine/answer-cache.ts), and those looked up and not found. */
export const OFF_ANSWER_CACHE_HITS = OFF_RRL_LIMITED + RRL_ACTIONS.length;
export const OFF_ANSWER_CACHE_MISSES = OFF_ANSWER_CACHE_HITS + 1;
/** Free slots for later modules (steering decisions are counted by the steering module's own table). */
const REGION_SIZE = 128;

if (OFF_ANSWER_CACHE_MISSES + 1 > REGION_SIZE) throw new Error('counter layout overflows its region');

export function createCounterBuffer(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * REGION_SIZE * Math.max(1, workers));
}

export class Counters {
  readonly values: Float64Array;

  constructor(buffer: SharedArrayBuffer | null, worker: number) {
    this.values = buffer ? new Float64Array(buffer, worker * REGION_SIZE * 8, REGION_SIZE) : new Float64Array(REGION_SIZE);
  }

  request(transport: number, family: number, qtype: number): void {
    this.values[OFF_REQUESTS + (transport * FAMILIES.length + family) * QTYPE_BUCKETS.length + QTYPE_INDEX[qtype & 0xffff]]++;
  }

  response(rcode: number): void {
    const bucket = rcode <= 5 ? rcode : rcode === RCODE_BADVERS ? 6 : 7;
    this.values[OFF_RESPONSES + bucket]++;
  }

  duration(seconds: number): void {
    const v = this.values;
    // One bucket per observation (the first bound it is under); cumulated at scrape time.
    let i = 0;
    while (i < DURATION_BOUNDS.length && seconds > DURATION_BOUNDS[i]) i++;
    v[OFF_DURATION_BUCKETS + i]++;
    v[OFF_DURATION_SUM] += seconds;
    v[OFF_DURATION_COUNT]++;
  }
}

/** Sum of one slot over every worker's region. */
export function sumSlot(all: Float64Array, workers: number, slot: number): number {
  let total = 0;
  for (let w = 0; w < workers; w++) total += all[w * REGION_SIZE + slot];
  return total;
}
