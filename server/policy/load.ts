// The slow path's front door: read every file under the config directory,
// validate, compile, and return one immutable snapshot (or every error found).
// `popsteer validate` and `popsteer serve` both call this, so a set that
// validates is exactly a set that serves.

import { createHash } from 'node:crypto';
import { ConfigError } from '../config/errors.ts';
import { countryText, stringAt, CONTINENT_CODES } from '../geo/codes.ts';
import { buildClassTrie } from '../geo/scope.ts';
import type { GeoIndex, NearestOrders, PopCatalog } from '../geo/types.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import type { CompiledPolicy } from '../steering/types.ts';
import { compilePolicies, policyFilesIn, type GeoFacts } from './policies.ts';
import { compileZones, zoneFilesIn } from './zones.ts';

/** The geo data a policy set compiles against (loaded and watched by geo/). */
export interface GeoContext {
  index: GeoIndex;
  catalog: PopCatalog;
  orders: NearestOrders;
  /** Content identity of the geo data, part of the snapshot hash. */
  version: string;
}

export interface LoadResult {
  snapshot: DnsSnapshot | null;
  errors: ConfigError[];
  files: string[];
  /** Full compiled policies (with per-location class tables), for explain and diff on the main thread. */
  policies: CompiledPolicy[];
}

export function geoFacts(geo: GeoContext): GeoFacts {
  const { index, catalog, orders } = geo;
  const orderClassOfLocation = new Int32Array(index.locationCount);
  for (let i = 0; i < index.locationCount; i++) {
    const c = orders.classOfLocation[i];
    orderClassOfLocation[i] = c === orders.classOfUnknown ? -1 : c;
  }
  return {
    pops: catalog.pops.map((p) => ({ id: p.id, lat: p.lat, lon: p.lon, country: p.country, continent: p.continent, ipv4: p.ipv4, ipv6: p.ipv6 })),
    locationCount: index.locationCount,
    orderClassOfLocation,
    orders: orders.orders,
    country: (i) => countryText(index.country[i]),
    continent: (i) => CONTINENT_CODES[index.continent[i]] ?? '',
    subdivision: (i) => stringAt(index.strings, index.subdivision[i]),
    fixedPop: (i) => index.fixedPop[i],
  };
}

/** Copies an array into shared memory, so posting a snapshot to workers does not copy it. */
function shared(array: Int32Array): Int32Array {
  const out = new Int32Array(new SharedArrayBuffer(array.byteLength));
  out.set(array);
  return out;
}

export function loadSnapshot(configDir: string, geo: GeoContext, selfPop: string): LoadResult {
  const errors: ConfigError[] = [];
  let zoneFiles: string[];
  try {
    zoneFiles = zoneFilesIn(configDir);
  } catch (err) {
    if (err instanceof ConfigError) return { snapshot: null, errors: [err], files: [], policies: [] };
    throw err;
  }
  const policyFiles = policyFilesIn(configDir);
  const facts = geoFacts(geo);
  const loaded = compilePolicies(policyFiles, facts, selfPop, errors);
  const { result, errors: zoneErrors } = compileZones(zoneFiles, loaded.steered);
  errors.push(...zoneErrors);
  const files = [...zoneFiles, ...policyFiles];
  if (!result || errors.length > 0) return { snapshot: null, errors, files, policies: [] };

  // A policy whose every client gets the same class needs no trie: its answer
  // holds for the whole address space (ECS scope 0).
  const classTries = loaded.policies.map((p) => (p.classes.length === 1 ? []
    : p.variantClassOfLocation.map((classOfLocation, v) => shared(buildClassTrie(geo.index, classOfLocation, p.variantUnknownClass[v])))));
  // Workers need neither the per-location tables nor the source text.
  const slim = loaded.policies.map((p) => ({ ...p, variantClassOfLocation: [] }));

  const hash = createHash('sha256');
  for (const f of result.files) hash.update(f.file.slice(configDir.length)).update('\0').update(f.text).update('\0');
  for (const s of loaded.sources) hash.update(s.file.slice(configDir.length)).update('\0').update(s.text).update('\0');
  hash.update(geo.version).update('\0').update(selfPop);
  const snapshot: DnsSnapshot = {
    names: result.names,
    zones: result.zones,
    steering: slim.length > 0 ? { policies: slim, classTries, geo: geo.index } : null,
    hash: hash.digest('hex').slice(0, 16),
    loadedAt: Date.now(),
  };
  return { snapshot: Object.freeze(snapshot), errors: [], files, policies: loaded.policies };
}
