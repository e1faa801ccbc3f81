// The slow path's front door: read every file under the config directory,
// validate, compile, and return one immutable snapshot (or every error found).
// `popsteer validate` and `popsteer serve` both call this, so a set that
// validates is exactly a set that serves.

import { createHash } from 'node:crypto';
import { relative } from 'node:path';
import { ConfigError } from '../config/errors.ts';
import { countryText, stringAt, CONTINENT_CODES } from '../geo/codes.ts';
import type { AsnSource } from '../geo/asn-source.ts';
import { buildClassTrie, type ClassTrie } from '../geo/scope.ts';
import type { GeoIndex, NearestOrders, PopCatalog } from '../geo/types.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import type { CompiledPolicy, GroupTable } from '../steering/types.ts';
import { compilePolicies, policyFilesIn, type GeoFacts, type LocationGroup } from './policies.ts';
import { addHashRecord, zoneFilesIn } from './zones.ts';
import { compileZonesReusing, zonesKeyOf } from './zones-cache.ts';

/** The geo data a policy set compiles against (loaded and watched by geo/). */
export interface GeoContext {
  index: GeoIndex;
  catalog: PopCatalog;
  orders: NearestOrders;
  /** Content identity of the geo data, part of the snapshot hash. */
  version: string;
  /** The ASN source spliced into `index` (asn and resolver_asn rules need one); absent or null when none. */
  asnSource?: AsnSource | null;
}

export interface LoadResult {
  snapshot: DnsSnapshot | null;
  errors: ConfigError[];
  files: string[];
  /** Full compiled policies (with per-location class tables), for explain and diff on the main thread. */
  policies: CompiledPolicy[];
}

/** Per geo context, the facts of the last few named-AS sets (the active set's and a reload's). */
const factsCache = new WeakMap<GeoContext, Array<{ key: string; facts: GeoFacts }>>();
const FACTS_KEPT = 2;
const NO_ASNS: readonly number[] = [];

/**
 * The geo facts policies compile against, grouped once per geo context and
 * set of named ASes and reused by every reload with the same set.
 *
 * A location's AS is part of its group only when some policy names that AS
 * (`namedAsns`; every other AS reads as 0). So the shared group trie splits
 * at the edges of exactly those ASes' networks, every policy's group-to-class
 * table can tell them apart, and ECS scopes stop at those edges by
 * construction; without ASN rules the groups are those of the plain index.
 */
export function geoFacts(geo: GeoContext, namedAsns: Iterable<number> = NO_ASNS): GeoFacts {
  // Without an ASN source no AS can tell locations apart (asn rules are then refused anyway).
  const named = geo.index.asn ? [...new Set(namedAsns)].sort((a, b) => a - b) : [];
  const key = named.join(',');
  let kept = factsCache.get(geo);
  if (!kept) factsCache.set(geo, (kept = []));
  const at = kept.findIndex((k) => k.key === key);
  if (at >= 0) {
    const [hit] = kept.splice(at, 1);
    kept.unshift(hit);
    return hit.facts;
  }
  const facts = groupLocations(geo, named);
  kept.unshift({ key, facts });
  kept.length = Math.min(kept.length, FACTS_KEPT);
  return facts;
}

function groupLocations(geo: GeoContext, named: number[]): GeoFacts {
  const { index, catalog, orders } = geo;
  const groupOfLocation = new Int32Array(index.locationCount);
  const groups: LocationGroup[] = [];
  // Per named AS (ordinal from 1; 0 = any other AS), a two-level numeric key:
  // (order, country, continent) then (subdivision, pinned PoP).
  const asnOrdinal = new Map(named.map((asn, i) => [asn, i + 1]));
  const asnOf = index.asn;
  const byKey = Array.from({ length: named.length + 1 }, () => new Map<number, Map<number, number>>());
  for (let i = 0; i < index.locationCount; i++) {
    const c = orders.classOfLocation[i];
    const order = c === orders.classOfUnknown ? -1 : c;
    const ordinal = asnOf && named.length > 0 ? asnOrdinal.get(asnOf[i]) ?? 0 : 0;
    const outer = ((order + 1) * 65536 + index.country[i]) * 256 + index.continent[i];
    const inner = index.subdivision[i] * 65536 + (index.fixedPop[i] + 1);
    let level = byKey[ordinal].get(outer);
    if (!level) byKey[ordinal].set(outer, (level = new Map()));
    let group = level.get(inner);
    if (group === undefined) {
      group = groups.length;
      level.set(inner, group);
      groups.push({
        order,
        country: countryText(index.country[i]),
        continent: CONTINENT_CODES[index.continent[i]] ?? '',
        subdivision: stringAt(index.strings, index.subdivision[i]),
        fixedPop: index.fixedPop[i],
        asn: ordinal > 0 ? named[ordinal - 1] : 0,
      });
    }
    groupOfLocation[i] = group;
  }
  // Each order's rank of every PoP, made once here rather than by every policy's compile,
  // on shared memory: every thread's lazy classification reads this one copy.
  const popCount = catalog.count;
  const flatRanks = new Int16Array(new SharedArrayBuffer(2 * Math.max(1, orders.orders.length * popCount)));
  const ranks = orders.orders.map((order, c) => {
    const rank = flatRanks.subarray(c * popCount, (c + 1) * popCount);
    for (let position = 0; position < order.length; position++) rank[order[position]] = position;
    return rank;
  });
  const facts: GeoFacts = {
    pops: catalog.pops.map((p) => ({ id: p.id, lat: p.lat, lon: p.lon, country: p.country, continent: p.continent, ipv4: p.ipv4, ipv6: p.ipv6 })),
    locationCount: index.locationCount,
    groupOfLocation,
    groups,
    orders: orders.orders,
    ranks,
    asnSource: geo.asnSource ?? null,
    namedAsns: named,
    table: groupTable(index, groups, groupOfLocation, popCount, flatRanks),
    pinnedPops: new Set(groups.filter((g) => g.fixedPop >= 0).map((g) => g.fixedPop)),
  };
  return facts;
}

function shared<T extends Int32Array | Int16Array | Uint16Array | Uint8Array>(Type: { new(buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number }, length: number): T {
  return new Type(new SharedArrayBuffer(Math.max(1, length) * Type.BYTES_PER_ELEMENT));
}

/** The groups as typed arrays on shared memory, for every thread's lazy classification (steering/lazy-classes.ts). */
function groupTable(index: GeoIndex, groups: LocationGroup[], groupOfLocation: Int32Array, popCount: number, ranks: Int16Array): GroupTable {
  const n = groups.length;
  const table: GroupTable = {
    count: n, groupOfLocation: shared(Int32Array, groupOfLocation.length), order: shared(Int32Array, n), country: shared(Uint16Array, n),
    continent: shared(Uint8Array, n), subdivision: shared(Int32Array, n), fixedPop: shared(Int16Array, n), asn: shared(Int32Array, n),
    strings: index.strings, popCount, ranks,
  };
  table.groupOfLocation.set(groupOfLocation);
  const seen = new Uint8Array(n);
  for (let l = 0; l < groupOfLocation.length; l++) {
    const g = groupOfLocation[l];
    if (seen[g] === 1) continue;
    seen[g] = 1;
    table.order[g] = groups[g].order;
    table.country[g] = index.country[l];
    table.continent[g] = index.continent[l];
    table.subdivision[g] = index.subdivision[l];
    table.fixedPop[g] = groups[g].fixedPop;
    table.asn[g] = groups[g].asn;
  }
  return table;
}

const groupTries = new WeakMap<GeoFacts, ClassTrie>();

/**
 * The one trie every policy reads: per edge of the GeoIP tree, the location
 * group of every address below it, or mixed. Built once per geo facts (geo
 * context and named ASes: one pass over the tree) instead of once per policy.
 */
function groupTrieOf(geo: GeoContext, facts: GeoFacts = geoFacts(geo)): ClassTrie {
  let trie = groupTries.get(facts);
  if (!trie) {
    trie = buildClassTrie(geo.index, facts.groupOfLocation, facts.groups.length);
    groupTries.set(facts, trie);
  }
  return trie;
}

/**
 * The active set's identity, comparable across a fleet: each file's path
 * relative to the config directory and its text, plus the geo data's content
 * identity (geo-context.ts). Nothing that differs between two machines with
 * the same inputs — where the files live, their times, this instance's PoP
 * id — goes in, so PoPs serving the same set publish the same hash.
 */
function contentHashOf(configDir: string, files: ReadonlyArray<{ file: string; text: string }>, geoVersion: string): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(relative(configDir, f.file)).update('\0').update(f.text).update('\0');
  hash.update(geoVersion);
  return hash.digest('hex').slice(0, 16);
}

export function loadSnapshot(configDir: string, geo: GeoContext, selfPop: string, options: { hashRecord?: string | null; validityDays?: number } = {}): LoadResult {
  const errors: ConfigError[] = [];
  let zoneFiles: string[];
  try {
    zoneFiles = zoneFilesIn(configDir);
  } catch (err) {
    if (err instanceof ConfigError) return { snapshot: null, errors: [err], files: [], policies: [] };
    throw err;
  }
  const policyFiles = policyFilesIn(configDir);
  const loaded = compilePolicies(policyFiles, (namedAsns) => geoFacts(geo, namedAsns), selfPop, errors);
  const { result, errors: zoneErrors } = compileZonesReusing(zoneFiles, loaded.steered, { policies: loaded.policies, validityDays: options.validityDays }, !options.hashRecord);
  errors.push(...zoneErrors);
  const files = [...zoneFiles, ...policyFiles];
  if (!result || errors.length > 0) return { snapshot: null, errors, files, policies: [] };

  const groupTrie = groupTrieOf(geo, loaded.geo);
  const slim = loaded.policies;

  const contentHash = contentHashOf(configDir, [...result.files, ...loaded.sources], geo.version);
  if (options.hashRecord) {
    const problem = addHashRecord(result.names, result.zones, options.hashRecord, contentHash);
    if (problem) return { snapshot: null, errors: [new ConfigError('POPSTEER_ERR_SETTING', 'hash_record', null, '', problem)], files, policies: [] };
  }
  const snapshot: DnsSnapshot = {
    names: result.names,
    zones: result.zones,
    steering: slim.length > 0 ? { policies: slim, groupTrie, geo: geo.index } : null,
    hash: contentHash,
    loadedAt: Date.now(),
    ...(result.dnssec ? { dnssec: result.dnssec } : { zonesKey: zonesKeyOf(result.files, loaded.steered, options.hashRecord ? `${options.hashRecord}\0${contentHash}` : '') }),
  };
  return { snapshot: Object.freeze(snapshot), errors: [], files, policies: loaded.policies };
}

/**
 * The snapshot as DNS workers get it. Decision classes are made in each
 * thread on first sight (steering/lazy-classes.ts) and the group tables are
 * on shared memory, so the snapshot posts as it is.
 */
export function snapshotForWorkers(snapshot: DnsSnapshot): DnsSnapshot {
  return snapshot;
}
