// Steering policies: YAML → schema → meaning checks → CompiledPolicy.
// The health-independent part of every rule is evaluated here, once per
// distinct client location, into DecisionClasses; per query only the compiled
// form is read.

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type SourcePosition } from '../config/errors.ts';
import { parseLargeYamlText, type YamlSource } from '../config/yaml-source.ts';
import { nameToWire } from '../dns/name.ts';
import { encodeIPv4, encodeIPv6 } from '../dns/rdata.ts';
import { buildCidrTrie, type CidrEntry } from '../steering/cidr-trie.ts';
import { fnv1aString, mix32 } from '../lib/hash.ts';
import { USES_ASN, USES_CONTINENT, USES_COUNTRY, USES_SUBDIVISION } from '../steering/lazy-classes.ts';
import { distanceKm } from '../geo/distance.ts';
import { isCidrProblem, parseCidr } from '../lib/cidr.ts';
import {
  ALL_DOWN_FAIL_OPEN, ALL_DOWN_POOL, ALL_DOWN_SERVFAIL, ENDPOINT_ADDRESSES, ENDPOINT_CNAME, WEIGHTED_RANDOM, WEIGHTED_STICKY,
  healthOpsOf,
  type CidrTries, type ClassPlan, type CompiledPolicy, type Endpoint, type GroupTable, type HealthStep, type LocationStep,
  type RuleMatch, type RulePlan, type StepPlan,
} from '../steering/types.ts';
import type { AsnSource } from '../geo/asn-source.ts';
import { asnMatchProblem, resolverAsnEntries } from './asn-rules.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import type { SteeredName } from './zones.ts';

/** What policy compilation needs to know from the geo module. */
export interface GeoFacts {
  pops: Array<{ id: string; lat: number; lon: number; country: string; continent: string; ipv4: string[]; ipv6: string[] }>;
  locationCount: number;
  /**
   * Group of each location. Locations with the same nearest-PoP order,
   * country, continent, subdivision, pinned PoP and named AS cannot be told
   * apart by any rule, so policies are evaluated once per group, not once per
   * location.
   */
  groupOfLocation: Int32Array;
  groups: LocationGroup[];
  /** PoP ordinals nearest first, per order class. */
  orders: Int16Array[];
  /** ranks[order][pop]: the PoP's position in that order; shared by every policy's compile. */
  ranks: Int16Array[];
  /** The ASN source spliced into the index, for asn and resolver_asn rules; null when none is configured. */
  asnSource: AsnSource | null;
  /** The ASes that tell groups apart (those some policy's `asn` rules name), ascending; every other AS reads as 0. */
  namedAsns: number[];
  /** The groups again on shared memory, as the query path's lazy classification reads them. */
  table: GroupTable;
  /** PoPs that some custom network pins. */
  pinnedPops: Set<number>;
}

export interface LocationGroup {
  /** Nearest-order class; -1 = no coordinates. */
  order: number;
  country: string;
  continent: string;
  subdivision: string;
  fixedPop: number;
  /** The location's AS when some policy names it, else 0. */
  asn: number;
}

type Step = string | Record<string, Record<string, unknown> | number>;
interface EndpointDoc { pop?: string; id?: string; ipv4?: string[]; ipv6?: string[]; cname?: string; health_from?: string; weight: number; enabled: boolean }
interface RuleDoc {
  name?: string;
  match: 'default' | { country?: string[]; continent?: string[]; subdivision?: string[]; client_cidr?: string[]; resolver_cidr?: string[]; self?: string[]; asn?: number[]; resolver_asn?: number[] };
  pool?: string;
  pools?: string[];
  steps: Step[];
}
interface PolicyDoc {
  name: string;
  names?: string[];
  ttl: number;
  degraded_ttl?: number;
  ttl_from_health?: { min: number; max: number };
  unknown_location: 'self' | string[];
  pools: Record<string, { pops?: 'all' | string[]; endpoints?: EndpointDoc[] }>;
  rules: RuleDoc[];
  when_all_down: 'fail_open' | 'servfail' | { pool: string };
}

export function policyFilesIn(configDir: string): string[] {
  try {
    return readdirSync(join(configDir, 'steering')).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(configDir, 'steering', f));
  } catch {
    return [];
  }
}

export interface LoadedPolicies {
  policies: CompiledPolicy[];
  steered: SteeredName[];
  sources: YamlSource[];
  /** The geo facts the policies were compiled against (grouped by the ASes they name). */
  geo: GeoFacts;
}

/**
 * Parses and checks every policy file; compiles them against the geo facts.
 * `geoFor` gives the facts for the ASes the policies' `asn` rules name (read
 * from every file before any policy compiles): those ASes are part of the
 * location groups, so a set naming another AS compiles against other groups.
 */
export function compilePolicies(files: string[], geoFor: GeoFacts | ((namedAsns: Set<number>) => GeoFacts), selfPop: string, errors: ConfigError[]): LoadedPolicies {
  const policies: CompiledPolicy[] = [];
  const steered: SteeredName[] = [];
  const sources: YamlSource[] = [];
  const valid: Array<{ file: string; source: YamlSource; docs: PolicyDoc[] }> = [];
  for (const file of files) {
    let parsed: ParsedFile;
    try {
      parsed = parsedFile(file);
    } catch (err) {
      if (err instanceof ConfigError) { errors.push(err); continue; }
      throw err;
    }
    const { source, schemaErrors } = parsed;
    sources.push(source);
    if (schemaErrors.length > 0) {
      errors.push(...schemaErrors);
      continue;
    }
    valid.push({ file, source, docs: (source.data as { policies: PolicyDoc[] }).policies });
  }
  // Files no longer in the set are not kept.
  const listed = new Set(files);
  for (const file of parsedFiles.keys()) if (!listed.has(file)) parsedFiles.delete(file);
  const geo = typeof geoFor === 'function' ? geoFor(namedAsnsOf(valid.flatMap((v) => v.docs))) : geoFor;
  const seenNames = new Map<string, { file: string; source: YamlSource; at: string }>();
  const load = beginLoad(geo);
  for (const { file, source, docs } of valid) {
    docs.forEach((doc, i) => {
      const pointer = `/policies/${i}`;
      // `name` and every entry of `names`: each name has one policy, across every file.
      const written = [{ name: doc.name, at: `${pointer}/name` }, ...(doc.names ?? []).map((name, k) => ({ name, at: `${pointer}/names/${k}` }))];
      let clash = false;
      for (const { name, at } of written) {
        const lower = name.toLowerCase().replace(/\.$/, '');
        const other = seenNames.get(lower);
        if (other) {
          const line = positionOf(other.source, other.at)?.line;
          errors.push(new ConfigError('POPSTEER_ERR_POLICY_DUPLICATE_NAME', file, positionOf(source, at), at,
            `${name} already has a policy (${other.file}${line ? `:${line}` : ''}); one name, one policy: remove it here or there`));
          clash = true;
          continue;
        }
        seenNames.set(lower, { file, source, at });
      }
      if (clash) return;
      const before = errors.length;
      const compiled = compileCached(doc, policies.length, source, pointer, geo, selfPop, errors, load);
      if (compiled && errors.length === before) {
        for (const { name, at } of written) steered.push(steeredName(name, compiled.index, source, at));
        policies.push(compiled);
      }
    });
  }
  endLoad(geo, load);
  return { policies, steered, sources, geo };
}

/**
 * Positions in a parsed file, looked up only when an error quotes them and
 * kept with the parse (parsedFile reuses the source while the bytes stay the
 * same). Policy files are parsed without positions (parseLargeYamlText): a
 * position parses the file again, so a load must not ask for one per name.
 */
const positions = new WeakMap<YamlSource, Map<string, SourcePosition | null>>();

function positionOf(source: YamlSource, pointer: string): SourcePosition | null {
  let known = positions.get(source);
  if (!known) positions.set(source, (known = new Map()));
  let position = known.get(pointer);
  if (position === undefined) {
    try {
      position = source.position(pointer);
    } catch {
      // The positioned parse refused what the quick one read: the error is still reported, without a line.
      position = null;
    }
    known.set(pointer, position);
  }
  return position;
}

/** A steered name whose position is found only if an error about it needs one. */
function steeredName(name: string, index: number, source: YamlSource, pointer: string): SteeredName {
  return { name, index, file: source.file, pointer, get position() { return positionOf(source, pointer); } };
}

interface ParsedFile { text: string; source: YamlSource; schemaErrors: ConfigError[] }
const parsedFiles = new Map<string, ParsedFile>();

/**
 * The file parsed and checked against the schema, reused while its bytes stay
 * the same: a reload after one policy file of a thousand changed parses one
 * file, not a thousand (parsing and schema checks were about a second of it).
 * The parsed documents are never changed by compiling.
 */
function parsedFile(file: string): ParsedFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    parsedFiles.delete(file);
    throw new ConfigError('POPSTEER_ERR_FILE_UNREADABLE', file, null, '', `cannot read file: ${(err as Error).message}`);
  }
  const kept = parsedFiles.get(file);
  if (kept !== undefined && kept.text === text) return kept;
  parsedFiles.delete(file);
  // Without a document tree: 1,000 policy files took about 4.6 s of CPU to parse with positions, a tenth of that without.
  const source = parseLargeYamlText(file, text);
  const parsed = { text, source, schemaErrors: validateAgainstSchema('policy', source, 'POPSTEER_ERR_POLICY_SCHEMA') };
  parsedFiles.set(file, parsed);
  return parsed;
}

/** Every AS an `asn` rule names, in any policy. */
function namedAsnsOf(docs: PolicyDoc[]): Set<number> {
  const named = new Set<number>();
  for (const doc of docs) for (const rule of doc.rules) if (rule.match !== 'default') for (const asn of rule.match.asn ?? []) named.add(asn);
  return named;
}

/**
 * Compiled policies of the previous loads against the same geo facts, by
 * what decides their answers (the policy without its names, file and
 * description): a reload recompiles only the policies that changed, and
 * policies written alike (one body, many names or files) share one compile:
 * their classes and per-group tables.
 */
interface CacheEntry { compiled: CompiledPolicy; usedInLoad: number }
const compiledCache = new WeakMap<GeoFacts, { entries: Map<string, CacheEntry>; load: number }>();

const cacheKeys = new WeakMap<PolicyDoc, string>();
/** Unique across threads and restarts of the build thread, so an id never names two different compiles. */
const COMPILE_ID_BASE = randomBytes(8).toString('hex');
let compileCount = 0;

function compileCached(doc: PolicyDoc, index: number, source: YamlSource, pointer: string, geo: GeoFacts, selfPop: string, errors: ConfigError[], load: number): CompiledPolicy | null {
  // The key of a document parsed earlier (parsedFile) is kept with it.
  let body = cacheKeys.get(doc);
  if (body === undefined) cacheKeys.set(doc, (body = JSON.stringify({ ...doc, name: '', names: undefined, description: undefined })));
  const key = `${selfPop}\0${body}`;
  const cache = cacheOf(geo);
  const hit = cache.entries.get(key);
  // An error already reported against this policy fails it, as it would fail a fresh compile.
  if (hit && errors.some((e) => e.file === source.file && (e.pointer === pointer || e.pointer.startsWith(`${pointer}/`)))) return null;
  if (hit) {
    hit.usedInLoad = load;
    return { ...hit.compiled, index, name: doc.name, file: source.file };
  }
  const compiled = compilePolicy(doc, index, source, pointer, geo, selfPop, errors);
  if (compiled) cache.entries.set(key, { compiled, usedInLoad: load });
  if (compiled) compiled.compileId = `${COMPILE_ID_BASE}-${++compileCount}`;
  return compiled;
}

function cacheOf(geo: GeoFacts): { entries: Map<string, CacheEntry>; load: number } {
  let cache = compiledCache.get(geo);
  if (!cache) compiledCache.set(geo, (cache = { entries: new Map(), load: 0 }));
  return cache;
}

/** Starts a load: returns its number. Entries neither this load nor the one before used are dropped when it ends. */
function beginLoad(geo: GeoFacts): number {
  return ++cacheOf(geo).load;
}

function endLoad(geo: GeoFacts, load: number): void {
  const { entries } = cacheOf(geo);
  for (const [key, entry] of entries) if (entry.usedInLoad < load - 1) entries.delete(key);
}

// eslint-disable-next-line max-lines-per-function -- to be split into named phases (rules, steps, classes, tries) once the steering work rewriting this file lands; splitting it now would conflict with it (issue 18)
function compilePolicy(doc: PolicyDoc, index: number, source: YamlSource, pointer: string, geo: GeoFacts, selfPop: string, errors: ConfigError[]): CompiledPolicy | null {
  const file = source.file;
  const at = (p: string): SourcePosition | null => positionOf(source, p);
  const fail = (code: string, p: string, message: string): void => { errors.push(new ConfigError(code, file, at(p), p, message)); };
  try {
    nameToWire(doc.name.endsWith('.') ? doc.name : `${doc.name}.`);
  } catch (err) {
    fail('POPSTEER_ERR_POLICY_NAME', `${pointer}/name`, (err as Error).message);
    return null;
  }
  const popIndex = new Map(geo.pops.map((p, i) => [p.id, i]));
  const endpoints: Endpoint[] = [];
  const endpointIndex = new Map<string, number>();
  const addEndpoint = (e: Endpoint): number => {
    const existing = endpointIndex.get(e.id);
    if (existing !== undefined) return existing;
    endpoints.push(e);
    endpointIndex.set(e.id, endpoints.length - 1);
    return endpoints.length - 1;
  };
  const addresses = popAddressesOf(geo);
  const popEndpoint = (ordinal: number, weight: number): Endpoint => {
    const p = geo.pops[ordinal];
    const a = addresses[ordinal];
    return {
      id: p.id, kind: ENDPOINT_ADDRESSES, healthSubject: ordinal, pop: ordinal, idHash: a.idHash, weight,
      ipv4: a.ipv4, ipv6: a.ipv6, cname: null, lat: p.lat, lon: p.lon, continent: p.continent, country: p.country,
    };
  };

  // Pools → endpoint indexes.
  const pools = new Map<string, number[]>();
  for (const [poolName, pool] of Object.entries(doc.pools)) {
    const p = `${pointer}/pools/${poolName}`;
    const members: number[] = [];
    if (!pool.pops && !pool.endpoints) fail('POPSTEER_ERR_POLICY_EMPTY_POOL', p, `pool "${poolName}" lists no pops and no endpoints`);
    if (pool.pops) {
      const ids = pool.pops === 'all' ? geo.pops.map((x) => x.id) : pool.pops;
      ids.forEach((id, k) => {
        const ordinal = popIndex.get(id);
        if (ordinal === undefined) fail('POPSTEER_ERR_POLICY_UNKNOWN_POP', `${p}/pops/${k}`, `unknown PoP "${id}"; known: ${geo.pops.map((x) => x.id).join(', ')}`);
        else addMember(members, addEndpoint(popEndpoint(ordinal, 1)));
      });
    }
    (pool.endpoints ?? []).forEach((e, k) => {
      const ep = `${p}/endpoints/${k}`;
      if (!e.enabled) return;
      if (e.pop !== undefined) {
        const ordinal = popIndex.get(e.pop);
        if (ordinal === undefined) {
          fail('POPSTEER_ERR_POLICY_UNKNOWN_POP', `${ep}/pop`, `unknown PoP "${e.pop}"; known: ${geo.pops.map((x) => x.id).join(', ')}`);
          return;
        }
        const idx = addEndpoint(popEndpoint(ordinal, e.weight));
        endpoints[idx].weight = e.weight;
        addMember(members, idx);
        return;
      }
      if (e.id === undefined) {
        fail('POPSTEER_ERR_POLICY_ENDPOINT', ep, 'an endpoint needs either `pop: <id>` or `id:` with ipv4/ipv6 addresses or a cname');
        return;
      }
      const hasAddresses = (e.ipv4?.length ?? 0) + (e.ipv6?.length ?? 0) > 0;
      if (hasAddresses === (e.cname !== undefined)) {
        fail('POPSTEER_ERR_POLICY_ENDPOINT', ep, `endpoint "${e.id}" needs addresses (ipv4/ipv6) or a cname, not both and not neither`);
        return;
      }
      let cname: Uint8Array | null = null;
      if (e.cname !== undefined) {
        try {
          cname = nameToWire(e.cname.endsWith('.') ? e.cname : `${e.cname}.`);
        } catch (err) {
          fail('POPSTEER_ERR_POLICY_ENDPOINT', `${ep}/cname`, (err as Error).message);
          return;
        }
      }
      let healthSubject = -1;
      if (e.health_from !== undefined) {
        const ordinal = popIndex.get(e.health_from);
        if (ordinal === undefined) {
          fail('POPSTEER_ERR_POLICY_UNKNOWN_POP', `${ep}/health_from`, `unknown PoP "${e.health_from}"`);
          return;
        }
        healthSubject = ordinal;
      }
      addMember(members, addEndpoint({
        id: e.id, kind: cname ? ENDPOINT_CNAME : ENDPOINT_ADDRESSES, healthSubject, pop: -1, idHash: mix32(fnv1aString(e.id)),
        weight: e.weight, ipv4: (e.ipv4 ?? []).map(encodeIPv4), ipv6: (e.ipv6 ?? []).map(encodeIPv6), cname,
        lat: NaN, lon: NaN, continent: '', country: '',
      }));
    });
    if (members.length === 0 && (pool.pops || pool.endpoints)) {
      fail('POPSTEER_ERR_POLICY_EMPTY_POOL', p, `pool "${poolName}" has no enabled endpoint; enable one or remove the pool`);
    } else if (members.length > 0 && members.every((m) => endpoints[m].weight === 0)) {
      fail('POPSTEER_ERR_POLICY_ZERO_WEIGHTS', p, `every endpoint of pool "${poolName}" has weight 0, so it can never answer; give one a weight above 0`);
    }
    pools.set(poolName, members);
  }
  const poolRef = (name: string, p: string): number[] => {
    const members = pools.get(name);
    if (!members) {
      fail('POPSTEER_ERR_POLICY_UNKNOWN_POOL', p, `unknown pool "${name}"; this policy has: ${[...pools.keys()].join(', ')}`);
      return [];
    }
    return members;
  };

  // Rules.
  const rules: RulePlan[] = [];
  const cidrEntries: { client: CidrEntry[]; resolver: CidrEntry[] } = { client: [], resolver: [] };
  const ruleAppliesHere: boolean[] = [];
  const ruleHasCidr: boolean[] = [];
  let sawDefault = -1;
  const seenMatches = new Map<string, number>();
  doc.rules.forEach((rule, r) => {
    const p = `${pointer}/rules/${r}`;
    if (sawDefault >= 0) {
      fail('POPSTEER_ERR_POLICY_UNREACHABLE_RULE', p, `this rule can never match: rule ${sawDefault + 1} above it matches every client; move it above or delete it`);
    }
    const written = rule.match === 'default' ? {} : rule.match;
    const matchKey = JSON.stringify(written);
    const earlier = seenMatches.get(matchKey);
    if (earlier !== undefined && sawDefault < 0) {
      fail('POPSTEER_ERR_POLICY_UNREACHABLE_RULE', p, `this rule has the same match as rule ${earlier + 1}, which always wins; merge them or change the match`);
    }
    seenMatches.set(matchKey, r);
    const match: RuleMatch = {
      countries: written.country ?? [], continents: written.continent ?? [], subdivisions: written.subdivision ?? [],
      clientCidrs: written.client_cidr ?? [], resolverCidrs: written.resolver_cidr ?? [], self: written.self ?? [],
      asns: written.asn ?? [], resolverAsns: written.resolver_asn ?? [],
    };
    const hasCidr = match.clientCidrs.length + match.resolverCidrs.length + match.resolverAsns.length > 0;
    const hasLocation = match.countries.length + match.continents.length + match.subdivisions.length + match.asns.length > 0;
    if (hasCidr && hasLocation) {
      fail('POPSTEER_ERR_POLICY_MATCH', `${p}/match`, 'a rule matches on CIDRs (client_cidr, resolver_cidr, resolver_asn) or on the client\'s location and AS (country, continent, subdivision, asn), not both: split it into two rules');
    }
    if (match.resolverCidrs.length > 0 && match.resolverAsns.length > 0) {
      fail('POPSTEER_ERR_POLICY_MATCH', `${p}/match`, 'a rule matches the resolver by resolver_cidr or by resolver_asn, not both: split it into two rules');
    }
    const asnProblem = asnMatchProblem(match.asns, match.resolverAsns, geo.asnSource);
    if (asnProblem) fail('POPSTEER_ERR_POLICY_NO_ASN_SOURCE', `${p}/match/${match.asns.length > 0 ? 'asn' : 'resolver_asn'}`, asnProblem);
    match.self.forEach((id, k) => {
      if (!popIndex.has(id)) fail('POPSTEER_ERR_POLICY_UNKNOWN_POP', `${p}/match/self/${k}`, `unknown PoP "${id}"`);
    });
    // A rule restricted to other PoPs does not exist on this instance: its CIDRs must not shadow the next rule's.
    const selfOk = match.self.length === 0 || match.self.includes(selfPop);
    for (const on of ['client', 'resolver'] as const) {
      (on === 'client' ? match.clientCidrs : match.resolverCidrs).forEach((text, k) => {
        const parsed = parseCidr(text, 'trie');
        if (isCidrProblem(parsed)) fail('POPSTEER_ERR_POLICY_BAD_CIDR', `${p}/match/${on}_cidr/${k}`, parsed.message);
        else if (selfOk) cidrEntries[on].push({ rule: r, family: parsed.family, network: parsed.address, prefixLength: parsed.prefixLength });
      });
    }
    if (selfOk && match.resolverAsns.length > 0 && geo.asnSource) {
      const entries = resolverAsnEntries(geo.asnSource, match.resolverAsns, r);
      cidrEntries.resolver.push(...entries);
      // An AS the source has no network for matches no resolver: nor may the rule's client CIDRs alone.
      if (entries.length === 0) cidrEntries.client = cidrEntries.client.filter((e) => e.rule !== r);
    }
    ruleAppliesHere.push(selfOk);
    ruleHasCidr.push(hasCidr);
    if (!hasCidr && !hasLocation && selfOk && sawDefault < 0) sawDefault = r;

    let tiers: number[][] = [];
    if (rule.pool !== undefined && rule.pools !== undefined) fail('POPSTEER_ERR_POLICY_RULE', p, 'give either `pool` or `pools`, not both');
    if (rule.pools) tiers = rule.pools.map((name, k) => poolRef(name, `${p}/pools/${k}`));
    else if (rule.pool) tiers = [poolRef(rule.pool, `${p}/pool`)];
    else if (pools.size === 1) tiers = [[...pools.values()][0]];
    else fail('POPSTEER_ERR_POLICY_RULE', p, `name the candidates with \`pool:\` or \`pools:\` (the policy has several: ${[...pools.keys()].join(', ')})`);

    const steps = rule.steps.map((step, k) => compileStep(step, `${p}/steps/${k}`, tiers, endpoints, popIndex.get(selfPop), poolRef, fail));
    checkStepOrder(steps, rule.steps.length, p, fail);
    if (steps.some((st) => st?.kind === 'failover') && tiers.length < 2) {
      fail('POPSTEER_ERR_POLICY_STEP', `${p}/steps/${steps.findIndex((st) => st?.kind === 'failover')}`, 'failover needs `pools:` with at least two pools in priority order');
    }
    const typed = steps.filter((st): st is StepPlan => st !== null);
    const healthSteps = typed.filter(isHealthStep);
    const { ops, args } = healthOpsOf(healthSteps);
    const first = typed.find((st) => st.kind === 'first');
    rules.push({
      name: rule.name ?? `rule ${r + 1}`, match, tiers, steps: typed,
      locationSteps: typed.filter((st): st is LocationStep => !isHealthStep(st)), healthSteps, healthOps: ops, healthArgs: args,
      perNetwork: typed.some((st) => st.kind === 'weighted' || st.kind === 'capacity'),
      first: first?.kind === 'first' ? first.count : 1,
      matchText: rule.match === 'default' ? 'default' : JSON.stringify(rule.match),
      stepTexts: rule.steps.map((st) => (typeof st === 'string' ? st : JSON.stringify(st))),
    });
  });
  if (doc.ttl_from_health && doc.ttl_from_health.min > doc.ttl_from_health.max) {
    fail('POPSTEER_ERR_POLICY_TTL', `${pointer}/ttl_from_health`, `ttl_from_health.min (${doc.ttl_from_health.min}) is above max (${doc.ttl_from_health.max}); swap them`);
  }
  if (sawDefault < 0) {
    fail('POPSTEER_ERR_POLICY_NO_DEFAULT', `${pointer}/rules`, 'no rule matches every client: add a last rule with `match: default` so every query gets an answer');
  }
  let whenAllDown = ALL_DOWN_FAIL_OPEN;
  let lastResort = new Int16Array(0);
  if (doc.when_all_down === 'servfail') whenAllDown = ALL_DOWN_SERVFAIL;
  else if (typeof doc.when_all_down === 'object') {
    whenAllDown = ALL_DOWN_POOL;
    lastResort = Int16Array.from(poolRef(doc.when_all_down.pool, `${pointer}/when_all_down/pool`));
  }
  const selfOrdinal = popIndex.get(selfPop) ?? -1;
  const selfEndpoint = selfOrdinal >= 0 ? endpoints.findIndex((e) => e.pop === selfOrdinal) : -1;
  let unknownOrder: number[] | null = null;
  if (doc.unknown_location === 'self') unknownOrder = selfEndpoint >= 0 ? [selfEndpoint] : null;
  else {
    unknownOrder = [];
    doc.unknown_location.forEach((id, k) => {
      const ordinal = popIndex.get(id);
      if (ordinal === undefined) fail('POPSTEER_ERR_POLICY_UNKNOWN_POP', `${pointer}/unknown_location/${k}`, `unknown PoP "${id}"`);
      const e = endpoints.findIndex((x) => x.pop === ordinal);
      if (e >= 0) unknownOrder!.push(e);
    });
  }
  // This policy's errors only: /policies/1 must not catch /policies/10.
  if (errors.some((e) => e.file === file && (e.pointer === pointer || e.pointer.startsWith(`${pointer}/`)))) return null;

  // Classes are made per thread on first sight (steering/lazy-classes.ts): here only what they are made from.
  const usesCountry = rules.some((r) => r.match.countries.length > 0 || r.locationSteps.some((st) => st.kind === 'geofence'));
  const usesContinent = rules.some((r) => r.match.continents.length > 0 || r.locationSteps.some((st) => st.kind === 'geofence'));
  const usesSubdivision = rules.some((r) => r.match.subdivisions.length > 0);
  const usesAsn = rules.some((r) => r.match.asns.length > 0);
  // The groups must tell every named AS apart, or its locations would silently read as AS 0.
  const ungrouped = geo.asnSource ? rules.flatMap((r) => r.match.asns).filter((asn) => !geo.namedAsns.includes(asn)) : [];
  if (ungrouped.length > 0) throw new Error(`policy ${doc.name}: geo facts grouped without AS${ungrouped[0]} (compile with geoFacts(geo, namedAsns))`);
  const cidr = cidrEntries.client.length + cidrEntries.resolver.length > 0 ? compileCidrTries(cidrEntries, rules) : null;
  const variants = [-1, ...new Set([...cidrEntries.client, ...cidrEntries.resolver].map((c) => c.rule))].sort((a, b) => a - b);
  const plan: ClassPlan = {
    uniform: false,
    variantRules: Int32Array.from(variants),
    applies: Uint8Array.from(ruleAppliesHere, (x) => (x ? 1 : 0)),
    hasCidr: Uint8Array.from(ruleHasCidr, (x) => (x ? 1 : 0)),
    defaultRule: sawDefault,
    uses: (usesCountry ? USES_COUNTRY : 0) | (usesContinent ? USES_CONTINENT : 0) | (usesSubdivision ? USES_SUBDIVISION : 0) | (usesAsn ? USES_ASN : 0),
  };
  plan.uniform = cidr === null && isUniform(rules, plan, endpoints, geo);
  const selfPopEntry = selfOrdinal >= 0 ? geo.pops[selfOrdinal] : null;
  const selfDistanceKm = Float64Array.from(endpoints, (e) => (selfPopEntry && !Number.isNaN(e.lat) ? distanceKm(selfPopEntry.lat, selfPopEntry.lon, e.lat, e.lon) : NaN));
  return {
    compileId: '', name: doc.name, index, file, ttl: doc.ttl, degradedTtl: doc.degraded_ttl ?? Math.max(1, Math.floor(doc.ttl / 3)),
    ttlFromHealth: doc.ttl_from_health ?? null, endpoints, rules, plan, groups: geo.table,
    cidr, whenAllDown, lastResort, selfEndpoint, unknownOrder, selfDistanceKm,
  };
}

const popAddresses = new WeakMap<GeoFacts, Array<{ ipv4: Uint8Array[]; ipv6: Uint8Array[]; idHash: number }>>();

/**
 * Each PoP's addresses in wire form, made once per geo facts: every policy
 * naming the PoP shares the arrays (a thousand policies over 300 PoPs would
 * otherwise hold tens of thousands of copies, and post each to every worker).
 */
function popAddressesOf(geo: GeoFacts): Array<{ ipv4: Uint8Array[]; ipv6: Uint8Array[]; idHash: number }> {
  let found = popAddresses.get(geo);
  if (!found) {
    found = geo.pops.map((p) => ({ ipv4: p.ipv4.map(encodeIPv4), ipv6: p.ipv6.map(encodeIPv6), idHash: mix32(fnv1aString(p.id)) }));
    popAddresses.set(geo, found);
  }
  return found;
}

type Fail = (code: string, pointer: string, message: string) => void;

/** A pool lists each endpoint once, however often it is written. */
function addMember(members: number[], endpoint: number): void {
  if (!members.includes(endpoint)) members.push(endpoint);
}

/** One written step as its typed plan (null when it is wrong: the error is reported). */
function compileStep(step: Step, p: string, tiers: number[][], endpoints: Endpoint[], selfOrdinal: number | undefined,
  poolRef: (name: string, pointer: string) => number[], fail: Fail): StepPlan | null {
  if (step === 'healthy') return { kind: 'healthy' };
  if (step === 'nearest') return { kind: 'nearest', limit: 0 };
  if (step === 'self') {
    // An instance whose PoP is not a candidate has nothing local to give: when_all_down decides.
    const endpoint = selfOrdinal === undefined ? -1 : tiers.flat().find((i) => endpoints[i].pop === selfOrdinal) ?? -1;
    return { kind: 'self', endpoint };
  }
  if (typeof step !== 'object') {
    fail('POPSTEER_ERR_POLICY_STEP', p, `unknown step "${String(step)}"`);
    return null;
  }
  if ('nearest' in step) return { kind: 'nearest', limit: (step.nearest as { limit: number }).limit };
  if ('first' in step) return { kind: 'first', count: step.first as number };
  if ('prefer_self_within_km' in step) return { kind: 'prefer_self', withinKm: step.prefer_self_within_km as number };
  if ('capacity' in step) return { kind: 'capacity', mark: (step.capacity as { mark: number }).mark };
  if ('failover' in step) return { kind: 'failover', minHealthy: (step.failover as { min_healthy?: number }).min_healthy ?? 1 };
  if ('weighted' in step) return { kind: 'weighted', mode: (step.weighted as { mode?: string }).mode === 'random' ? WEIGHTED_RANDOM : WEIGHTED_STICKY };
  const g = step.geofence as { to: 'client_continent' | 'client_country' | string[]; else?: 'keep_all' | 'servfail' | { pool: string } };
  const otherwise = g.else === undefined || g.else === 'keep_all' ? 'keep_all' as const
    : g.else === 'servfail' ? 'servfail' as const : poolRef(g.else.pool, `${p}/geofence/else/pool`);
  return { kind: 'geofence', to: g.to, otherwise };
}

export function isHealthStep(step: StepPlan): step is HealthStep {
  return step.kind !== 'nearest' && step.kind !== 'self' && step.kind !== 'geofence';
}

/**
 * Steps run in the order written, location steps when the policy compiles
 * and health steps per query; an order that this cannot honour is refused
 * rather than quietly run another way.
 */
function checkStepOrder(steps: Array<StepPlan | null>, count: number, p: string, fail: Fail): void {
  const seen = new Set<string>();
  steps.forEach((step, k) => {
    if (step === null) return;
    const at = `${p}/steps/${k}`;
    if (step.kind === 'first' && k < count - 1) fail('POPSTEER_ERR_POLICY_STEP', at, '`first` must be the last step (it cuts the list the other steps produce)');
    if ((step.kind === 'geofence' || step.kind === 'self') && [...seen].some((kind) => kind !== 'nearest' && kind !== 'geofence' && kind !== 'self')) {
      fail('POPSTEER_ERR_POLICY_STEP', at, `\`${step.kind}\` decides on the client's location, before health is known: move it before ${[...seen].filter((kind) => !['nearest', 'geofence', 'self'].includes(kind)).map((kind) => `\`${kind}\``).join(', ')}`);
    }
    const reorders = ['weighted', 'capacity', 'prefer_self'].filter((kind) => seen.has(kind));
    if (step.kind === 'nearest' && reorders.length > 0) {
      fail('POPSTEER_ERR_POLICY_STEP', at, `\`nearest\` after \`${reorders[0]}\` would re-sort by distance and undo it: move \`nearest\` before it`);
    }
    if (step.kind === 'weighted' && seen.has('capacity')) {
      fail('POPSTEER_ERR_POLICY_STEP', at, '`capacity` moves clients off the candidate the weights picked: put `capacity` after `weighted` (before it, the weights would re-sort the list and undo the shift)');
    }
    seen.add(step.kind);
  });
}

/** The CIDR tries of a policy, with each CIDR rule's variant (its position among the CIDR rules, from 1). */
function compileCidrTries(entries: { client: CidrEntry[]; resolver: CidrEntry[] }, rules: RulePlan[]): CidrTries {
  const variantOfRule = new Int32Array(rules.length);
  const cidrKinds = new Uint8Array(rules.length);
  for (const e of entries.client) cidrKinds[e.rule] |= 1;
  for (const e of entries.resolver) cidrKinds[e.rule] |= 2;
  let variant = 0;
  for (let r = 0; r < rules.length; r++) if (cidrKinds[r] !== 0) variantOfRule[r] = ++variant;
  const resolverOnly = Int32Array.from(rules.keys()).filter((r) => cidrKinds[r] === 2);
  return { client: buildCidrTrie(entries.client), resolver: buildCidrTrie(entries.resolver), variantOfRule, cidrKinds, resolverOnly };
}

/**
 * Whether every client gets one class: the rule that comes first on this
 * instance matches everyone and has no location step, and no custom network
 * pins one of its PoPs that is not already first in its tier. (Other
 * policies with a single class get a table like the rest: their scopes are
 * then the groups', narrower but sound.)
 */
function isUniform(rules: RulePlan[], plan: ClassPlan, endpoints: Endpoint[], geo: GeoFacts): boolean {
  let first = -1;
  for (let r = 0; r < rules.length && first < 0; r++) if (plan.applies[r] === 1) first = r;
  if (first !== plan.defaultRule || first < 0) return false;
  const rule = rules[first];
  if (rule.locationSteps.length > 0) return false;
  // A pinned PoP goes first in its tier: a change only where it is not first already.
  return !rule.tiers.some((tier) => tier.some((e, i) => i > 0 && endpoints[e].pop >= 0 && geo.pinnedPops.has(endpoints[e].pop)));
}
