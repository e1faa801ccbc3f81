// Every Prometheus metric popsteer exports, defined in this one file. DNS
// counters are read at scrape time from the workers' shared counter regions
// (engine/counters.ts), so queries pay plain increments only.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  DURATION_BOUNDS, ECS_OUTCOMES, FAMILIES, OFF_DECISION_CACHE_HITS, OFF_DECISION_CACHE_MISSES, OFF_DECISION_CACHE_SIZE,
  OFF_DROPPED, OFF_DURATION_BUCKETS, OFF_DURATION_COUNT, OFF_DURATION_SUM, OFF_ECS, OFF_REQUESTS, OFF_RESPONSES,
  OFF_TCP_CONNECTIONS_REFUSED, OFF_TRUNCATED, QTYPE_BUCKETS, RCODE_BUCKETS, REGION_SIZE, TRANSPORTS, sumSlot,
} from '../engine/counters.ts';

export interface MetricsSource {
  counters: SharedArrayBuffer;
  workers: number;
  pop: string;
  policyHash(): string;
  policyLoadedAt(): number;
}

/** Counter whose value is set from a shared slot at scrape time. */
function mirroredCounter(counter: Counter<string>, labels: Record<string, string>, value: number): void {
  // prom-client counters only go up; reset then inc keeps the exported value exact.
  counter.remove(labels);
  if (value > 0) counter.inc(labels, value);
  else counter.inc(labels, 0);
}

export function createMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ pop: source.pop });
  collectDefaultMetrics({ register: registry, prefix: 'popsteer_process_' });
  const all = (): Float64Array => new Float64Array(source.counters);
  const sum = (slot: number): number => sumSlot(all(), source.workers, slot);

  new Counter({
    name: 'popsteer_dns_requests_total',
    help: 'DNS requests received, by transport, address family and query type.',
    labelNames: ['transport', 'family', 'qtype'],
    registers: [registry],
    collect() {
      TRANSPORTS.forEach((transport, t) => FAMILIES.forEach((family, f) => QTYPE_BUCKETS.forEach((qtype, q) => {
        const slot = OFF_REQUESTS + (t * FAMILIES.length + f) * QTYPE_BUCKETS.length + q;
        const value = sum(slot);
        if (value > 0) mirroredCounter(this, { transport, family, qtype }, value);
      })));
    },
  });
  new Counter({
    name: 'popsteer_dns_responses_total',
    help: 'DNS responses sent, by response code.',
    labelNames: ['rcode'],
    registers: [registry],
    collect() {
      RCODE_BUCKETS.forEach((rcode, i) => mirroredCounter(this, { rcode }, sum(OFF_RESPONSES + i)));
    },
  });
  new Counter({
    name: 'popsteer_dns_truncated_responses_total',
    help: 'UDP responses sent with TC=1 because the answer did not fit the requestor\'s size.',
    registers: [registry],
    collect() { mirroredCounter(this, {}, sum(OFF_TRUNCATED)); },
  });
  new Counter({
    name: 'popsteer_dns_dropped_total',
    help: 'Messages dropped without a reply (shorter than a header, or responses).',
    registers: [registry],
    collect() { mirroredCounter(this, {}, sum(OFF_DROPPED)); },
  });
  new Counter({
    name: 'popsteer_dns_ecs_total',
    help: 'EDNS Client Subnet: options present, used to decide, or ignored in favour of the resolver address.',
    labelNames: ['outcome'],
    registers: [registry],
    collect() { ECS_OUTCOMES.forEach((outcome, i) => mirroredCounter(this, { outcome }, sum(OFF_ECS + i))); },
  });
  new Counter({
    name: 'popsteer_dns_tcp_connections_refused_total',
    help: 'TCP connections refused because every slot was busy.',
    registers: [registry],
    collect() { mirroredCounter(this, {}, sum(OFF_TCP_CONNECTIONS_REFUSED)); },
  });
  new Counter({
    name: 'popsteer_steering_decision_cache_total',
    help: 'Steering decision cache lookups by result.',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      mirroredCounter(this, { result: 'hit' }, sum(OFF_DECISION_CACHE_HITS));
      mirroredCounter(this, { result: 'miss' }, sum(OFF_DECISION_CACHE_MISSES));
    },
  });
  new Gauge({
    name: 'popsteer_steering_decision_cache_entries',
    help: 'Entries in the steering decision caches of all workers.',
    registers: [registry],
    collect() { this.set(sum(OFF_DECISION_CACHE_SIZE)); },
  });
  const duration = new Histogram({
    name: 'popsteer_dns_request_duration_seconds',
    help: 'Time from a message\'s arrival in a worker to its reply being ready.',
    buckets: DURATION_BOUNDS,
    registers: [registry],
  });
  // The histogram's state is rebuilt from the shared counters at every scrape.
  const originalGet = duration.get.bind(duration);
  duration.get = async () => {
    const v = all();
    const values = await originalGet();
    const cumulative = DURATION_BOUNDS.map((_, i) => sumSlot(v, source.workers, OFF_DURATION_BUCKETS + i));
    const total = sumSlot(v, source.workers, OFF_DURATION_COUNT);
    values.values = [
      ...DURATION_BOUNDS.map((le, i) => ({ labels: { le }, value: cumulative[i], metricName: 'popsteer_dns_request_duration_seconds_bucket' })),
      { labels: { le: '+Inf' as unknown as number }, value: total, metricName: 'popsteer_dns_request_duration_seconds_bucket' },
      { labels: {}, value: sumSlot(v, source.workers, OFF_DURATION_SUM), metricName: 'popsteer_dns_request_duration_seconds_sum' },
      { labels: {}, value: total, metricName: 'popsteer_dns_request_duration_seconds_count' },
    ];
    return values;
  };
  new Gauge({
    name: 'popsteer_config_info',
    help: 'The active configuration set: its content hash as a label, value 1.',
    labelNames: ['hash'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ hash: source.policyHash() }, 1);
    },
  });
  new Gauge({
    name: 'popsteer_config_last_load_timestamp_seconds',
    help: 'When the active configuration was loaded.',
    registers: [registry],
    collect() { this.set(source.policyLoadedAt() / 1000); },
  });
  void REGION_SIZE;
  return registry;
}
