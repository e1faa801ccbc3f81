// The per-query glue between the engine, the geo index and the compiled
// policies: deciding address → variant → class (one trie walk, which also
// yields the ECS scope) → decision cache keyed by class and health epoch →
// pre-encoded answer.

import { SECTION_ANSWER, TemplateBuilder } from '../dns/builder.ts';
import { RCODE_NOERROR, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_CNAME } from '../dns/constants.ts';
import type { QueryView } from '../dns/query.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import { prefixMatches } from '../geo/address.ts';
import { lookupClass } from '../geo/scope.ts';
import type { ClassResult } from '../geo/types.ts';
import { OUTCOME_SERVFAIL, Resolution, resolve } from '../steering/decide.ts';
import { nextPossibleChange } from '../steering/signals.ts';
import { ENDPOINT_CNAME, WEIGHTED_NONE, type CompiledPolicy, type CidrMatch, type DecisionClass, type SteeringTables } from '../steering/types.ts';
import { ClassMemo } from './class-memo.ts';
import { chooseDecidingAddress, DecidingAddress, MAX_IPV4_BITS, MAX_IPV6_BITS, type TrustEcs } from './client-address.ts';
import { Counters, OFF_DECISION_CACHE_HITS, OFF_DECISION_CACHE_MISSES, OFF_DECISION_CACHE_SIZE, OFF_ECS } from './counters.ts';
import type { ClientAddress, SteeringHook, SteeringResult } from './engine.ts';


/** A cached outcome for (policy, class) under one health epoch. */
interface CachedDecision {
  epoch: number;
  /** What resolve() decided, kept for explain, the query log and per-PoP counts. */
  resolution: Resolution;
  a: AnswerTemplate | null;
  aaaa: AnswerTemplate | null;
  degraded: boolean;
}

/** Soft cap on cached templates per policy (answers for distinct endpoint sets). */
const MAX_TEMPLATES_PER_POLICY = 4096;

const SERVFAIL: AnswerTemplate = new TemplateBuilder(null).build(RCODE_SERVFAIL, false);

export interface DecisionTrace {
  policy: number;
  variant: number;
  class: number;
  scope: number;
  resolution: Resolution;
}

export class PolicySteering implements SteeringHook {
  private readonly tables: SteeringTables;
  private readonly health: Int32Array;
  private readonly counters: Counters;
  private readonly trustEcs: TrustEcs | null;
  private readonly address = new DecidingAddress();
  private readonly classResult: ClassResult = { class: -1, scopeLength: 0 };
  private readonly memo = new ClassMemo();
  private readonly resolution = new Resolution();
  private readonly decisions: Array<Array<CachedDecision | undefined>>;
  private readonly templates: Array<Map<number, AnswerTemplate>>;
  /** Whether the last answer() decided on the ECS address (explain). */
  get lastDecidingFromEcs(): boolean {
    return this.address.fromEcs;
  }

  /** Filled by the last answer() for explain and the query log. */
  readonly last: DecisionTrace = { policy: -1, variant: 0, class: -1, scope: 0, resolution: new Resolution() };

  private readonly signals: Float64Array | null;

  constructor(tables: SteeringTables, health: Int32Array, counters: Counters, signals: Float64Array | null = null,
    trustEcs: TrustEcs | null = null) {
    this.tables = tables;
    this.health = health;
    this.signals = signals;
    this.counters = counters;
    this.trustEcs = trustEcs;
    this.decisions = tables.policies.map((p) => new Array<CachedDecision | undefined>(p.classes.length));
    this.templates = tables.policies.map(() => new Map());
  }

  answer(index: number, qtype: number, view: QueryView, client: ClientAddress, result: SteeringResult): AnswerTemplate | null {
    const policy = this.tables.policies[index];
    const address = this.address;
    const counters = this.counters.values;
    chooseDecidingAddress(view, client.address, this.trustEcs, address);
    if (view.ecsPresent) {
      counters[OFF_ECS]++;
      counters[address.fromEcs ? OFF_ECS + 1 : OFF_ECS + 2]++;
    }
    const variant = this.variantFor(policy);
    const geo = this.tables.geo;
    const cls = this.classResult;
    const tries = this.tables.classTries[index];
    if (tries.length === 0) {
      cls.class = 0;
      cls.scopeLength = 0;
    } else if (!this.memo.find(index, variant, address.family, address.bits, address.words, cls)) {
      lookupClass(geo, tries[variant], address.family, address.bytes, address.bits, cls);
      this.memo.store(cls);
    }
    let scope = cls.scopeLength;
    if (policy.cidrRules.length > 0) scope = this.narrowScopeForCidrs(policy, variant, scope);
    const trace = this.last;
    trace.policy = index;
    trace.variant = variant;
    trace.class = cls.class;
    trace.scope = scope;
    result.scope = address.fromEcs ? scope : 0;

    const decisionClass = policy.classes[cls.class];
    const rule = policy.rules[decisionClass.rule];
    const epoch = this.health[0];
    const cacheable = rule.weighted === WEIGHTED_NONE && rule.capacityMark === 0;
    if (!cacheable) {
      // Weighted and capacity-shifted answers differ between client networks inside one class: the
      // client's own network (capped at /24, /56) is both the sticky key and the scope.
      const own = address.fromEcs ? address.bits : address.family === 4 ? MAX_IPV4_BITS : MAX_IPV6_BITS;
      if (own > scope) scope = own;
      trace.scope = scope;
      result.scope = address.fromEcs ? scope : 0;
    }
    if (cacheable) {
      const cached = this.decisions[index][cls.class];
      if (cached !== undefined && cached.epoch === epoch) {
        counters[OFF_DECISION_CACHE_HITS]++;
        trace.resolution = cached.resolution;
        result.ttl = this.ttlFor(policy, decisionClass, cached.degraded);
        return qtype === TYPE_AAAA ? cached.aaaa : cached.a;
      }
      counters[OFF_DECISION_CACHE_MISSES]++;
    }
    const stickyKey = stickyKeyOf(address.bytes, scope, address.family);
    const r = this.resolution;
    resolve(policy, decisionClass, this.health, stickyKey, Math.random(), r, this.signals);
    trace.resolution = r;
    result.ttl = this.ttlFor(policy, decisionClass, r.degraded);
    let a: AnswerTemplate | null;
    let aaaa: AnswerTemplate | null;
    if (r.outcome === OUTCOME_SERVFAIL) {
      a = SERVFAIL;
      aaaa = SERVFAIL;
    } else {
      a = this.templateFor(index, TYPE_A);
      aaaa = this.templateFor(index, TYPE_AAAA);
    }
    if (cacheable) {
      if (this.decisions[index][cls.class] === undefined) counters[OFF_DECISION_CACHE_SIZE]++;
      const frozen = new Resolution().copyFrom(r);
      trace.resolution = frozen;
      this.decisions[index][cls.class] = { epoch, a, aaaa, degraded: r.degraded, resolution: frozen };
    }
    return qtype === TYPE_AAAA ? aaaa : a;
  }

  /**
   * The answer's TTL: the policy's, or its degraded one; with
   * ttl_from_health, the time until any candidate's state could next change
   * (gdnsd-style), clamped to [min, max], so caches keep an answer no longer
   * than it can stay true.
   */
  private ttlFor(policy: CompiledPolicy, cls: DecisionClass, degraded: boolean): number {
    const fixed = degraded ? policy.degradedTtl : policy.ttl;
    const bounds = policy.ttlFromHealth;
    const signals = this.signals;
    if (bounds === null || signals === null) return fixed;
    let earliest = Infinity;
    const endpoints = policy.endpoints;
    for (let t = 0; t < cls.tiers.length; t++) {
      const tier = cls.tiers[t];
      for (let i = 0; i < tier.length; i++) {
        const subject = endpoints[tier[i]].healthSubject;
        if (subject >= 0) {
          const at = nextPossibleChange(signals, subject);
          if (at < earliest) earliest = at;
        }
      }
    }
    const seconds = Math.floor((earliest - Date.now()) / 1000);
    return seconds < bounds.min ? bounds.min : seconds > bounds.max ? bounds.max : seconds;
  }

  /** Variant 0 unless a CIDR rule matches; then the variant of the first one that does. */
  private variantFor(policy: CompiledPolicy): number {
    const rules = policy.cidrRules;
    if (rules.length === 0) return 0;
    const address = this.address;
    let variant = 0;
    let lastRule = -1;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (rule.rule !== lastRule) {
        lastRule = rule.rule;
        variant++;
      }
      const onResolver = rule.on === 'resolver';
      const family = onResolver ? address.resolverFamily : address.family;
      const bytes = onResolver ? address.resolver : address.bytes;
      const bits = onResolver ? (family === 4 ? 32 : 128) : address.bits;
      if (family === rule.family && bits >= rule.prefixLength && prefixMatches(bytes, rule.network, rule.prefixLength)) return variant;
    }
    return 0;
  }

  /**
   * A scope must not cross the edge of a client CIDR that a rule matches on:
   * inside a matched CIDR it is at least that CIDR's length; outside, it is
   * long enough to exclude every CIDR it would otherwise contain.
   */
  private narrowScopeForCidrs(policy: CompiledPolicy, variant: number, scope: number): number {
    const address = this.address;
    for (const rule of policy.cidrRules) {
      if (rule.on !== 'client' || rule.family !== address.family) continue;
      if (prefixMatches(address.bytes, rule.network, rule.prefixLength)) {
        if (scope < rule.prefixLength) scope = rule.prefixLength;
      } else if (rule.prefixLength > scope && prefixMatches(address.bytes, rule.network, scope)) {
        const split = commonPrefixLength(address.bytes, rule.network) + 1;
        if (split > scope) scope = split;
      }
    }
    void variant;
    return scope;
  }

  /** The pre-encoded answer for the chosen endpoints (cached by endpoint set and type). */
  private templateFor(index: number, qtype: number): AnswerTemplate | null {
    const policy = this.tables.policies[index];
    const r = this.resolution;
    let key = qtype === TYPE_AAAA ? 1 : 0;
    let scale = 2;
    for (let i = 0; i < r.count; i++) {
      key += scale * (r.chosen[i] + 1);
      scale *= policy.endpoints.length + 1;
    }
    const cache = this.templates[index];
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    const builder = new TemplateBuilder(null);
    const first = policy.endpoints[r.chosen[0]];
    if (first !== undefined && first.kind === ENDPOINT_CNAME) {
      builder.add(SECTION_ANSWER, 'qname', TYPE_CNAME, policy.ttl, [{ name: first.cname!, compress: false }], { patchTtl: true });
    } else {
      for (let i = 0; i < r.count; i++) {
        const e = policy.endpoints[r.chosen[i]];
        if (e.kind === ENDPOINT_CNAME) continue;
        for (const address of qtype === TYPE_AAAA ? e.ipv6 : e.ipv4) {
          builder.add(SECTION_ANSWER, 'qname', qtype, policy.ttl, [address], { patchTtl: true });
        }
      }
    }
    // No address of the asked family: NODATA from the zone (null).
    if (builder.answerCount === 0) return null;
    const template = builder.build(RCODE_NOERROR, true);
    {
      if (cache.size >= MAX_TEMPLATES_PER_POLICY) cache.clear();
      cache.set(key, template);
    }
    return template;
  }
}

function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 16; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 128;
}

/** Hash of the deciding network (address masked to the scope): the sticky-weighting key. */
function stickyKeyOf(bytes: Uint8Array, scope: number, family: 4 | 6): number {
  let h = 0x811c9dc5 ^ family;
  const whole = scope >> 3;
  for (let i = 0; i < whole; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  const rest = scope & 7;
  if (rest > 0) h = Math.imul(h ^ (bytes[whole] & ((0xff00 >> rest) & 0xff)), 0x01000193);
  return Math.imul(h ^ scope, 0x01000193) >>> 0;
}

export type { CidrMatch };
