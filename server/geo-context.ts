// Loads the geo data a policy set compiles against: the PoP catalog, the
// operator's custom networks and the GeoIP database, compiled into one index
// plus the nearest-PoP orders. Shared by `serve`, `validate` and `explain`.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrors } from './config/errors.ts';
import type { Settings } from './config/settings.ts';
import { loadPopCatalog } from './geo/catalog.ts';
import { loadAsnSource, type AsnSource } from './geo/asn-source.ts';
import { spliceAsn } from './geo/asn-splice.ts';
import { loadGeoDatabases, type GeoDatabase } from './geo/database.ts';
import { nearestOrderClasses } from './geo/distance.ts';
import { loadCustomNetworks } from './geo/networks.ts';
import { ordersCacheFile, readOrdersCache, writeOrdersCache } from './geo/orders-cache.ts';
import type { GeoIndex, NearestOrders, PopCatalog } from './geo/types.ts';
import type { GeoContext } from './policy/load.ts';

export interface LoadedGeo {
  context: GeoContext;
  database: GeoDatabase;
  catalog: PopCatalog;
  /** The ASN source spliced into context.index; null when none is configured. */
  asn: AsnSource | null;
}

/** Throws ConfigErrors naming the file and line of whatever is wrong. */
export function loadGeo(settings: Pick<Settings, 'geoDataDir' | 'geoipDatabase' | 'asnDatabase'> & { cacheDir?: string | null }): LoadedGeo {
  try {
    if (!existsSync(join(settings.geoDataDir, 'pops.yaml'))) {
      throw new ConfigError('POPSTEER_ERR_NO_POP_CATALOG', join(settings.geoDataDir, 'pops.yaml'), null, '',
        'no PoP catalog: create pops.yaml in the geo-data directory (see geo-data/README.md)');
    }
    const catalog = loadPopCatalog(settings.geoDataDir);
    const networks = existsSync(join(settings.geoDataDir, 'networks.yaml')) ? loadCustomNetworks(settings.geoDataDir, catalog) : null;
    const database = loadGeoDatabases(settings.geoipDatabase, { networks, cacheDir: settings.cacheDir ?? null });
    const asn = settings.asnDatabase.length > 0 ? loadAsnSource(settings.asnDatabase) : null;
    return { context: contextFor(database, catalog, asn, settings.cacheDir ?? null), database, catalog, asn };
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigErrors([err]);
    throw err;
  }
}

/**
 * The geo data policies compile against. With an ASN source, its AS numbers
 * are spliced into (a copy of) the GeoIP index, so ASN rules are decided by
 * the same lookup as locations (geo/asn-splice.ts).
 */
export function contextFor(database: GeoDatabase, catalog: PopCatalog, asn: AsnSource | null = null, cacheDir: string | null = null): GeoContext {
  const index = asn ? spliceAsn(database.index, asn) : database.index;
  return {
    index,
    catalog,
    orders: cachedOrders(index, catalog, cacheDir),
    version: geoVersion(database, catalog, asn),
    asnSource: asn,
  };
}

/**
 * The nearest-PoP orders, from the disk cache beside the index cache when
 * the same catalog and locations were ordered before (geo/orders-cache.ts):
 * seconds of haversines at hundreds of PoPs, not repeated at each start.
 */
function cachedOrders(index: GeoIndex, catalog: PopCatalog, cacheDir: string | null): NearestOrders {
  const file = cacheDir ? ordersCacheFile(cacheDir, index, catalog) : null;
  const cached = file ? readOrdersCache(file, index.locationCount, catalog.count) : null;
  if (cached) return cached;
  const orders = nearestOrderClasses(index, catalog);
  if (file) {
    try {
      writeOrdersCache(file, orders);
    } catch {
      // A cache that cannot be written only costs the next start its speed.
    }
  }
  return orders;
}

/**
 * Content identity of the geo inputs: the database's build (type and build
 * time, from its metadata) and the catalog and custom-network texts. Not the
 * database's path or file times, so two machines with the same inputs agree.
 */
function geoVersion(database: GeoDatabase, catalog: PopCatalog, asn: AsnSource | null): string {
  const hash = createHash('sha256');
  hash.update(`${database.databaseType}|${database.buildEpoch.getTime()}`);
  // An ASN source has no build time of its own: its content decides (the count and a digest of its networks).
  if (asn) hash.update(`\0asn|${asn.networks.count}|${asnDigest(asn)}`);
  for (const file of [catalog.file, database.networks?.file]) {
    if (file && existsSync(file)) hash.update('\0').update(readFileSync(file));
  }
  return hash.digest('hex').slice(0, 16);
}

function asnDigest(asn: AsnSource): string {
  const { count, addresses, prefixLengths, asns } = asn.networks;
  return createHash('sha256').update(addresses.subarray(0, 16 * count)).update(prefixLengths.subarray(0, count)).update(asns.subarray(0, count))
    .digest('hex').slice(0, 16);
}
