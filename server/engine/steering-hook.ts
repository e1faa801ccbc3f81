// The per-query glue between the engine, the geo index and the compiled
// policies: deciding address (and its ECS scope rule, client-address.ts) →
// variant (the first CIDR rule that matches, one trie walk) → class and
// scope (a memo, else one class-trie walk, narrowed off other rules' CIDRs
// and special-use blocks) → decision cache keyed by class and health epoch →
// pre-encoded answer.
//
// createSteering() is the one way to build it: the DNS workers, explain (CLI
// and admin API) and what-if/diff all get their steering from the same
// inputs, so an explanation is of the answer the server really gives. With
// `tracer` set (explain only), the decider records each step it runs.

import { SECTION_ANSWER, TemplateBuilder } from '../dns/builder.ts';
import { RCODE_NOERROR, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, TYPE_CNAME } from '../dns/constants.ts';
import type { QueryView } from '../dns/query.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import { lookupGroupClass } from '../geo/scope.ts';
import { classesOf, type PolicyClasses } from '../steering/lazy-classes.ts';
import type { ClassResult } from '../geo/types.ts';
import { firstMatchingRule, markMatchingRules, scopeAvoidingCidrs } from '../steering/cidr-trie.ts';
import { DecisionTrace, OUTCOME_SERVFAIL, Resolution, resolve } from '../steering/decide.ts';
import { nextPossibleChange } from '../steering/signals.ts';
import { ENDPOINT_CNAME, type CidrTries, type CompiledPolicy, type DecisionClass, type SteeringTables } from '../steering/types.ts';
import { ClassMemo } from './class-memo.ts';
import {
  chooseDecidingAddress, DecidingAddress, ecsTrustCheck, MAX_IPV4_BITS, MAX_IPV6_BITS, SCOPE_EMBEDDED_IPV4, scopeAvoidingSpecialUse, type TrustEcs,
} from './client-address.ts';
import { fnv1a, fnv1aStep, FNV_OFFSET } from '../lib/hash.ts';
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

/** A pre-encoded answer for one set of endpoints and one type. */
interface TemplateEntry {
  qtype: number;
  endpoints: Int16Array;
  template: AnswerTemplate | null;
}

/** Soft cap on cached templates per policy (answers for distinct endpoint sets). */
const MAX_TEMPLATES_PER_POLICY = 4096;

const SERVFAIL: AnswerTemplate = new TemplateBuilder(null).build(RCODE_SERVFAIL, false);

/** What the last answer() decided, for the decision counters, the query log and explain. */
interface LastDecision {
  policy: number;
  variant: number;
  /** The first rule whose CIDRs matched, -1 when none did. */
  cidrRule: number;
  class: number;
  /** The scope of the decision, in the deciding address's family. */
  scope: number;
  /** The ECS scope the reply carries, in the query's ECS family. */
  replyScope: number;
  /** The TTL the answer is sent with. */
  ttl: number;
  resolution: Resolution;
}

/** Everything a steering decision depends on besides the query: the same for serving, explain and what-if. */
export interface SteeringInputs {
  tables: SteeringTables;
  /** The health table (health/table.ts): the live one, or a copy with PoPs taken down for a what-if. */
  health: Int32Array;
  /** Next possible health change and declared load per PoP (steering/signals.ts); null when there are none (what-if). */
  signals: Float64Array | null;
  /** Resolver networks whose ECS is used (the ecs_trust setting); empty = every resolver. */
  ecsTrust: readonly string[];
  counters?: Counters;
  /** Clock for TTLs derived from health (ms since the epoch). */
  now?: () => number;
  /** Keep a memo of recent client networks (default true); a one-query steering (explain) skips its 2 MiB. */
  memoize?: boolean;
}

/** The steering for one policy set and one set of inputs. Throws on a malformed ecs_trust network. */
export function createSteering(inputs: SteeringInputs): PolicySteering {
  return new PolicySteering(inputs.tables, inputs.health, inputs.counters ?? new Counters(null, 0), inputs.signals, ecsTrustCheck(inputs.ecsTrust),
    inputs.now ?? Date.now, inputs.memoize === false ? null : new ClassMemo());
}

export class PolicySteering implements SteeringHook {
  private readonly tables: SteeringTables;
  private readonly health: Int32Array;
  private readonly counters: Counters;
  private readonly trustEcs: TrustEcs | null;
  private readonly signals: Float64Array | null;
  private readonly now: () => number;
  /** The deciding address of the last answer() (explain reads it). */
  readonly address = new DecidingAddress();
  private readonly classResult: ClassResult = { class: -1, scopeLength: 0 };
  private readonly memo: ClassMemo | null;
  private readonly resolution = new Resolution();
  private readonly decisions: Array<Array<CachedDecision | undefined>>;
  /** Each policy's classes in this thread, found on the policy's first query. */
  private readonly classes: Array<PolicyClasses | undefined>;
  private readonly templates: Array<Map<number, TemplateEntry[]>>;
  private templateCount: Int32Array;
  /** Per policy and rule: the stamp of the last query whose resolver matched the rule's resolver CIDRs. */
  private readonly resolverMatched: Int32Array[];
  private stamp = 0;
  /** When set, the next answers record every step the decider runs into it (explain). */
  tracer: DecisionTrace | null = null;
  /** See lastReusable(). */
  private reusable = false;

  /** Whether the last answer() decided on the ECS address (for dnstap; `address` has the detail). */
  get lastDecidingFromEcs(): boolean {
    return this.address.fromEcs;
  }

  /** Filled by the last answer(). */
  readonly last: LastDecision = { policy: -1, variant: 0, cidrRule: -1, class: -1, scope: 0, replyScope: 0, ttl: 0, resolution: new Resolution() };

  constructor(tables: SteeringTables, health: Int32Array, counters: Counters, signals: Float64Array | null, trustEcs: TrustEcs | null, now: () => number,
    memo: ClassMemo | null) {
    this.tables = tables;
    this.memo = memo;
    this.health = health;
    this.signals = signals;
    this.counters = counters;
    this.trustEcs = trustEcs;
    this.now = now;
    // Classes are made on first sight (steering/lazy-classes.ts): the per-class cache grows with them.
    this.decisions = tables.policies.map(() => []);
    this.classes = tables.policies.map(() => undefined);
    this.templates = tables.policies.map(() => new Map());
    this.templateCount = new Int32Array(tables.policies.length);
    this.resolverMatched = tables.policies.map((p) => new Int32Array(p.cidr === null ? 0 : p.rules.length));
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
    const last = this.last;
    last.cidrRule = policy.cidr === null ? -1 : this.firstCidrRule(index, policy.cidr);
    const variant = last.cidrRule < 0 ? 0 : policy.cidr!.variantOfRule[last.cidrRule];
    const cls = this.classResult;
    const classes = this.classes[index] ?? (this.classes[index] = classesOf(policy));
    const uniform = policy.plan.uniform;
    if (uniform) {
      cls.class = 0;
      cls.scopeLength = 0;
    } else if (this.memo === null || !this.memo.find(index, variant, address.family, address.bits, address.words, cls)) {
      lookupGroupClass(this.tables.geo, this.tables.groupTrie, classes.variants[variant], address.family, address.bytes, address.bits, cls);
      if (address.fromEcs) cls.scopeLength = this.narrowScope(policy, cls.scopeLength);
      this.memo?.store(cls);
    }
    const decisionClass = classes.classes[cls.class];
    const rule = policy.rules[decisionClass.rule];
    let scope = cls.scopeLength;
    if (rule.perNetwork) {
      // Weighted and capacity-shifted answers differ between client networks inside one class: the
      // client's own network (capped at /24, /56) is both the sticky key and the scope.
      const own = address.fromEcs ? address.bits : address.family === 4 ? MAX_IPV4_BITS : MAX_IPV6_BITS;
      if (own > scope) scope = own;
    }
    last.policy = index;
    last.variant = variant;
    last.class = cls.class;
    last.scope = scope;
    last.replyScope = !address.fromEcs ? address.fixedScope
      : address.rule === SCOPE_EMBEDDED_IPV4 && !(uniform && !rule.perNetwork) ? address.scopeOffset + scope : scope;
    result.scope = last.replyScope;

    const epoch = this.health[0];
    const tracing = this.tracer !== null;
    this.reusable = !rule.perNetwork && !tracing && (policy.ttlFromHealth === null || this.signals === null);
    if (!rule.perNetwork && !tracing) {
      const cached = this.decisions[index][cls.class];
      if (cached !== undefined && cached.epoch === epoch) {
        counters[OFF_DECISION_CACHE_HITS]++;
        last.resolution = cached.resolution;
        result.ttl = last.ttl = this.ttlFor(policy, decisionClass, cached.degraded);
        return qtype === TYPE_AAAA ? cached.aaaa : cached.a;
      }
      counters[OFF_DECISION_CACHE_MISSES]++;
    }
    const r = this.resolution;
    resolve(policy, decisionClass, this.health, stickyKeyOf(address.bytes, scope, address.family), Math.random(), r, this.signals, this.tracer);
    last.resolution = r;
    result.ttl = last.ttl = this.ttlFor(policy, decisionClass, r.degraded);
    let a: AnswerTemplate | null;
    let aaaa: AnswerTemplate | null;
    if (r.outcome === OUTCOME_SERVFAIL) {
      a = SERVFAIL;
      aaaa = SERVFAIL;
    } else {
      a = this.templateFor(index, TYPE_A);
      aaaa = this.templateFor(index, TYPE_AAAA);
    }
    if (!rule.perNetwork && !tracing) {
      if (this.decisions[index][cls.class] === undefined) counters[OFF_DECISION_CACHE_SIZE]++;
      const frozen = new Resolution().copyFrom(r);
      last.resolution = frozen;
      this.decisions[index][cls.class] = { epoch, a, aaaa, degraded: r.degraded, resolution: frozen };
    }
    return qtype === TYPE_AAAA ? aaaa : a;
  }

  /**
   * Whether the last answer() holds for the same query bytes from the same
   * resolver until the health epoch changes: the decision is the one the
   * decision cache keeps per class (not per client network) and its TTL does
   * not run down with the clock.
   */
  lastReusable(): boolean {
    return this.reusable;
  }

  /** Whether the last answer() put a CNAME endpoint first: its A and AAAA answers are then that CNAME alone. */
  lastChoseCname(): boolean {
    const r = this.last.resolution;
    if (r.outcome === OUTCOME_SERVFAIL || r.count === 0) return false;
    const first = this.tables.policies[this.last.policy].endpoints[r.chosen[0]];
    return first !== undefined && first.kind === ENDPOINT_CNAME;
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
    const seconds = Math.floor((earliest - this.now()) / 1000);
    return seconds < bounds.min ? bounds.min : seconds > bounds.max ? bounds.max : seconds;
  }

  /**
   * The first rule (lowest index) whose CIDR conditions hold, -1 when none:
   * client CIDRs match the deciding address, resolver CIDRs the resolver's;
   * a rule with both needs both.
   */
  private firstCidrRule(index: number, cidr: CidrTries): number {
    const address = this.address;
    const matched = this.resolverMatched[index];
    if (++this.stamp === 0x7fffffff) {
      this.stamp = 1;
      for (const m of this.resolverMatched) m.fill(0);
    }
    const stamp = this.stamp;
    let best = -1;
    if (cidr.resolver.ruleList.length > 0) {
      const family = address.resolverFamily;
      markMatchingRules(cidr.resolver, family, address.resolver, family === 4 ? 32 : 128, matched, stamp);
      const only = cidr.resolverOnly;
      for (let i = 0; i < only.length; i++) {
        if (matched[only[i]] === stamp) {
          best = only[i];
          break;
        }
      }
    }
    if (cidr.client.ruleList.length > 0) {
      const rule = firstMatchingRule(cidr.client, address.family, address.bytes, address.bits, cidr.cidrKinds, matched, stamp);
      if (rule >= 0 && (best < 0 || rule < best)) best = rule;
    }
    return best;
  }

  /**
   * A located scope must not reach into a network decided another way: a
   * special-use block or IPv4-embedding prefix, or the edge of a client CIDR
   * some rule matches on (inside a matched CIDR the scope is at least that
   * CIDR; outside, long enough to leave out every CIDR it would contain).
   */
  private narrowScope(policy: CompiledPolicy, scope: number): number {
    const address = this.address;
    let narrowed = scopeAvoidingSpecialUse(address.family, address.bytes, scope);
    if (policy.cidr !== null && policy.cidr.client.ruleList.length > 0) narrowed = scopeAvoidingCidrs(policy.cidr.client, address.family, address.bytes, narrowed);
    return narrowed;
  }

  /** The pre-encoded answer for the chosen endpoints (cached by endpoint set and type). */
  private templateFor(index: number, qtype: number): AnswerTemplate | null {
    const r = this.resolution;
    const cache = this.templates[index];
    // A hash picks the bucket; the endpoints are compared exactly, so colliding sets never share an answer.
    let h = qtype;
    for (let i = 0; i < r.count; i++) h = fnv1aStep(h, r.chosen[i]);
    const bucket = cache.get(h);
    if (bucket !== undefined) {
      for (let b = 0; b < bucket.length; b++) {
        const entry = bucket[b];
        if (entry.qtype === qtype && sameEndpoints(entry.endpoints, r)) return entry.template;
      }
    }
    const template = this.buildTemplate(this.tables.policies[index], qtype);
    if (this.templateCount[index] >= MAX_TEMPLATES_PER_POLICY) {
      cache.clear();
      this.templateCount[index] = 0;
    }
    const entry: TemplateEntry = { qtype, endpoints: r.chosen.slice(0, r.count), template };
    const existing = cache.get(h);
    if (existing === undefined) cache.set(h, [entry]);
    else existing.push(entry);
    this.templateCount[index]++;
    return template;
  }

  private buildTemplate(policy: CompiledPolicy, qtype: number): AnswerTemplate | null {
    const r = this.resolution;
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
    return builder.build(RCODE_NOERROR, true);
  }
}

function sameEndpoints(endpoints: Int16Array, r: Resolution): boolean {
  if (endpoints.length !== r.count) return false;
  for (let i = 0; i < r.count; i++) if (endpoints[i] !== r.chosen[i]) return false;
  return true;
}

/** Hash of the deciding network (address masked to the scope): the sticky-weighting key. */
function stickyKeyOf(bytes: Uint8Array, scope: number, family: 4 | 6): number {
  const whole = scope >> 3;
  let h = fnv1a(bytes, 0, whole, FNV_OFFSET ^ family);
  const rest = scope & 7;
  if (rest > 0) h = fnv1aStep(h, bytes[whole] & ((0xff00 >> rest) & 0xff));
  return fnv1aStep(h, scope) >>> 0;
}
