import type { ClassTrie } from '../geo/scope.ts';
import type { GeoIndex } from '../geo/types.ts';

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

/** The health-dependent part of a rule, applied per query over a class's tiers. */
export interface RulePlan {
  name: string;
  /** The rule's match as written (for explain). */
  match: string;
  /** Candidates as written: endpoint indexes per pool (for explain). */
  tiers: number[][];
  /** The steps as written (for explain). */
  steps: string[];
  /** Keep only healthy endpoints. */
  healthy: boolean;
  /** Pick the first tier with at least minHealthy endpoints up (0: tiers are one list). */
  failoverMinHealthy: number;
  weighted: number;
  /** Answer with this instance's PoP when healthy and within this distance of the best candidate (0: off). */
  preferSelfKm: number;
  /** Shift clients off the first candidate while its declared load is above this mark (0: off). */
  capacityMark: number;
  first: number;
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

export interface CidrMatch {
  rule: number;
  family: 4 | 6;
  /** Network bytes (16, IPv4 in the first 4). */
  network: Uint8Array;
  prefixLength: number;
  /** Matches the client (ECS or resolver) address, or the resolver's. */
  on: 'client' | 'resolver';
}

export interface CompiledPolicy {
  name: string;
  /** Index in the snapshot's steered list (NameNode.steeredIndex). */
  index: number;
  file: string;
  ttl: number;
  degradedTtl: number;
  ttlFromHealth: { min: number; max: number } | null;
  endpoints: Endpoint[];
  rules: RulePlan[];
  classes: DecisionClass[];
  /**
   * Class per location for each variant. Variant 0 is used when no CIDR rule
   * matched the query; variant k+1 when cidrRules[k] is the first that did.
   */
  variantClassOfLocation: Int32Array[];
  /** Class for clients without a location, per variant. */
  variantUnknownClass: number[];
  cidrRules: CidrMatch[];
  whenAllDown: number;
  /** Endpoint indexes of the last-resort pool (ALL_DOWN_POOL). */
  lastResort: Int16Array;
  selfEndpoint: number;
  /** Distance (km) from this instance's PoP to each endpoint (NaN where unknown), for prefer_self_within_km. */
  selfDistanceKm: Float64Array;
}

/** What the query path reads for steered names. */
export interface SteeringTables {
  policies: CompiledPolicy[];
  /**
   * classTries[policy][variant]: class and scope per client network
   * (geo/scope.ts); empty for a policy with a single class.
   */
  classTries: ClassTrie[][];
  geo: GeoIndex;
}
