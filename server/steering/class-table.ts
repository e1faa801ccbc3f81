// The compile-time half of a policy's location steps, fast enough to run
// once per location group at hundreds of PoPs (where nearly every group has
// its own nearest-PoP order, so memoizing planClass on the order saves
// nothing): the order-independent steps (geofence, self, the rule's
// candidates) are planned once per distinct (rule, country, continent,
// subdivision), and only the `nearest` sort runs per group, on typed arrays,
// with the result interned by a numeric hash instead of a string key.
// planClass (decide.ts) stays the reference: classFor gives what it gives.

import { planClass } from './decide.ts';
import type { DecisionClass, Endpoint, LocationAttributes, RulePlan } from './types.ts';

/** Decision classes of one policy, each kept once (equal rule, servfail and tiers). */
export class ClassInterner {
  readonly classes: DecisionClass[] = [];
  private readonly byHash = new Map<number, number | number[]>();

  intern(c: DecisionClass): number {
    let total = 0;
    for (const t of c.tiers) total += t.length;
    const flat = new Int16Array(total);
    const lengths = new Int32Array(c.tiers.length);
    let at = 0;
    c.tiers.forEach((t, k) => { flat.set(t, at); at += t.length; lengths[k] = t.length; });
    return this.internParts(c.rule, c.servfail, flat, lengths, c.tiers.length);
  }

  /** The class with these tiers (flat[...] cut by lengths[0 .. tierCount)); the arrays are copied when new. */
  internParts(rule: number, servfail: boolean, flat: Int16Array, lengths: Int32Array, tierCount: number): number {
    let h = Math.imul(0x811c9dc5 ^ rule, 0x01000193);
    h = Math.imul(h ^ (servfail ? 1 : 0), 0x01000193);
    let total = 0;
    for (let k = 0; k < tierCount; k++) {
      h = Math.imul(h ^ (lengths[k] + 0x10000), 0x01000193);
      total += lengths[k];
    }
    for (let i = 0; i < total; i++) h = Math.imul(h ^ flat[i], 0x01000193);
    const found = this.byHash.get(h);
    if (found !== undefined) {
      if (typeof found === 'number') {
        if (this.equals(found, rule, servfail, flat, lengths, tierCount)) return found;
      } else {
        for (const i of found) if (this.equals(i, rule, servfail, flat, lengths, tierCount)) return i;
      }
    }
    const tiers: Int16Array[] = [];
    let at = 0;
    for (let k = 0; k < tierCount; k++) {
      tiers.push(flat.slice(at, at + lengths[k]));
      at += lengths[k];
    }
    const index = this.classes.length;
    this.classes.push({ rule, tiers, servfail });
    if (found === undefined) this.byHash.set(h, index);
    else if (typeof found === 'number') this.byHash.set(h, [found, index]);
    else found.push(index);
    return index;
  }

  private equals(index: number, rule: number, servfail: boolean, flat: Int16Array, lengths: Int32Array, tierCount: number): boolean {
    const c = this.classes[index];
    if (c.rule !== rule || c.servfail !== servfail || c.tiers.length !== tierCount) return false;
    let at = 0;
    for (let k = 0; k < tierCount; k++) {
      const t = c.tiers[k];
      if (t.length !== lengths[k]) return false;
      for (let i = 0; i < t.length; i++) if (t[i] !== flat[at + i]) return false;
      at += t.length;
    }
    return true;
  }
}

/**
 * How a rule's location steps split: `filters` are its steps without
 * `nearest` (they keep or drop candidates whatever the order), `limit` the
 * nearest step's limit. Null when splitting would change the result: two
 * nearest steps, or a limited nearest before a filter (the filter would then
 * see a cut list).
 */
interface RuleShape {
  filters: RulePlan;
  sorts: boolean;
  limit: number;
}

function shapeOf(rule: RulePlan): RuleShape | null {
  const steps = rule.locationSteps;
  const nearest = steps.flatMap((s, i) => (s.kind === 'nearest' ? [i] : []));
  if (nearest.length > 1) return null;
  const at = nearest[0] ?? -1;
  const step = at >= 0 ? steps[at] : null;
  const limit = step?.kind === 'nearest' ? step.limit : 0;
  if (at >= 0 && limit > 0 && at !== steps.length - 1) return null;
  return { filters: { ...rule, locationSteps: steps.filter((s) => s.kind !== 'nearest') }, sorts: at >= 0, limit };
}

const MAX_TIER = 1023;

/** A rule's candidates after its steps other than `nearest`, for one set of attributes. */
interface Filtered {
  tiers: Int16Array[];
  servfail: boolean;
  /** Per tier, the PoP of each candidate (negative: an explicit endpoint). */
  sortPops: Int32Array[];
}

export class GroupClassifier {
  private readonly shapes: Array<RuleShape | null>;
  private readonly filtered = new Map<number, Filtered>();
  private keys = new Int32Array(64);
  private readonly keyViews: Int32Array[] = [];
  private flat = new Int16Array(64);
  private lengths = new Int32Array(8);
  private readonly unpinned: LocationAttributes = { popRank: null, country: '', continent: '', subdivision: '', fixedPop: -1, known: false };
  private readonly rules: RulePlan[];
  private readonly endpoints: Endpoint[];
  private readonly unknownOrder: number[] | null;
  private readonly interner: ClassInterner;

  constructor(rules: RulePlan[], endpoints: Endpoint[], unknownOrder: number[] | null, interner: ClassInterner) {
    this.rules = rules;
    this.endpoints = endpoints;
    this.unknownOrder = unknownOrder;
    this.interner = interner;
    this.shapes = rules.map(shapeOf);
  }

  /**
   * The interned class of rule `r` for `loc`: exactly planClass(rules[r], r,
   * endpoints, loc, unknownOrder). `attributes` names loc's (country,
   * continent, subdivision) among those seen by this classifier: the steps
   * other than `nearest` are run once per rule and attributes.
   */
  classFor(r: number, loc: LocationAttributes, attributes: number): number {
    const shape = this.shapes[r];
    const rank = loc.popRank;
    if (shape === null || !loc.known || rank === null) return this.interner.intern(planClass(this.rules[r], r, this.endpoints, loc, this.unknownOrder));
    const key = attributes * this.rules.length + r;
    let pre = this.filtered.get(key);
    if (pre === undefined) {
      const u = this.unpinned;
      u.known = true;
      u.popRank = rank; // read by no filter step; `nearest` is left out
      u.country = loc.country;
      u.continent = loc.continent;
      u.subdivision = loc.subdivision;
      const planned = planClass(shape.filters, r, this.endpoints, u, this.unknownOrder);
      // The sort key of each candidate: its PoP, or past every PoP in written order (orderNearestFirst).
      const sortPops = planned.tiers.map((t) => Int32Array.from(t, (e, i) => (this.endpoints[e].pop >= 0 ? this.endpoints[e].pop : -1 - i)));
      pre = { tiers: planned.tiers, servfail: planned.servfail, sortPops };
      this.filtered.set(key, pre);
    }
    const tiers = pre.tiers;
    let total = 0;
    for (const t of tiers) total += t.length;
    if (this.flat.length < total) this.flat = new Int16Array(2 * total);
    if (this.lengths.length < tiers.length) this.lengths = new Int32Array(2 * tiers.length);
    const flat = this.flat;
    let at = 0;
    for (let k = 0; k < tiers.length; k++) {
      const tier = tiers[k];
      let length = tier.length;
      if (shape.sorts) length = this.sortNearest(tier, pre.sortPops[k], rank, shape.limit, flat, at);
      else flat.set(tier, at);
      if (loc.fixedPop >= 0) this.pinFirst(flat, at, length, loc.fixedPop);
      this.lengths[k] = length;
      at += length;
    }
    return this.interner.internParts(r, pre.servfail, flat, this.lengths, tiers.length);
  }

  /** Nearest first by the location's ranking, explicit endpoints after in written order (orderNearestFirst); cut at limit. */
  private sortNearest(tier: Int16Array, pops: Int32Array, rank: Int16Array, limit: number, out: Int16Array, at: number): number {
    const m = tier.length;
    if (m > MAX_TIER) throw new RangeError(`a pool of more than ${MAX_TIER} endpoints`);
    if (this.keys.length < m) this.keys = new Int32Array(2 * m);
    const keys = this.keys;
    for (let i = 0; i < m; i++) {
      const pop = pops[i];
      keys[i] = ((pop >= 0 ? rank[pop] : 0x8000 + i) << 10) | i;
    }
    let view = this.keyViews[m];
    if (view === undefined || view.buffer !== keys.buffer) view = this.keyViews[m] = keys.subarray(0, m);
    const sorted = view.sort();
    const length = limit > 0 && limit < m ? limit : m;
    for (let i = 0; i < length; i++) out[at + i] = tier[sorted[i] & MAX_TIER];
    return length;
  }

  /** The endpoint of the pinned PoP goes first, the others keep their order. */
  private pinFirst(flat: Int16Array, at: number, length: number, pop: number): void {
    for (let i = 0; i < length; i++) {
      if (this.endpoints[flat[at + i]].pop !== pop) continue;
      const pinned = flat[at + i];
      flat.copyWithin(at + 1, at, at + i);
      flat[at] = pinned;
      return;
    }
  }
}
