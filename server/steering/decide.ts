// Decisions as pure functions over compiled tables. A rule's steps run in
// the order written, in two phases: the location steps (nearest, geofence,
// self) once per distinct client location when the policy compiles, giving a
// DecisionClass; the health steps (healthy, failover, prefer_self, capacity,
// weighted, first) per query over a class — or, with the decision cache,
// once per class and health epoch.
//
// Both phases record what each step kept and dropped when given a
// DecisionTrace: explain, what-if and diff print the decider's own account
// instead of reconstructing it. The query path passes no trace and
// allocates nothing.

import { mix32 } from '../lib/hash.ts';
import { declaredLoad } from './signals.ts';
import {
  ALL_DOWN_POOL, ALL_DOWN_SERVFAIL, OP_CAPACITY, OP_FAILOVER, OP_FIRST, OP_HEALTHY, OP_PREFER_SELF, OP_WEIGHTED,
  WEIGHTED_RANDOM, type CompiledPolicy, type DecisionClass, type Endpoint, type LocationAttributes, type LocationStep,
  type RulePlan, type StepPlan,
} from './types.ts';

// ---------------------------------------------------------------- traces

/** What one step did: the candidates after it, in order, and those it removed with why. */
export interface TracedStep {
  step: StepPlan | { kind: 'candidates' } | { kind: 'pinned'; pop: number } | { kind: 'when_all_down'; action: string };
  kept: number[];
  dropped: Array<{ endpoint: number; reason: string }>;
  /** A sentence when the step did something other than filter or order (fell back, was skipped). */
  note: string;
}

/** The decider's own record of one decision, filled when passed to planClass() or resolve(). */
export class DecisionTrace {
  readonly steps: TracedStep[] = [];

  /** `reason` names why the endpoints missing from `after` were dropped; '' lists none (an order, or `first` cutting the list). */
  record(step: TracedStep['step'], before: readonly number[], after: readonly number[], reason: string, note = ''): void {
    const dropped = reason === '' ? [] : before.filter((e, i) => !after.includes(e) && before.indexOf(e) === i).map((endpoint) => ({ endpoint, reason }));
    this.steps.push({ step, kept: after.slice(), dropped, note });
  }
}

function flat(tiers: readonly (readonly number[] | Int16Array)[]): number[] {
  const out: number[] = [];
  for (const tier of tiers) for (const e of tier) if (!out.includes(e)) out.push(e);
  return out;
}

// ---------------------------------------------------------------- load time

export function locationMatches(rule: RulePlan, loc: LocationAttributes): boolean {
  const m = rule.match;
  if (m.countries.length > 0 && !m.countries.includes(loc.country)) return false;
  if (m.continents.length > 0 && !m.continents.includes(loc.continent)) return false;
  if (m.subdivisions.length > 0 && !m.subdivisions.includes(loc.subdivision)) return false;
  if (m.asns.length > 0 && !m.asns.includes(loc.asn)) return false;
  return true;
}

/** Applies a rule's location steps, in order, for one location. */
export function planClass(rule: RulePlan, ruleIndex: number, endpoints: Endpoint[], loc: LocationAttributes, unknownOrder: number[] | null, trace: DecisionTrace | null = null): DecisionClass {
  let tiers = rule.tiers.map((t) => t.slice());
  let servfail = false;
  trace?.record({ kind: 'candidates' }, [], flat(tiers), '');
  for (const step of rule.locationSteps) {
    const before = trace ? flat(tiers) : [];
    let note = '';
    if (step.kind === 'nearest') {
      // A limit keeps the N nearest (gdnsd's auto_dc_limit): fewer distinct
      // candidate lists, so wider ECS scopes, at the price of failover depth.
      tiers = tiers.map((tier) => orderNearestFirst(tier, endpoints, loc, unknownOrder).slice(0, step.limit > 0 ? step.limit : undefined));
      if (!loc.known) note = unknownOrder ? 'the client has no location: unknown_location goes first, the rest as written' : 'the client has no location: the order as written';
    } else if (step.kind === 'self') {
      tiers = tiers.map((tier) => tier.filter((i) => i === step.endpoint));
      if (step.endpoint < 0) note = 'this PoP is not a candidate: nothing is left, when_all_down decides';
    } else {
      const fenced = tiers.map((tier) => tier.filter((i) => insideFence(step, endpoints[i], loc)));
      if (fenced.some((tier) => tier.length > 0)) tiers = fenced;
      else if (step.otherwise === 'servfail') {
        servfail = true;
        note = 'no candidate inside the fence: else servfail';
      } else if (Array.isArray(step.otherwise)) {
        tiers = [step.otherwise.slice()];
        note = 'no candidate inside the fence: else the pool';
      } else note = 'no candidate inside the fence: else keep_all';
    }
    trace?.record(step, before, servfail ? [] : flat(tiers), reasonOf(step), note);
  }
  // A PoP pinned by a custom network goes first.
  if (loc.fixedPop >= 0) {
    const before = trace ? flat(tiers) : [];
    tiers = tiers.map((tier) => {
      const at = tier.findIndex((i) => endpoints[i].pop === loc.fixedPop);
      if (at <= 0) return tier;
      return [tier[at], ...tier.slice(0, at), ...tier.slice(at + 1)];
    });
    trace?.record({ kind: 'pinned', pop: loc.fixedPop }, before, flat(tiers), '');
  }
  return { rule: ruleIndex, tiers: tiers.map((t) => Int16Array.from(t)), servfail };
}

function insideFence(step: Extract<LocationStep, { kind: 'geofence' }>, e: Endpoint, loc: LocationAttributes): boolean {
  if (step.to === 'client_continent') return loc.continent !== '' && e.continent === loc.continent;
  if (step.to === 'client_country') return loc.country !== '' && e.country === loc.country;
  return step.to.includes(e.continent) || step.to.includes(e.country);
}

function reasonOf(step: LocationStep): string {
  return step.kind === 'nearest' ? 'beyond the nearest limit' : step.kind === 'self' ? 'not this PoP' : 'outside the fence';
}

/**
 * Nearest first, by the location's PoP ranking (ties were broken by PoP id
 * when the ranking was made). Explicit endpoints without a PoP keep their
 * written order after the PoPs. With no location, `unknownOrder` (endpoint
 * indexes) goes first: this instance's PoP, or the policy's fallback list.
 */
function orderNearestFirst(tier: number[], endpoints: Endpoint[], loc: LocationAttributes, unknownOrder: number[] | null): number[] {
  const rank = loc.popRank;
  if (!loc.known || rank === null) {
    if (!unknownOrder) return tier;
    const first = unknownOrder.filter((i) => tier.includes(i));
    return [...first, ...tier.filter((i) => !first.includes(i))];
  }
  const key = (i: number): number => (endpoints[i].pop >= 0 ? rank[endpoints[i].pop] : 1e6 + tier.indexOf(i));
  return tier.slice().sort((a, b) => key(a) - key(b));
}

/** Key identifying a class by everything that decides its answers (for de-duplication). */
export function classKey(c: DecisionClass): string {
  return `${c.rule}|${c.servfail ? 1 : 0}|${c.tiers.map((t) => t.join(',')).join(';')}`;
}

// ---------------------------------------------------------------- query time

export const OUTCOME_ANSWER = 0;
export const OUTCOME_SERVFAIL = 1;

/** Reused result of resolve(); `chosen[0 .. count)` are endpoint indexes. */
export class Resolution {
  readonly chosen = new Int16Array(64);
  count = 0;
  outcome = OUTCOME_ANSWER;
  /** Some candidate of the class is down (use the degraded TTL). */
  degraded = false;
  /** Every candidate was down and when_all_down applied. */
  allDown = false;
  /** this instance's PoP was preferred (prefer_self_within_km). */
  selfPreferred = false;
  /** Which tier answered (failover). */
  tier = 0;
  /** A capacity step moved this client off an overloaded first candidate. */
  capacityShifted = false;

  copyFrom(other: Resolution): this {
    this.chosen.set(other.chosen.subarray(0, other.count));
    this.count = other.count;
    this.outcome = other.outcome;
    this.degraded = other.degraded;
    this.allDown = other.allDown;
    this.selfPreferred = other.selfPreferred;
    this.tier = other.tier;
    this.capacityShifted = other.capacityShifted;
    return this;
  }
}

/**
 * Whether health subject `subject` is up. Subjects without health (-1) and
 * subjects beyond the table (a table made for fewer PoPs) are up, as the
 * health table itself reads them (health/table.ts readHealth): fail open.
 */
export function isUp(health: Int32Array, subject: number): boolean {
  return subject < 0 || subject >= health[2] || health[3 + subject] === 1;
}

// The candidate list while the steps run: endpoint, and the tier it came from;
// its length and whether tiers are merged live in `cur` (a const object: module
// `let`s would cost a hole check on every access).
const list = new Int16Array(256);
const listTier = new Int16Array(256);
const scores = new Float64Array(256);
const cur = { n: 0, collapsed: false };

/**
 * Resolves a class under the current health by running the rule's health
 * steps in the order written. `stickyKey` identifies the client network that
 * decided (so everyone inside the ECS scope gets the same answer); `random`
 * is a number in [0, 1) for random weighting.
 */
export function resolve(policy: CompiledPolicy, cls: DecisionClass, health: Int32Array, stickyKey: number, random: number, out: Resolution,
  signals: Float64Array | null = null, trace: DecisionTrace | null = null): void {
  out.count = 0;
  out.outcome = OUTCOME_ANSWER;
  out.degraded = false;
  out.allDown = false;
  out.selfPreferred = false;
  out.tier = 0;
  out.capacityShifted = false;
  if (cls.servfail) {
    out.outcome = OUTCOME_SERVFAIL;
    return;
  }
  const rule = policy.rules[cls.rule];
  const endpoints = policy.endpoints;
  const tiers = cls.tiers;
  loadCandidates(tiers, endpoints, health, out);
  if (cur.n === 0 && !applyWhenAllDown(policy, cls, health, out, trace)) return;
  const ops = rule.healthOps;
  const args = rule.healthArgs;
  let count = rule.first;
  for (let s = 0; s < ops.length; s++) {
    const op = ops[s];
    const before = trace !== null ? Array.from(list.subarray(0, cur.n)) : null;
    let note = '';
    if (op === OP_HEALTHY || op === OP_FAILOVER) {
      if (out.allDown) {
        note = 'skipped: when_all_down already chose the candidates';
      } else {
        if (op === OP_HEALTHY) keepHealthy(endpoints, health);
        else note = chooseTier(tiers.length, args[s], endpoints, health, out);
        if (cur.n === 0) {
          trace?.record(rule.healthSteps[s], before!, [], op === OP_HEALTHY ? 'down' : 'not in the chosen pool', note);
          if (!applyWhenAllDown(policy, cls, health, out, trace)) return;
          continue;
        }
      }
    } else {
      collapse();
      if (op === OP_PREFER_SELF) preferSelf(policy, args[s], health, out);
      else if (op === OP_CAPACITY) note = shiftForCapacity(endpoints, signals, args[s], stickyKey, out);
      else if (op === OP_WEIGHTED) note = orderByWeight(args[s], endpoints, stickyKey, random, out);
      else if (op === OP_FIRST) count = args[s];
    }
    if (trace !== null) trace.record(rule.healthSteps[s], before!, Array.from(list.subarray(0, op === OP_FIRST ? Math.min(cur.n, count) : cur.n)), reasonFor(op), note);
  }
  collapse();
  if (count > cur.n) count = cur.n;
  for (let i = 0; i < count; i++) out.chosen[i] = list[i];
  out.count = count;
}

/** The class's candidates, tier after tier (an endpoint may sit in several tiers), weight-0 endpoints left out. */
function loadCandidates(tiers: Int16Array[], endpoints: Endpoint[], health: Int32Array, out: Resolution): void {
  let n = 0;
  let degraded = false;
  for (let t = 0; t < tiers.length; t++) {
    const tier = tiers[t];
    for (let i = 0; i < tier.length; i++) {
      const e = tier[i];
      const endpoint = endpoints[e];
      if (!isUp(health, endpoint.healthSubject)) degraded = true;
      if (endpoint.weight === 0 || n >= list.length) continue;
      list[n] = e;
      listTier[n] = t;
      n++;
    }
  }
  out.degraded = degraded;
  cur.n = n;
  cur.collapsed = tiers.length < 2;
}

/** Tiers become one list in priority order, each endpoint once (pools without failover are one list). */
function collapse(): void {
  if (cur.collapsed) return;
  cur.collapsed = true;
  let kept = 0;
  const n = cur.n;
  for (let i = 0; i < n; i++) {
    let seen = false;
    for (let j = 0; j < kept; j++) if (list[j] === list[i]) seen = true;
    if (!seen) list[kept++] = list[i];
  }
  cur.n = kept;
}

function keepHealthy(endpoints: Endpoint[], health: Int32Array): void {
  let kept = 0;
  const n = cur.n;
  for (let i = 0; i < n; i++) {
    if (!isUp(health, endpoints[list[i]].healthSubject)) continue;
    list[kept] = list[i];
    listTier[kept] = listTier[i];
    kept++;
  }
  cur.n = kept;
}

/** Failover: the first tier with at least `minHealthy` endpoints up answers (the last one when none has). */
function chooseTier(tierCount: number, minHealthy: number, endpoints: Endpoint[], health: Int32Array, out: Resolution): string {
  let chosen = tierCount - 1;
  for (let t = 0; t < tierCount; t++) {
    let up = 0;
    for (let i = 0; i < cur.n; i++) if (listTier[i] === t && isUp(health, endpoints[list[i]].healthSubject)) up++;
    if (up >= minHealthy) {
      chosen = t;
      break;
    }
  }
  let kept = 0;
  for (let i = 0; i < cur.n; i++) {
    if (listTier[i] !== chosen) continue;
    list[kept] = list[i];
    listTier[kept] = chosen;
    kept++;
  }
  cur.n = kept;
  cur.collapsed = true;
  out.tier = chosen;
  return chosen > 0 ? `pool #${chosen + 1} answers: the pools before it have fewer than ${minHealthy} up` : '';
}

/** No candidate left: fail open, a last-resort pool, or SERVFAIL. Returns false when the answer is SERVFAIL. */
function applyWhenAllDown(policy: CompiledPolicy, cls: DecisionClass, health: Int32Array, out: Resolution, trace: DecisionTrace | null): boolean {
  out.allDown = true;
  const endpoints = policy.endpoints;
  if (policy.whenAllDown === ALL_DOWN_SERVFAIL) {
    out.outcome = OUTCOME_SERVFAIL;
    trace?.record({ kind: 'when_all_down', action: 'servfail' }, [], [], '', 'no candidate left: when_all_down servfail');
    return false;
  }
  cur.n = 0;
  cur.collapsed = true;
  if (policy.whenAllDown === ALL_DOWN_POOL) {
    // The last-resort pool's healthy endpoints, or all of them when none is up.
    appendAll(policy.lastResort, endpoints, health, true);
    if (cur.n === 0) appendAll(policy.lastResort, endpoints, health, false);
  } else {
    // Fail open: every endpoint of the class, as configured.
    for (let t = 0; t < cls.tiers.length; t++) appendAll(cls.tiers[t], endpoints, health, false);
  }
  trace?.record({ kind: 'when_all_down', action: policy.whenAllDown === ALL_DOWN_POOL ? 'last_resort' : 'fail_open' }, [], Array.from(list.subarray(0, cur.n)), '',
    policy.whenAllDown === ALL_DOWN_POOL ? 'no candidate left: the last-resort pool answers' : 'no candidate left: fail open, every candidate as if up');
  return true;
}

function appendAll(tier: ArrayLike<number>, endpoints: Endpoint[], health: Int32Array, healthyOnly: boolean): void {
  for (let i = 0; i < tier.length && cur.n < list.length; i++) {
    const e = tier[i];
    if (healthyOnly && !isUp(health, endpoints[e].healthSubject)) continue;
    if (endpoints[e].weight === 0) continue;
    let dup = false;
    for (let j = 0; j < cur.n; j++) if (list[j] === e) dup = true;
    if (!dup) list[cur.n++] = e;
  }
}

/** This instance's PoP goes first when it is up and within `km` of the best candidate; later steps keep it there. */
function preferSelf(policy: CompiledPolicy, km: number, health: Int32Array, out: Resolution): void {
  const self = policy.selfEndpoint;
  if (self < 0 || cur.n === 0) return;
  const best = list[0];
  if (best === self || !isUp(health, policy.endpoints[self].healthSubject)) return;
  let at = -1;
  for (let i = 0; i < cur.n; i++) if (list[i] === self) at = i;
  if (at < 0 || !(policy.selfDistanceKm[best] <= km)) return;
  for (let i = at; i > 0; i--) list[i] = list[i - 1];
  list[0] = self;
  out.selfPreferred = true;
}

/**
 * Capacity: while the first candidate's declared load L is above the mark M,
 * the share (L − M) / L of client networks (picked by the sticky key, so a
 * network stays put while the share holds) goes to the next candidate
 * instead, which brings the first one's traffic back to about its mark.
 * After a weighted step, "first" is the weights' pick for this network.
 */
function shiftForCapacity(endpoints: Endpoint[], signals: Float64Array | null, mark: number, stickyKey: number, out: Resolution): string {
  if (cur.n < 2 || out.selfPreferred || signals === null) return '';
  const first = endpoints[list[0]].healthSubject;
  if (first < 0) return '';
  const load = declaredLoad(signals, first);
  if (!(load > mark)) return '';
  const share = (load - mark) / load;
  if ((mix32(stickyKey ^ 0x27d4eb2f) + 0.5) / 4294967296 >= share) return '';
  const moved = list[0];
  list[0] = list[1];
  list[1] = moved;
  out.capacityShifted = true;
  return `load ${load} above the mark ${mark}: this network is in the ${Math.round(share * 100)}% moved to the next candidate`;
}

function orderByWeight(mode: number, endpoints: Endpoint[], stickyKey: number, random: number, out: Resolution): string {
  if (cur.n < 2) return '';
  if (out.selfPreferred) return 'skipped: this PoP was preferred';
  if (mode === WEIGHTED_RANDOM) weightedRandomFirst(endpoints, random);
  else rendezvousOrder(endpoints, stickyKey);
  return '';
}

/** Moves one weighted-random pick to the front; the rest keep their order. */
function weightedRandomFirst(endpoints: Endpoint[], random: number): void {
  let total = 0;
  for (let i = 0; i < cur.n; i++) total += endpoints[list[i]].weight;
  let target = random * total;
  let pick = cur.n - 1;
  for (let i = 0; i < cur.n; i++) {
    target -= endpoints[list[i]].weight;
    if (target < 0) { pick = i; break; }
  }
  const chosen = list[pick];
  for (let i = pick; i > 0; i--) list[i] = list[i - 1];
  list[0] = chosen;
}

/**
 * Weighted rendezvous hashing: each (network, endpoint) pair gets a score
 * −ln(u)/weight and the lowest wins. A network keeps its endpoint unless that
 * endpoint goes away or the weights move past its score — small weight
 * changes move few networks.
 */
function rendezvousOrder(endpoints: Endpoint[], key: number): void {
  const n = cur.n;
  for (let i = 0; i < n; i++) {
    const e = endpoints[list[i]];
    const u = (mix32(key ^ e.idHash) + 0.5) / 4294967296;
    scores[i] = -Math.log(u) / e.weight;
  }
  // Insertion sort by score: cur.n is small.
  for (let i = 1; i < cur.n; i++) {
    const s = scores[i];
    const v = list[i];
    let j = i - 1;
    while (j >= 0 && scores[j] > s) {
      scores[j + 1] = scores[j];
      list[j + 1] = list[j];
      j--;
    }
    scores[j + 1] = s;
    list[j + 1] = v;
  }
}

function reasonFor(op: number): string {
  return op === OP_HEALTHY ? 'down' : op === OP_FAILOVER ? 'not in the chosen pool' : '';
}

