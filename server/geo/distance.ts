// Great-circle distance and the nearest-PoP orders, computed once per
// distinct location at load time so a query reads a precomputed list.

import type { GeoIndex, NearestOrders, PopCatalog } from './types.ts';

/** Mean Earth radius (IUGG), km. */
export const EARTH_RADIUS_KM = 6371.0088;
const RADIANS = Math.PI / 180;

/** Haversine distance in km. */
export function distanceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const dLat = (lat2 - lat1) * RADIANS;
  const dLon = (lon2 - lon1) * RADIANS;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * RADIANS) * Math.cos(lat2 * RADIANS) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/**
 * PoP ordinals nearest first from (lat, lon), ties by PoP id. A pinned PoP
 * (custom network) comes first whatever its distance. Without coordinates
 * (Country databases): PoPs in the same country, then the same continent,
 * then the rest, each group by id.
 */
export function orderPops(catalog: PopCatalog, lat: number, lon: number, country: number, continent: number, pinnedPop: number, out: Int16Array): Int16Array {
  const count = catalog.count;
  const rank = idRank(catalog);
  const keys = new Float64Array(count);
  const hasCoordinates = Number.isFinite(lat) && Number.isFinite(lon);
  for (let p = 0; p < count; p++) {
    if (p === pinnedPop) keys[p] = -1;
    else if (hasCoordinates) keys[p] = distanceKm(lat, lon, catalog.lat[p], catalog.lon[p]);
    else keys[p] = country !== 0 && catalog.country[p] === country ? 0 : continent !== 0 && catalog.continent[p] === continent ? 1 : 2;
  }
  const order = Array.from({ length: count }, (_, p) => p);
  order.sort((a, b) => keys[a] - keys[b] || rank[a] - rank[b]);
  for (let i = 0; i < count; i++) out[i] = order[i];
  return out;
}

const idRanks = new WeakMap<PopCatalog, Int32Array>();

/** Position of each PoP ordinal when PoPs are sorted by id (the tie-breaker). */
function idRank(catalog: PopCatalog): Int32Array {
  let rank = idRanks.get(catalog);
  if (!rank) {
    const byId = catalog.ids.map((id, ordinal) => ({ id, ordinal })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    rank = new Int32Array(catalog.count);
    byId.forEach((entry, position) => { rank![entry.ordinal] = position; });
    idRanks.set(catalog, rank);
  }
  return rank;
}

/**
 * One class per distinct ordered PoP list, and the class of every location.
 * Locations with the same inputs (coordinates, pin, and country/continent
 * when there are no coordinates) share one computation.
 */
export function nearestOrderClasses(index: GeoIndex, catalog: PopCatalog): NearestOrders {
  const popCount = catalog.count;
  const classOfLocation = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, index.locationCount)));
  const classOfInputs = new Map<string, number>();
  const classOfOrder = new Map<string, number>();
  const flat: number[] = [];
  const scratch = new Int16Array(popCount);
  for (let loc = 0; loc < index.locationCount; loc++) {
    const lat = index.lat[loc];
    const lon = index.lon[loc];
    const pinned = index.fixedPop[loc];
    const hasCoordinates = Number.isFinite(lat) && Number.isFinite(lon);
    const inputs = hasCoordinates ? `${lat},${lon},${pinned}` : `-,${index.country[loc]},${index.continent[loc]},${pinned}`;
    let cls = classOfInputs.get(inputs);
    if (cls === undefined) {
      orderPops(catalog, lat, lon, index.country[loc], index.continent[loc], pinned, scratch);
      const orderKey = scratch.join(',');
      cls = classOfOrder.get(orderKey);
      if (cls === undefined) {
        cls = classOfOrder.size;
        classOfOrder.set(orderKey, cls);
        for (let i = 0; i < popCount; i++) flat.push(scratch[i]);
      }
      classOfInputs.set(inputs, cls);
    }
    classOfLocation[loc] = cls;
  }
  const orderCount = classOfOrder.size;
  const table = new Int16Array(new SharedArrayBuffer(2 * Math.max(1, flat.length)));
  table.set(flat);
  const orders: Int16Array[] = [];
  for (let c = 0; c < orderCount; c++) orders.push(table.subarray(c * popCount, (c + 1) * popCount));
  return { classOfLocation: classOfLocation.subarray(0, index.locationCount), orders, table, popCount, classOfUnknown: orderCount };
}
