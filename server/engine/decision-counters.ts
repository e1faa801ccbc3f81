// Steering decisions counted per [policy][rule][endpoint] as plain increments
// into a Float64Array. Like engine/counters.ts, every DNS worker owns one
// region of a SharedArrayBuffer and the admin thread sums the regions when it
// reads them. The layout depends on the policy set, so main allocates a new
// buffer with every snapshot it publishes; the admin carries the totals of a
// retired buffer forward (DecisionTotals), so the exported counters never go
// backwards on a reload.
//
// Layout of one worker's region, policy after policy:
//   [rule][endpoint + 1]  answers by rule and first endpoint (slot 0: none, i.e. SERVFAIL)
//   [fail_open, last_resort, servfail]  outcomes when every candidate was down / geofenced out

import { classAt } from '../steering/lazy-classes.ts';
import { OUTCOME_SERVFAIL, type Resolution } from '../steering/decide.ts';
import { ALL_DOWN_FAIL_OPEN, ALL_DOWN_POOL, type CompiledPolicy, type SteeringTables } from '../steering/types.ts';

const DECISION_OUTCOMES = ['fail_open', 'last_resort', 'servfail'] as const;
const OUTCOME_FAIL_OPEN = 0;
const OUTCOME_LAST_RESORT = 1;
const OUTCOME_SERVFAIL_SLOT = 2;

/** Label shown for answers that named no endpoint (SERVFAIL). */
export const NO_ENDPOINT = '(none)';

interface DecisionLayout {
  /** First slot of each policy in a worker's region. */
  policyBase: Int32Array;
  /** Slots in one worker's region. */
  regionSize: number;
}

function outcomeBase(policy: CompiledPolicy, base: number): number {
  return base + policy.rules.length * (policy.endpoints.length + 1);
}

function decisionLayout(tables: SteeringTables | null): DecisionLayout {
  const policies = tables?.policies ?? [];
  const policyBase = new Int32Array(policies.length);
  let size = 0;
  policies.forEach((policy, p) => {
    policyBase[p] = size;
    size = outcomeBase(policy, size) + DECISION_OUTCOMES.length;
  });
  return { policyBase, regionSize: size };
}

/** A buffer for every worker's region under this policy set. */
export function createDecisionCounterBuffer(tables: SteeringTables | null, workers: number): SharedArrayBuffer {
  const { regionSize } = decisionLayout(tables);
  return new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * Math.max(1, regionSize) * Math.max(1, workers));
}

/** What the query path knows after a steered answer (steering-hook's DecisionTrace, narrowed). */
interface DecisionTraceView {
  policy: number;
  class: number;
  resolution: Resolution;
}

/**
 * The worker side: one per (worker, policy set). record() runs once per
 * steered query and does array reads and one or two increments.
 */
export class DecisionRecorder {
  private readonly tables: SteeringTables;
  private readonly values: Float64Array;
  private readonly policyBase: Int32Array;
  /** Rule, endpoint (-1 none) and outcome (-1 none) of the last record(), for the query log. */
  rule = -1;
  endpoint = -1;
  outcome = -1;
  /** The counter slots the last record() incremented (the outcome's -1 when none), for replaying it (engine/answer-cache.ts). */
  decisionSlot = -1;
  outcomeSlot = -1;

  constructor(tables: SteeringTables, buffer: SharedArrayBuffer, worker: number) {
    const layout = decisionLayout(tables);
    this.tables = tables;
    this.policyBase = layout.policyBase;
    const region = Math.max(1, layout.regionSize);
    this.values = new Float64Array(buffer, worker * region * Float64Array.BYTES_PER_ELEMENT, region);
  }

  /** The trace's resolution is the cached one on a decision-cache hit, so it is always this query's. */
  record(trace: DecisionTraceView): void {
    const p = trace.policy;
    const policy = this.tables.policies[p];
    const cls = classAt(policy, trace.class);
    const rule = cls.rule;
    const r = trace.resolution;
    const endpointSlot = r.count > 0 ? r.chosen[0] + 1 : 0;
    const outcomeSlot = r.outcome === OUTCOME_SERVFAIL ? OUTCOME_SERVFAIL_SLOT + 1
      : !r.allDown ? 0
        : policy.whenAllDown === ALL_DOWN_POOL ? OUTCOME_LAST_RESORT + 1
          : policy.whenAllDown === ALL_DOWN_FAIL_OPEN ? OUTCOME_FAIL_OPEN + 1 : 0;
    const base = this.policyBase[p];
    this.decisionSlot = base + rule * (policy.endpoints.length + 1) + endpointSlot;
    this.outcomeSlot = outcomeSlot > 0 ? outcomeBase(policy, base) + outcomeSlot - 1 : -1;
    this.values[this.decisionSlot]++;
    if (this.outcomeSlot >= 0) this.values[this.outcomeSlot]++;
    this.rule = rule;
    this.endpoint = endpointSlot - 1;
    this.outcome = outcomeSlot - 1;
  }

  /** Counts a decision again by the slots a record() of this recorder gave (a reply sent again from the answer cache). */
  countAgain(decisionSlot: number, outcomeSlot: number): void {
    this.values[decisionSlot]++;
    if (outcomeSlot >= 0) this.values[outcomeSlot]++;
  }
}

export interface DecisionCount {
  name: string;
  rule: string;
  /** Endpoint id (a PoP id or an explicit endpoint's id), or NO_ENDPOINT. */
  endpoint: string;
  /** PoP catalog ordinal of the endpoint, -1 for explicit endpoints and none. */
  pop: number;
  count: number;
}

export interface OutcomeCount {
  name: string;
  outcome: (typeof DECISION_OUTCOMES)[number];
  count: number;
}

/** Sums of every worker's region, by label. */
function readDecisionCounts(tables: SteeringTables | null, buffer: SharedArrayBuffer, workers: number): { decisions: DecisionCount[]; outcomes: OutcomeCount[] } {
  const decisions: DecisionCount[] = [];
  const outcomes: OutcomeCount[] = [];
  if (!tables) return { decisions, outcomes };
  const { policyBase, regionSize } = decisionLayout(tables);
  const all = new Float64Array(buffer);
  const region = Math.max(1, regionSize);
  const sum = (slot: number): number => {
    let total = 0;
    for (let w = 0; w < workers; w++) total += all[w * region + slot];
    return total;
  };
  tables.policies.forEach((policy, p) => {
    const stride = policy.endpoints.length + 1;
    policy.rules.forEach((rule, r) => {
      for (let e = -1; e < policy.endpoints.length; e++) {
        const count = sum(policyBase[p] + r * stride + e + 1);
        if (count === 0) continue;
        const endpoint = e >= 0 ? policy.endpoints[e] : null;
        decisions.push({ name: policy.name, rule: rule.name, endpoint: endpoint?.id ?? NO_ENDPOINT, pop: endpoint?.pop ?? -1, count });
      }
    });
    DECISION_OUTCOMES.forEach((outcome, o) => {
      outcomes.push({ name: policy.name, outcome, count: sum(outcomeBase(policy, policyBase[p]) + o) });
    });
  });
  return { decisions, outcomes };
}

const keyOf = (...parts: string[]): string => parts.join('\u0000');

/**
 * Totals that survive policy reloads: the counts of every retired buffer are
 * folded in when a new buffer shows up, keyed by label values.
 */
export class DecisionTotals {
  private readonly retiredDecisions = new Map<string, DecisionCount>();
  private readonly retiredOutcomes = new Map<string, OutcomeCount>();
  private buffer: SharedArrayBuffer | null = null;
  private tables: SteeringTables | null = null;
  private readonly workers: number;

  constructor(workers: number) {
    this.workers = workers;
  }

  read(tables: SteeringTables | null, buffer: SharedArrayBuffer): { decisions: DecisionCount[]; outcomes: OutcomeCount[] } {
    if (this.buffer !== null && this.buffer !== buffer) {
      const retired = readDecisionCounts(this.tables, this.buffer, this.workers);
      for (const d of retired.decisions) addTo(this.retiredDecisions, keyOf(d.name, d.rule, d.endpoint), d);
      for (const o of retired.outcomes) addTo(this.retiredOutcomes, keyOf(o.name, o.outcome), o);
    }
    this.buffer = buffer;
    this.tables = tables;
    const live = readDecisionCounts(tables, buffer, this.workers);
    return {
      decisions: merged(this.retiredDecisions, live.decisions, (d) => keyOf(d.name, d.rule, d.endpoint)),
      outcomes: merged(this.retiredOutcomes, live.outcomes, (o) => keyOf(o.name, o.outcome)),
    };
  }
}

function addTo<T extends { count: number }>(map: Map<string, T>, key: string, item: T): void {
  const existing = map.get(key);
  if (existing) existing.count += item.count;
  else map.set(key, { ...item });
}

function merged<T extends { count: number }>(retired: Map<string, T>, live: T[], key: (item: T) => string): T[] {
  const out = new Map<string, T>();
  for (const [k, item] of retired) out.set(k, { ...item });
  for (const item of live) addTo(out, key(item), item);
  return [...out.values()];
}
