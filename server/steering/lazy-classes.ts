// Decision classes made on first sight, per thread. A policy compiles to a
// plan (which rule each CIDR variant stands for, which location attributes
// its rules read); the class of a location group is worked out the first
// time a query from that group reaches the policy in this thread, and kept
// in a bounded memo.
//
// Why: at hundreds of PoPs nearly every location group (145,000 at
// GeoLite2-City × 300 PoPs) has its own nearest order, so classifying every
// group of every policy at compile cost about 0.15–0.2 s of CPU and a table
// per policy; a thousand policies took minutes to start. Clients come from a
// small share of the groups, so classifying on demand costs per group seen,
// not per group that exists.
//
// Class numbers are per thread (each thread interns its own classes), which
// is all that their users need: the per-class decision cache and the class
// memo are per thread too, and explain asks the thread that decided.

import { countryText, stringAt, CONTINENT_CODES } from '../geo/codes.ts';
import { ClassInterner, GroupClassifier } from './class-table.ts';
import { locationMatches, planClass } from './decide.ts';
import type { CompiledPolicy, DecisionClass, LocationAttributes } from './types.ts';

export const USES_COUNTRY = 1;
export const USES_CONTINENT = 2;
export const USES_SUBDIVISION = 4;
export const USES_ASN = 8;

/** Memo entries, a power of two: 524,288 (group, policy, variant) → class in 6 MiB per thread. */
const GROUP_MEMO_ENTRIES = 524_288;
const MAX_POLICY_ID = 0x3fffff;

let memoGroup: Int32Array | null = null;
let memoTag: Int32Array | null = null;
let memoClass: Int32Array | null = null;
let nextId = 0;

function memoReady(): void {
  if (memoTag !== null) return;
  memoGroup = new Int32Array(GROUP_MEMO_ENTRIES);
  memoTag = new Int32Array(GROUP_MEMO_ENTRIES).fill(-1);
  memoClass = new Int32Array(GROUP_MEMO_ENTRIES);
}

/** A fresh id for a policy's classes in this thread; when the ids wrap, the memo is cleared (an epoch). */
function newId(): number {
  memoReady();
  if (nextId > MAX_POLICY_ID) {
    nextId = 0;
    memoTag!.fill(-1);
  }
  return nextId++;
}

/** The class of every location group of one variant, on demand (geo/scope.ts lookupGroupClass reads it). */
interface GroupClasses {
  get(group: number): number;
}

/** One policy's classes in this thread. */
export class PolicyClasses {
  readonly interner = new ClassInterner();
  private readonly classifier: GroupClassifier;
  private readonly id = newId();
  private readonly attributeIds = new Map<string, number>();
  /** Rule per (attributes, variant), -1 until asked. */
  private ruleOf = new Int32Array(64).fill(-1);
  private readonly unknownClass: Int32Array;
  private readonly loc: LocationAttributes = { popRank: null, country: '', continent: '', subdivision: '', fixedPop: -1, known: false, asn: 0 };
  readonly variants: GroupClasses[];
  private readonly policy: CompiledPolicy;

  constructor(policy: CompiledPolicy) {
    this.policy = policy;
    this.classifier = new GroupClassifier(policy.rules, policy.endpoints, policy.unknownOrder, this.interner);
    const count = policy.plan.variantRules.length;
    this.unknownClass = new Int32Array(count).fill(-1);
    this.variants = Array.from({ length: count }, (_, v) => ({ get: (group: number) => this.classOf(v, group) }));
    // A uniform policy answers class 0 everywhere: make it first.
    if (policy.plan.uniform) this.classOf(0, policy.groups.count);
  }

  get classes(): DecisionClass[] {
    return this.interner.classes;
  }

  /** The class of `group` (groups.count: addresses without data) under variant `variant`. */
  classOf(variant: number, group: number): number {
    const tag = (this.id << 8) | variant;
    let h = Math.imul(group ^ 0x9e3779b1, 0x85ebca77);
    h = Math.imul(h ^ (h >>> 13) ^ tag, 0xc2b2ae3d);
    const slot = (h ^ (h >>> 16)) & (GROUP_MEMO_ENTRIES - 1);
    if (memoTag![slot] === tag && memoGroup![slot] === group) return memoClass![slot];
    const c = this.classify(variant, group);
    memoTag![slot] = tag;
    memoGroup![slot] = group;
    memoClass![slot] = c;
    return c;
  }

  private classify(variant: number, group: number): number {
    const groups = this.policy.groups;
    if (group >= groups.count) return this.unknown(variant);
    const uses = this.policy.plan.uses;
    const loc = this.loc;
    const order = groups.order[group];
    loc.known = order >= 0;
    loc.popRank = order >= 0 ? groups.ranks.subarray(order * groups.popCount, (order + 1) * groups.popCount) : null;
    loc.country = uses & USES_COUNTRY ? countryText(groups.country[group]) : '';
    loc.continent = uses & USES_CONTINENT ? CONTINENT_CODES[groups.continent[group]] ?? '' : '';
    loc.subdivision = uses & USES_SUBDIVISION ? stringAt(groups.strings, groups.subdivision[group]) : '';
    loc.fixedPop = groups.fixedPop[group];
    loc.asn = uses & USES_ASN ? groups.asn[group] : 0;
    const key = `${loc.country}|${loc.continent}|${loc.subdivision}|${loc.asn}|${loc.known ? 1 : 0}`;
    let attributes = this.attributeIds.get(key);
    if (attributes === undefined) this.attributeIds.set(key, (attributes = this.attributeIds.size));
    const variants = this.unknownClass.length;
    const at = attributes * variants + variant;
    if (at >= this.ruleOf.length) {
      const grown = new Int32Array(2 * (at + 1)).fill(-1);
      grown.set(this.ruleOf);
      this.ruleOf = grown;
    }
    let r = this.ruleOf[at];
    if (r === -1) this.ruleOf[at] = r = this.firstRule(variant, loc);
    return this.classifier.classFor(r, loc, attributes);
  }

  private unknown(variant: number): number {
    let c = this.unknownClass[variant];
    if (c < 0) {
      const loc: LocationAttributes = { popRank: null, country: '', continent: '', subdivision: '', fixedPop: -1, known: false, asn: 0 };
      const r = this.firstRule(variant, loc);
      const p = this.policy;
      c = this.unknownClass[variant] = this.interner.intern(planClass(p.rules[r], r, p.endpoints, loc, p.unknownOrder));
    }
    return c;
  }

  /** The first rule that applies on this instance and matches: a CIDR rule only in its own variant. */
  private firstRule(variant: number, loc: LocationAttributes): number {
    const { plan, rules } = this.policy;
    const variantRule = plan.variantRules[variant];
    for (let r = 0; r < rules.length; r++) {
      if (plan.applies[r] === 0) continue;
      if (plan.hasCidr[r] === 1) {
        if (r === variantRule) return r;
        continue;
      }
      if (locationMatches(rules[r], loc)) return r;
    }
    return plan.defaultRule;
  }
}

/** Per thread, each policy's classes, by its rules (shared by every copy of one compiled policy in a thread). */
const byRules = new WeakMap<object, PolicyClasses>();

export function classesOf(policy: CompiledPolicy): PolicyClasses {
  let found = byRules.get(policy.rules);
  if (found === undefined) byRules.set(policy.rules, (found = new PolicyClasses(policy)));
  return found;
}

/** Class `c` of the policy, as interned by this thread. */
export function classAt(policy: CompiledPolicy, c: number): DecisionClass {
  return classesOf(policy).classes[c];
}
