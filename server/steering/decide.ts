// Decisions as pure functions over compiled tables. The health-independent
// part (which rule, which candidates in which order) is computed once per
// distinct client location at load time and becomes a DecisionClass; the
// health-dependent part (healthy, failover, weights, prefer-self, first N)
// runs per query over a class — or, with the decision cache, once per class
// and health epoch.

import { declaredLoad } from './signals.ts';
import {
  ALL_DOWN_POOL, ALL_DOWN_SERVFAIL, WEIGHTED_NONE, WEIGHTED_RANDOM,
  type CompiledPolicy, type DecisionClass, type Endpoint, type LocationAttributes,
} from './types.ts';

// ---------------------------------------------------------------- load time

/** A rule as the class builder needs it (the slow-path view of a policy rule). */
export interface RuleSource {
  /** Location conditions; an empty list means "any". CIDR and self conditions are resolved elsewhere. */
  countries: string[];
  continents: string[];
  subdivisions: string[];
  /** Tiers of endpoint indexes as written (pool, or pools in priority order). */
  tiers: number[][];
  /** Health-independent steps, in order. */
  steps: Array<
    | { kind: 'nearest'; limit: number }
    | { kind: 'self'; endpoint: number }
    | { kind: 'geofence'; to: 'client_continent' | 'client_country' | string[]; otherwise: 'keep_all' | 'servfail' | number[] }
  >;
}

export function locationMatches(rule: RuleSource, loc: LocationAttributes): boolean {
  if (rule.countries.length > 0 && !rule.countries.includes(loc.country)) return false;
  if (rule.continents.length > 0 && !rule.continents.includes(loc.continent)) return false;
  if (rule.subdivisions.length > 0 && !rule.subdivisions.includes(loc.subdivision)) return false;
  return true;
}

/** Applies a rule's health-independent steps for one location. */
export function planClass(rule: RuleSource, ruleIndex: number, endpoints: Endpoint[], loc: LocationAttributes, unknownOrder: number[] | null): DecisionClass {
  let tiers = rule.tiers.map((t) => t.slice());
  let servfail = false;
  for (const step of rule.steps) {
    if (step.kind === 'nearest') {
      // A limit keeps the N nearest (gdnsd's auto_dc_limit): fewer distinct
      // candidate lists, so wider ECS scopes, at the price of failover depth.
      tiers = tiers.map((tier) => orderNearestFirst(tier, endpoints, loc, unknownOrder).slice(0, step.limit > 0 ? step.limit : undefined));
    } else if (step.kind === 'self') {
      tiers = tiers.map((tier) => tier.filter((i) => i === step.endpoint));
    } else {
      const keep = (i: number): boolean => {
        const e = endpoints[i];
        if (step.to === 'client_continent') return loc.continent !== '' && e.continent === loc.continent;
        if (step.to === 'client_country') return loc.country !== '' && e.country === loc.country;
        return step.to.includes(e.continent) || step.to.includes(e.country);
      };
      const fenced = tiers.map((tier) => tier.filter(keep));
      if (fenced.some((tier) => tier.length > 0)) tiers = fenced;
      else if (step.otherwise === 'servfail') servfail = true;
      else if (Array.isArray(step.otherwise)) tiers = [step.otherwise.slice()];
    }
  }
  // A PoP pinned by a custom network goes first.
  if (loc.fixedPop >= 0) {
    tiers = tiers.map((tier) => {
      const at = tier.findIndex((i) => endpoints[i].pop === loc.fixedPop);
      if (at <= 0) return tier;
      return [tier[at], ...tier.slice(0, at), ...tier.slice(at + 1)];
    });
  }
  return { rule: ruleIndex, tiers: tiers.map((t) => Int16Array.from(t)), servfail };
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

export function isUp(health: Int32Array, subject: number): boolean {
  return subject < 0 || health[3 + subject] === 1;
}

const scratch = new Int16Array(256);
const scores = new Float64Array(256);

/**
 * Resolves a class under the current health. `stickyKey` identifies the
 * client network that decided (so everyone inside the ECS scope gets the same
 * answer); `random` is a number in [0, 1) for random weighting.
 */
export function resolve(policy: CompiledPolicy, cls: DecisionClass, health: Int32Array, stickyKey: number, random: number, out: Resolution, signals: Float64Array | null = null): void {
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
  let n = 0;
  const tiers = cls.tiers;
  for (let t = 0; t < tiers.length; t++) {
    const tier = tiers[t];
    for (let i = 0; i < tier.length; i++) if (!isUp(health, endpoints[tier[i]].healthSubject)) out.degraded = true;
  }
  if (rule.failoverMinHealthy > 0) {
    // The first tier with enough endpoints up answers.
    for (let t = 0; t < tiers.length; t++) {
      let up = 0;
      const tier = tiers[t];
      for (let i = 0; i < tier.length; i++) if (isUp(health, endpoints[tier[i]].healthSubject)) up++;
      if (up >= rule.failoverMinHealthy || t === tiers.length - 1) {
        n = collect(tier, endpoints, health, rule.healthy, 0);
        out.tier = t;
        if (up >= rule.failoverMinHealthy) break;
      }
    }
  } else {
    for (let t = 0; t < tiers.length; t++) n = collect(tiers[t], endpoints, health, rule.healthy, n);
  }
  if (n === 0) {
    out.allDown = true;
    if (policy.whenAllDown === ALL_DOWN_SERVFAIL) {
      out.outcome = OUTCOME_SERVFAIL;
      return;
    }
    const source = policy.whenAllDown === ALL_DOWN_POOL ? policy.lastResort : null;
    if (source) {
      n = collect(source, endpoints, health, true, 0);
      if (n === 0) n = collect(source, endpoints, health, false, 0);
    } else {
      // Fail open: every endpoint of the class, as configured.
      for (let t = 0; t < tiers.length; t++) n = collect(tiers[t], endpoints, health, false, n);
    }
  }
  if (rule.preferSelfKm > 0 && policy.selfEndpoint >= 0 && n > 0) {
    const self = policy.selfEndpoint;
    const best = scratch[0];
    if (best !== self && isUp(health, endpoints[self].healthSubject)) {
      let at = -1;
      for (let i = 0; i < n; i++) if (scratch[i] === self) at = i;
      if (at >= 0 && policy.selfDistanceKm[best] <= rule.preferSelfKm) {
        for (let i = at; i > 0; i--) scratch[i] = scratch[i - 1];
        scratch[0] = self;
        out.selfPreferred = true;
      }
    }
  }
  if (rule.capacityMark > 0 && n > 1 && signals !== null && !out.selfPreferred) shiftForCapacity(endpoints, signals, rule.capacityMark, stickyKey, out);
  if (rule.weighted !== WEIGHTED_NONE && n > 1 && !out.selfPreferred) {
    if (rule.weighted === WEIGHTED_RANDOM) weightedRandomFirst(n, endpoints, random);
    else rendezvousOrder(n, endpoints, stickyKey);
  }
  const count = n < rule.first ? n : rule.first;
  for (let i = 0; i < count; i++) out.chosen[i] = scratch[i];
  out.count = count;
}

/**
 * Capacity: while the first candidate's declared load L is above the mark M,
 * the share (L − M) / L of client networks (picked by the sticky key, so a
 * network stays put while the share holds) goes to the next candidate
 * instead, which brings the first one's traffic back to about its mark.
 */
function shiftForCapacity(endpoints: Endpoint[], signals: Float64Array, mark: number, stickyKey: number, out: Resolution): void {
  const first = endpoints[scratch[0]].healthSubject;
  if (first < 0) return;
  const load = declaredLoad(signals, first);
  if (!(load > mark)) return;
  const share = (load - mark) / load;
  if ((mix32(stickyKey ^ 0x27d4eb2f) + 0.5) / 4294967296 >= share) return;
  const moved = scratch[0];
  scratch[0] = scratch[1];
  scratch[1] = moved;
  out.capacityShifted = true;
}

function collect(tier: ArrayLike<number>, endpoints: Endpoint[], health: Int32Array, healthyOnly: boolean, n: number): number {
  for (let i = 0; i < tier.length && n < scratch.length; i++) {
    const e = tier[i];
    if (healthyOnly && !isUp(health, endpoints[e].healthSubject)) continue;
    if (endpoints[e].weight === 0) continue;
    let dup = false;
    for (let j = 0; j < n; j++) if (scratch[j] === e) dup = true;
    if (!dup) scratch[n++] = e;
  }
  return n;
}

/** Moves one weighted-random pick to the front; the rest keep their order. */
function weightedRandomFirst(n: number, endpoints: Endpoint[], random: number): void {
  let total = 0;
  for (let i = 0; i < n; i++) total += endpoints[scratch[i]].weight;
  let target = random * total;
  let pick = n - 1;
  for (let i = 0; i < n; i++) {
    target -= endpoints[scratch[i]].weight;
    if (target < 0) { pick = i; break; }
  }
  const chosen = scratch[pick];
  for (let i = pick; i > 0; i--) scratch[i] = scratch[i - 1];
  scratch[0] = chosen;
}

/**
 * Weighted rendezvous hashing: each (network, endpoint) pair gets a score
 * −ln(u)/weight and the lowest wins. A network keeps its endpoint unless that
 * endpoint goes away or the weights move past its score — small weight
 * changes move few networks.
 */
function rendezvousOrder(n: number, endpoints: Endpoint[], key: number): void {
  for (let i = 0; i < n; i++) {
    const e = endpoints[scratch[i]];
    const u = (mix32(key ^ e.idHash) + 0.5) / 4294967296;
    scores[i] = -Math.log(u) / e.weight;
  }
  // Insertion sort by score: n is small.
  for (let i = 1; i < n; i++) {
    const s = scores[i];
    const v = scratch[i];
    let j = i - 1;
    while (j >= 0 && scores[j] > s) {
      scores[j + 1] = scores[j];
      scratch[j + 1] = scratch[j];
      j--;
    }
    scores[j + 1] = s;
    scratch[j + 1] = v;
  }
}

/** A 32-bit integer finaliser (murmur3 fmix32). */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

