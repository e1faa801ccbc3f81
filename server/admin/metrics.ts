// Every Prometheus metric popsteer exports, defined in this one file.
//
// Most of them mirror state that lives elsewhere: the DNS workers' shared
// counter regions (engine/counters.ts, summed over workers), the steering
// decision counters (engine/decision-counters.ts), the health service's own counts
// and the reload counts. Those are ScrapedMetrics: a family whose samples are
// computed from the source at scrape time, so the query path pays plain
// increments only and nothing is copied into prom-client's own state.
// Process metrics come from prom-client's default collectors.

import { Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import {
  DURATION_BOUNDS, ECS_OUTCOMES, FAMILIES, OFF_ANSWER_CACHE_HITS, OFF_ANSWER_CACHE_MISSES, OFF_DECISION_CACHE_HITS, OFF_DECISION_CACHE_MISSES, OFF_DECISION_CACHE_SIZE,
  OFF_DROPPED, OFF_DURATION_BUCKETS, OFF_DURATION_COUNT, OFF_DURATION_SUM, OFF_ECS, OFF_REQUESTS, OFF_RESPONSES,
  OFF_TCP_CONNECTIONS_REFUSED, OFF_TRUNCATED, QTYPE_BUCKETS, RCODE_BUCKETS, TRANSPORTS, sumSlot,
} from '../engine/counters.ts';
import { OFF_RRL_LIMITED, RRL_ACTIONS } from '../engine/counters.ts';
import { FAILURE_REASONS, LOCAL_CAUSES } from '../health/transports.ts';
import { PROBE_DURATION_BOUNDS, type HealthMetrics } from '../health/service.ts';
import type { DecisionCount, OutcomeCount } from '../engine/decision-counters.ts';

interface MetricsSource {
  counters: SharedArrayBuffer;
  workers: number;
  pop: string;
  policyHash(): string;
  policyLoadedAt(): number;
  decisions(): { decisions: DecisionCount[]; outcomes: OutcomeCount[] };
  health(): HealthMetrics;
  reloads: { success: number; failure: number };
  geoDatabase(): { type: string; buildEpochMs: number };
  dnstap(): { frames: number; dropped: number; connected: boolean; connections: number };
  /** Whether this instance is fit for anycast traffic (GET /v1/fitness). */
  fit(): boolean;
  connections(): ConnectionMetrics;
  /** 1 connected to the fleet, 0 not; null without --fleet (no sample then). */
  fleetConnected?(): 0 | 1 | null;
  /** The fleet policy revision served; null without --fleet or while the --config files serve (no sample then). */
  fleetRevisionServed?(): number | null;
  /** The fleet's health verdict as this instance sees it; null without --fleet (no samples then). */
  fleetHealth?(): FleetHealthMetrics | null;
  /** Seconds until the served DNSSEC signatures expire; null when no zone is signed (no sample then). */
  dnssecExpirySeconds?(): number | null;
}

interface FleetHealthMetrics {
  observersLive: number;
  local: boolean;
  disagreements: number;
  probers: Array<{ target: string; count: number }>;
}

interface ConnectionMetrics {
  /** Connection caps in force (after fitting under the open-file limit). */
  caps: { tcp: number; admin: number };
  /** Open DNS-over-TCP connections of the whole server. */
  tcpOpen: number;
  admin: { open: number; evicted: number; refused: number };
}

type Labels = Record<string, string | number>;
interface Sample {
  labels: Labels;
  value: number;
  /** For histogram series: name_bucket, name_sum, name_count. */
  metricName?: string;
}

/** A metric family computed from its source at every scrape. */
class ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum';
  private readonly samples: () => Sample[];

  constructor(registry: Registry, name: string, type: ScrapedMetric['type'], help: string, samples: () => Sample[]) {
    this.name = name;
    this.type = type;
    this.help = help;
    this.samples = samples;
    // prom-client's registry reads name, help, type and get(); its typings only list its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }
}

/** The samples of one histogram series from cumulative bucket counts (the last one is +Inf). */
function histogramSamples(name: string, labels: Labels, bounds: readonly number[], cumulative: (i: number) => number, sum: number, count: number): Sample[] {
  const out: Sample[] = bounds.map((le, i) => ({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative(i) }));
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: count });
  return out;
}

/**
 * The Prometheus registry. Longer than a screen on purpose: every metric
 * popsteer exports is defined here, one after the other, so the names, help
 * texts and labels read as one list (the README's metric table follows it).
 */
// eslint-disable-next-line max-lines-per-function -- one list of every exported metric, read as the README's table (see above)
export function createMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ pop: source.pop });
  collectDefaultMetrics({ register: registry, prefix: 'popsteer_' });
  const slots = (): Float64Array => new Float64Array(source.counters);
  const sum = (slot: number): number => sumSlot(slots(), source.workers, slot);
  const metric = (name: string, type: ScrapedMetric['type'], help: string, samples: () => Sample[]): void => {
    new ScrapedMetric(registry, name, type, help, samples);
  };

  // ---- DNS
  metric('popsteer_dns_requests_total', 'counter', 'DNS requests received, by transport, address family and query type.', () => {
    const out: Sample[] = [];
    TRANSPORTS.forEach((transport, t) => FAMILIES.forEach((family, f) => QTYPE_BUCKETS.forEach((qtype, q) => {
      const value = sum(OFF_REQUESTS + (t * FAMILIES.length + f) * QTYPE_BUCKETS.length + q);
      if (value > 0) out.push({ labels: { transport, family, qtype }, value });
    })));
    return out;
  });
  metric('popsteer_dns_responses_total', 'counter', 'DNS responses sent, by response code.',
    () => RCODE_BUCKETS.map((rcode, i) => ({ labels: { rcode }, value: sum(OFF_RESPONSES + i) })));
  metric('popsteer_dns_request_duration_seconds', 'histogram', 'Time from a message\'s arrival in a worker to its reply being ready.', () => {
    const v = slots();
    const at = (slot: number): number => sumSlot(v, source.workers, slot);
    // Workers count each observation in one bucket; the exposition is cumulative.
    const cumulative: number[] = [];
    let running = 0;
    for (let i = 0; i < DURATION_BOUNDS.length; i++) cumulative.push(running += at(OFF_DURATION_BUCKETS + i));
    return histogramSamples('popsteer_dns_request_duration_seconds', {}, DURATION_BOUNDS,
      (i) => cumulative[i], at(OFF_DURATION_SUM), at(OFF_DURATION_COUNT));
  });
  metric('popsteer_dns_truncated_responses_total', 'counter', 'UDP responses sent with TC=1 because the answer did not fit the requestor\'s size.',
    () => [{ labels: {}, value: sum(OFF_TRUNCATED) }]);
  metric('popsteer_dns_dropped_total', 'counter', 'Messages dropped without a reply (shorter than a header, or responses).',
    () => [{ labels: {}, value: sum(OFF_DROPPED) }]);
  metric('popsteer_dns_ecs_total', 'counter', 'EDNS Client Subnet: options present, used to decide, or ignored in favour of the resolver address (fallback).',
    () => ECS_OUTCOMES.map((outcome, i) => ({ labels: { outcome }, value: sum(OFF_ECS + i) })));
  metric('popsteer_dns_tcp_connections_refused_total', 'counter', 'TCP connections refused at the server-wide cap, no idle connection of the accepting worker being there to make room.',
    () => [{ labels: {}, value: sum(OFF_TCP_CONNECTIONS_REFUSED) }]);
  metric('popsteer_dns_tcp_connections', 'gauge', 'Open DNS-over-TCP connections of the whole server, closing ones included (each holds its slot until closed).',
    () => [{ labels: {}, value: source.connections().tcpOpen }]);

  // ---- Connection caps and the admin port
  metric('popsteer_connection_limit', 'gauge', 'Connection caps in force, by listener (dns_tcp, admin), after fitting under the open-file limit.', () => {
    const { caps } = source.connections();
    return [{ labels: { listener: 'dns_tcp' }, value: caps.tcp }, { labels: { listener: 'admin' }, value: caps.admin }];
  });
  metric('popsteer_admin_connections', 'gauge', 'Open admin HTTP connections.', () => [{ labels: {}, value: source.connections().admin.open }]);
  metric('popsteer_admin_connections_shed_total', 'counter', 'Admin connections closed at the cap: evicted (the longest waiting without a request made room) or refused (every one had a request in progress).', () => {
    const { admin } = source.connections();
    return [{ labels: { action: 'evicted' }, value: admin.evicted }, { labels: { action: 'refused' }, value: admin.refused }];
  });

  // ---- Response rate limiting (server/rrl)
  metric('popsteer_dns_rrl_limited_total', 'counter', 'UDP replies limited by response rate limiting, by action: dropped, or slipped (sent truncated, TC=1, so the client retries over TCP).',
    () => RRL_ACTIONS.map((action, i) => ({ labels: { action }, value: sum(OFF_RRL_LIMITED + i) })));

  // ---- Steering
  metric('popsteer_steering_decisions_total', 'counter', 'Steered answers by policy name, matched rule and first answered endpoint (a PoP id, an explicit endpoint id, or "(none)" for SERVFAIL).',
    () => source.decisions().decisions.map((d) => ({ labels: { name: d.name, rule: d.rule, endpoint: d.endpoint }, value: d.count })));
  metric('popsteer_steering_all_down_total', 'counter', 'Steered answers given when no candidate was usable, by policy and what was answered: fail_open (every endpoint), last_resort (the last-resort pool) or servfail.',
    () => source.decisions().outcomes.map((o) => ({ labels: { name: o.name, outcome: o.outcome }, value: o.count })));
  metric('popsteer_steering_decision_cache_total', 'counter', 'Steering decision cache lookups by result.',
    () => [{ labels: { result: 'hit' }, value: sum(OFF_DECISION_CACHE_HITS) }, { labels: { result: 'miss' }, value: sum(OFF_DECISION_CACHE_MISSES) }]);
  metric('popsteer_answer_cache_total', 'counter', 'UDP queries looked up in the answer cache (whole replies for repeated queries), by result.',
    () => [{ labels: { result: 'hit' }, value: sum(OFF_ANSWER_CACHE_HITS) }, { labels: { result: 'miss' }, value: sum(OFF_ANSWER_CACHE_MISSES) }]);
  metric('popsteer_steering_decision_cache_entries', 'gauge', 'Entries in the steering decision caches of all workers.',
    () => [{ labels: {}, value: sum(OFF_DECISION_CACHE_SIZE) }]);

  // ---- Health
  metric('popsteer_health_target_up', 'gauge', 'Probe target state as rise/fall decided it: 1 up (or not yet known), 0 down.',
    () => source.health().targets.map((t) => ({ labels: { target: t.id, kind: t.kind }, value: t.up })));
  metric('popsteer_health_probe_duration_seconds', 'histogram', 'Probe durations per target.',
    () => source.health().targets.flatMap((t) => histogramSamples('popsteer_health_probe_duration_seconds', { target: t.id }, PROBE_DURATION_BOUNDS,
      (i) => t.durationBuckets[i], t.durationSumSeconds, t.durationCount)));
  metric('popsteer_health_probe_failures_total', 'counter', `Failed probes per target, by reason (${FAILURE_REASONS.join(', ')}).`,
    () => source.health().targets.flatMap((t) => FAILURE_REASONS.map((reason) => ({ labels: { target: t.id, reason }, value: t.failures[reason] }))));
  metric('popsteer_health_not_probed_total', 'counter', `Probes that could not run because this server had no socket (${LOCAL_CAUSES.join(', ')}): neither a target failure nor evidence of a cut-off.`,
    () => source.health().targets.flatMap((t) => LOCAL_CAUSES.map((cause) => ({ labels: { target: t.id, cause }, value: t.notProbed[cause] }))));
  metric('popsteer_health_target_transitions_total', 'counter', 'Up/down changes of each probe target.',
    () => source.health().targets.map((t) => ({ labels: { target: t.id }, value: t.transitions })));
  metric('popsteer_health_subject_up', 'gauge', 'Effective state of each PoP or endpoint as the DNS workers see it (probes, overrides, cut-off freeze): 1 up, 0 down.',
    () => source.health().subjects.map((s) => ({ labels: { subject: s.id }, value: s.up })));
  metric('popsteer_health_subject_transitions_total', 'counter', 'Effective up/down changes of each PoP or endpoint.',
    () => source.health().subjects.map((s) => ({ labels: { subject: s.id }, value: s.transitions })));
  metric('popsteer_health_override', 'gauge', 'Operator overrides in force: 1 per subject with its kind (drain, force-down, force-up).',
    () => source.health().subjects.filter((s) => s.override !== null).map((s) => ({ labels: { subject: s.id, kind: s.override! }, value: 1 })));
  metric('popsteer_health_cut_off', 'gauge', '1 while most targets are down at once and states are frozen ("I am cut off"); this instance is then unfit.',
    () => [{ labels: {}, value: source.health().cutOff }]);
  metric('popsteer_health_probes_in_flight', 'gauge', 'Probes running now.', () => [{ labels: {}, value: source.health().probesInFlight }]);
  metric('popsteer_health_probes_queued_total', 'counter', 'Probes that waited because max_in_flight probes were already running.',
    () => [{ labels: {}, value: source.health().probesQueued }]);
  metric('popsteer_health_probes_skipped_total', 'counter', 'Probes skipped because the previous probe of the target was still running.',
    () => [{ labels: {}, value: source.health().probesSkipped }]);
  metric('popsteer_health_state_file_write_failures_total', 'counter', 'Failed writes of the override state file (overrides still apply in memory).',
    () => [{ labels: {}, value: source.health().stateFileWriteFailures }]);

  metric('popsteer_instance_fit', 'gauge', 'Whether this instance is fit for anycast traffic, as GET /v1/fitness says (and `popsteer anycast` announces): 1 fit, 0 unfit.',
    () => [{ labels: {}, value: source.fit() ? 1 : 0 }]);

  metric('popsteer_dnssec_signature_expiry_seconds', 'gauge', 'Seconds until the served DNSSEC signatures expire (negative once expired); re-signed in the background 7 days before, unfit within 2 days. No sample when no zone is signed.', () => {
    const left = source.dnssecExpirySeconds?.() ?? null;
    return left === null ? [] : [{ labels: {}, value: Math.round(left) }];
  });

  // ---- dnstap (server/dnstap)
  metric('popsteer_dnstap_frames_total', 'counter', 'dnstap frames (AUTH_QUERY, AUTH_RESPONSE) queued by the DNS workers for the output.',
    () => [{ labels: {}, value: source.dnstap().frames }]);
  metric('popsteer_dnstap_dropped_total', 'counter', 'dnstap frames dropped because a worker\'s queue was full: the collector is slow, stopped or gone. Queries are answered regardless.',
    () => [{ labels: {}, value: source.dnstap().dropped }]);
  metric('popsteer_dnstap_connected', 'gauge', '1 while the dnstap output is open (a collector accepted the stream, or the file is open); 0 otherwise or when dnstap is off.',
    () => [{ labels: {}, value: source.dnstap().connected ? 1 : 0 }]);
  const fleetSample = (pick: (h: FleetHealthMetrics) => Array<{ labels: Record<string, string>; value: number }>) => {
    const h = source.fleetHealth?.() ?? null;
    return h === null ? [] : pick(h);
  };
  metric('popsteer_fleet_connected', 'gauge', '1 while this instance is connected to its fleet\'s NATS servers (--fleet); 0 while it answers from the last known fleet state. No sample without --fleet.', () => {
    const connected = source.fleetConnected?.() ?? null;
    return connected === null ? [] : [{ labels: {}, value: connected }];
  });
  metric('popsteer_fleet_revision_served', 'gauge', 'The fleet policy revision this instance serves (popsteer publish). No sample without --fleet or while its own --config files serve.', () => {
    const revision = source.fleetRevisionServed?.() ?? null;
    return revision === null ? [] : [{ labels: {}, value: revision }];
  });
  metric('popsteer_fleet_observers_live', 'gauge', 'Instances of the fleet whose heartbeat is fresh: the observers whose probes count in the health verdict (unless cut off). No sample without --fleet.',
    () => fleetSample((h) => [{ labels: {}, value: h.observersLive }]));
  metric('popsteer_fleet_local_health', 'gauge', '1 while this instance decides health from its own probes of every target because the fleet has been out of reach longer than fleet.grace; 0 while the fleet verdict decides. No sample without --fleet.',
    () => fleetSample((h) => [{ labels: {}, value: h.local ? 1 : 0 }]));
  metric('popsteer_fleet_verdict_disagreements', 'gauge', 'Targets this instance probes where its own probes disagree with the fleet verdict. No sample without --fleet.',
    () => fleetSample((h) => [{ labels: {}, value: h.disagreements }]));
  metric('popsteer_fleet_target_probers', 'gauge', 'Instances that probe each target per interval (rendezvous probers plus its own PoP), against the number of instances without sharding. No sample without --fleet.',
    () => fleetSample((h) => h.probers.map((p) => ({ labels: { target: p.target }, value: p.count }))));
  metric('popsteer_dnstap_connections_total', 'counter', 'Times the dnstap output was opened: 1 for a file, one more for every collector (re)connection.',
    () => [{ labels: {}, value: source.dnstap().connections }]);

  // ---- Configuration
  metric('popsteer_config_reloads_total', 'counter', 'Configuration reloads by result (failure: rejected, the previous set kept serving).',
    () => [{ labels: { result: 'success' }, value: source.reloads.success }, { labels: { result: 'failure' }, value: source.reloads.failure }]);
  metric('popsteer_config_info', 'gauge', 'The active configuration set: its content hash as a label, value 1.',
    () => [{ labels: { hash: source.policyHash() }, value: 1 }]);
  metric('popsteer_config_last_load_timestamp_seconds', 'gauge', 'When the active configuration was loaded (Unix time).',
    () => [{ labels: {}, value: source.policyLoadedAt() / 1000 }]);
  metric('popsteer_geoip_database_build_timestamp_seconds', 'gauge', 'Build time of the GeoIP database in use (Unix time), with its type.', () => {
    const db = source.geoDatabase();
    return [{ labels: { type: db.type }, value: db.buildEpochMs / 1000 }];
  });
  return registry;
}
