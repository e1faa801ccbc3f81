import type { ClassTrie } from '../geo/scope.ts';
import type { GeoIndex, PackedStrings } from '../geo/types.ts';

// Compiled steering policies: plain data (numbers, typed arrays, strings), so
// a set can be posted to worker threads and read without interpretation.

/** What the decision functions need to know about a client location. */
export interface LocationAttributes {
  /** Rank of each PoP (by catalog ordinal) in this location's nearest-first order; null when unknown. */
  popRank: Int16Array | null;
  /** ISO 3166-1 alpha-2, '' when unknown. */
  country: string;
  /** Two-letter continent code, '' when unknown. */
  continent: string;
  /** ISO 3166-2 code such as "US-CA", '' when unknown. */
  subdivision: string;
  /** Ordinal of a PoP that a custom network pins, or -1. */
  fixedPop: number;
  known: boolean;
  /** The AS number (ASN source spliced into the index), 0 when unknown. */
  asn: number;
}

export const ENDPOINT_ADDRESSES = 0;
export const ENDPOINT_CNAME = 1;

export interface Endpoint {
  /** PoP id or explicit endpoint id. */
  id: string;
  kind: number;
  /** Index into the health table (PoP ordinal), or -1 for "always up". */
  healthSubject: number;
  /** Catalog ordinal of the PoP this endpoint is, or -1 for explicit endpoints. */
  pop: number;
  /** Hash of the id: endpoints keep their rendezvous scores when others come and go. */
  idHash: number;
  weight: number;
  ipv4: Uint8Array[];
  ipv6: Uint8Array[];
  /** Wire-form CNAME target for ENDPOINT_CNAME. */
  cname: Uint8Array | null;
  lat: number;
  lon: number;
  continent: string;
  country: string;
}

export const WEIGHTED_NONE = 0;
export const WEIGHTED_RANDOM = 1;
export const WEIGHTED_STICKY = 2;

/**
 * One step of a rule, typed, in the order written. The compiler makes these
 * once; the decider runs them (location steps when the policy compiles,
 * health steps per query) and explain prints what each one did.
 */
export type StepPlan =
  // Location steps: decided per client location when the policy compiles.
  | { kind: 'nearest'; limit: number }
  | { kind: 'self'; endpoint: number }
  | { kind: 'geofence'; to: 'client_continent' | 'client_country' | string[]; otherwise: 'keep_all' | 'servfail' | number[] }
  // Health steps: decided per query (or per class and health epoch).
  | { kind: 'healthy' }
  | { kind: 'failover'; minHealthy: number }
  | { kind: 'prefer_self'; withinKm: number }
  | { kind: 'capacity'; mark: number }
  | { kind: 'weighted'; mode: number }
  | { kind: 'first'; count: number };

export type LocationStep = Extract<StepPlan, { kind: 'nearest' | 'self' | 'geofence' }>;
export type HealthStep = Exclude<StepPlan, LocationStep>;

/** Health step codes of RulePlan.healthOps (argument in healthArgs). */
export const OP_HEALTHY = 1;
export const OP_FAILOVER = 2; // min_healthy
export const OP_PREFER_SELF = 3; // km
export const OP_CAPACITY = 4; // mark
export const OP_WEIGHTED = 5; // WEIGHTED_RANDOM or WEIGHTED_STICKY
export const OP_FIRST = 6; // count

/** The query-path form of a rule's health steps. */
export function healthOpsOf(steps: readonly HealthStep[]): { ops: Int32Array; args: Float64Array } {
  const ops = new Int32Array(steps.length);
  const args = new Float64Array(steps.length);
  steps.forEach((s, i) => {
    if (s.kind === 'healthy') ops[i] = OP_HEALTHY;
    else if (s.kind === 'failover') { ops[i] = OP_FAILOVER; args[i] = s.minHealthy; }
    else if (s.kind === 'prefer_self') { ops[i] = OP_PREFER_SELF; args[i] = s.withinKm; }
    else if (s.kind === 'capacity') { ops[i] = OP_CAPACITY; args[i] = s.mark; }
    else if (s.kind === 'weighted') { ops[i] = OP_WEIGHTED; args[i] = s.mode; }
    else { ops[i] = OP_FIRST; args[i] = s.count; }
  });
  return { ops, args };
}

/** What a rule matches, as written (`default` is every list empty). */
export interface RuleMatch {
  countries: string[];
  continents: string[];
  subdivisions: string[];
  clientCidrs: string[];
  resolverCidrs: string[];
  /** PoP ids; the rule applies only on those instances. */
  self: string[];
  /** The client's AS is one of these. */
  asns: number[];
  /** The resolver's AS is one of these (compiled into the resolver CIDR trie). */
  resolverAsns: number[];
}

/** One rule of a policy: its match, its candidates and its steps. */
export interface RulePlan {
  name: string;
  match: RuleMatch;
  /** Candidates as written: endpoint indexes per pool. */
  tiers: number[][];
  /** Every step in the order written. */
  steps: StepPlan[];
  /** The location steps, in order (run when the policy compiles). */
  locationSteps: LocationStep[];
  /** The health steps, in order (run per query by resolve()). */
  healthSteps: HealthStep[];
  /** The health steps again as numbers for the query path: an OP_* code and its argument per step. */
  healthOps: Int32Array;
  healthArgs: Float64Array;
  /** Weighted or capacity steps make answers differ inside a class: not cached per class. */
  perNetwork: boolean;
  /** How many endpoints the answer carries (the `first` step; 1 when absent). */
  first: number;
  /** The match and steps as written, for display only (never read back). */
  matchText: string;
  stepTexts: string[];
}

export const ALL_DOWN_FAIL_OPEN = 0;
export const ALL_DOWN_SERVFAIL = 1;
export const ALL_DOWN_POOL = 2;

/** One distinct outcome of the health-independent steps: a rule and its ordered candidates. */
export interface DecisionClass {
  rule: number;
  /** Endpoint indexes in order, one array per failover tier. */
  tiers: Int16Array[];
  /** The geofence left no candidate and its `else` says SERVFAIL. */
  servfail: boolean;
}

/**
 * What a policy's classes are made from, per location group and variant
 * (variant 0: no CIDR rule matched; variant k: the k-th rule with CIDRs was
 * the first that did).
 */
export interface ClassPlan {
  /** Every client gets one class (class 0): no table, the answer holds for the whole address space. */
  uniform: boolean;
  /** Per variant, the CIDR rule it stands for; -1 for variant 0. */
  variantRules: Int32Array;
  /** Per rule: 1 when it applies on this instance (its `self` match). */
  applies: Uint8Array;
  /** Per rule: 1 when it lists CIDRs. */
  hasCidr: Uint8Array;
  /** The rule that matches every client. */
  defaultRule: number;
  /** The location attributes the rules read (lazy-classes.ts USES_*). */
  uses: number;
}

/**
 * The location groups of one geo context and set of named ASes, on shared
 * memory: locations with the same nearest order, country, continent,
 * subdivision, pinned PoP and named AS cannot be told apart by any rule.
 */
export interface GroupTable {
  count: number;
  /** Group of each GeoIP location. */
  groupOfLocation: Int32Array;
  /** Per group: nearest-order class (-1: no coordinates), country (packed, geo/codes.ts), continent code, subdivision (string index), pinned PoP, named AS (0: none). */
  order: Int32Array;
  country: Uint16Array;
  continent: Uint8Array;
  subdivision: Int32Array;
  fixedPop: Int16Array;
  asn: Int32Array;
  strings: PackedStrings;
  popCount: number;
  /** ranks[order * popCount + pop]: the PoP's position in that nearest order. */
  ranks: Int16Array;
}

/**
 * The `client_cidr` and `resolver_cidr` matches of a policy as two binary
 * prefix tries (steering/cidr-trie.ts): a query walks at most 32 or 128
 * nodes whatever the number of CIDRs.
 */
export interface CidrTries {
  client: CidrTrie;
  resolver: CidrTrie;
  /** Variant of each rule (index into variantClassOfLocation), 0 for rules without CIDRs. */
  variantOfRule: Int32Array;
  /** Per rule: 1 when it lists client CIDRs, 2 resolver CIDRs, 3 both (both must hold). */
  cidrKinds: Uint8Array;
  /** Rules with resolver CIDRs and no client CIDRs, ascending. */
  resolverOnly: Int32Array;
}

/** Nodes exist only on the paths to CIDRs, so a node's every subtree holds at least one CIDR. */
export interface CidrTrie {
  /** children[2 * node + bit]: next node, or -1. Node 0 is the IPv4 root, node 1 the IPv6 root. */
  children: Int32Array;
  /** Rules whose CIDR ends at a node: ruleList[ruleStart[node] .. ruleStart[node + 1]), ascending. */
  ruleStart: Int32Array;
  ruleList: Int32Array;
  nodeCount: number;
}

export interface CompiledPolicy {
  /** Same id, same compile (a compile-cache hit keeps it): lets a reload post an unchanged policy by reference (snapshot/policy-reuse.ts). */
  compileId: string;
  name: string;
  /** Index in the snapshot's steered list (NameNode.steeredIndex). */
  index: number;
  file: string;
  ttl: number;
  degradedTtl: number;
  ttlFromHealth: { min: number; max: number } | null;
  endpoints: Endpoint[];
  rules: RulePlan[];
  /** How the policy's decision classes are made on first sight, per thread (steering/lazy-classes.ts). */
  plan: ClassPlan;
  /** The location groups of the geo data the policy compiled against (shared by every policy of a geo context). */
  groups: GroupTable;
  /** The CIDR matches; null when no rule that applies on this instance lists CIDRs. */
  cidr: CidrTries | null;
  whenAllDown: number;
  /** Endpoint indexes of the last-resort pool (ALL_DOWN_POOL). */
  lastResort: Int16Array;
  selfEndpoint: number;
  /** Endpoints that go first for clients without a location (unknown_location), or null for the written order. */
  unknownOrder: number[] | null;
  /** Distance (km) from this instance's PoP to each endpoint (NaN where unknown), for prefer_self_within_km. */
  selfDistanceKm: Float64Array;
}

/** What the query path reads for steered names. */
export interface SteeringTables {
  policies: CompiledPolicy[];
  /**
   * The location group of every client network and the widest network in
   * one group (geo/scope.ts buildClassTrie over the groups), shared by every
   * policy compiled against the same geo data.
   */
  groupTrie: ClassTrie;
  geo: GeoIndex;
}
