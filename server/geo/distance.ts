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
 * PoP ordinals nearest first from (lat, lon), ties by PoP id, into `out`. A
 * pinned PoP (custom network) comes first whatever its distance. Without
 * coordinates (Country databases): PoPs in the same country, then the same
 * continent, then the rest, each group by id. `keys` is scratch (popCount).
 */
export function orderPops(catalog: PopCatalog, lat: number, lon: number, country: number, continent: number, pinnedPop: number, out: Int16Array, keys: Float64Array = new Float64Array(catalog.count)): Int16Array {
  const count = catalog.count;
  const rank = idRank(catalog);
  const hasCoordinates = Number.isFinite(lat) && Number.isFinite(lon);
  for (let p = 0; p < count; p++) {
    if (p === pinnedPop) keys[p] = -1;
    else if (hasCoordinates) keys[p] = distanceKm(lat, lon, catalog.lat[p], catalog.lon[p]);
    else keys[p] = country !== 0 && catalog.country[p] === country ? 0 : continent !== 0 && catalog.continent[p] === continent ? 1 : 2;
  }
  if (count <= SMALL_CATALOG) {
    // Insertion sort: for a few dozen PoPs the cheapest.
    for (let i = 0; i < count; i++) {
      let j = i;
      while (j > 0 && (keys[out[j - 1]] > keys[i] || (keys[out[j - 1]] === keys[i] && rank[out[j - 1]] > rank[i]))) {
        out[j] = out[j - 1];
        j--;
      }
      out[j] = i;
    }
    return out;
  }
  // Hundreds of PoPs: the quadratic sort dominated the whole start-up (this
  // runs once per distinct place, 150k on GeoLite2-City). The keys are sorted
  // natively, each carrying its PoP's id rank in its lowest 16 bits (which can
  // reorder only keys closer than 2^-36 of their size), then an insertion pass
  // with the exact comparison repairs any such pair: linear on a sorted list.
  if (packed.length < count) {
    packed = new Float64Array(count);
    packedWords = new Uint32Array(packed.buffer);
  }
  const byRank = popOfRank(catalog);
  for (let p = 0; p < count; p++) {
    packed[p] = keys[p];
    packedWords[2 * p] = ((packedWords[2 * p] & 0xffff0000) | rank[p]) >>> 0;
  }
  let view = packedViews[count];
  if (view === undefined || view.buffer !== packed.buffer) view = packedViews[count] = packed.subarray(0, count);
  view.sort();
  for (let i = 0; i < count; i++) out[i] = byRank[packedWords[2 * i] & 0xffff];
  for (let i = 1; i < count; i++) {
    const pop = out[i];
    let j = i;
    while (j > 0 && (keys[out[j - 1]] > keys[pop] || (keys[out[j - 1]] === keys[pop] && rank[out[j - 1]] > rank[pop]))) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = pop;
  }
  return out;
}

/** Up to this many PoPs an insertion sort orders them fastest. */
const SMALL_CATALOG = 32;
let packed = new Float64Array(0);
let packedWords = new Uint32Array(0);
const packedViews: Float64Array[] = [];

const popsByRank = new WeakMap<PopCatalog, Int16Array>();

/** The PoP ordinal at each id rank (the inverse of idRank). */
function popOfRank(catalog: PopCatalog): Int16Array {
  let byRank = popsByRank.get(catalog);
  if (!byRank) {
    const rank = idRank(catalog);
    byRank = new Int16Array(catalog.count);
    for (let p = 0; p < catalog.count; p++) byRank[rank[p]] = p;
    popsByRank.set(catalog, byRank);
  }
  return byRank;
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
 * Distinct PoP orders, deduplicated by content with open addressing over the
 * flat table (hundreds of thousands of locations share a few thousand orders).
 */
class OrderTable {
  readonly popCount: number;
  table: Int16Array;
  count = 0;
  private slots = new Int32Array(1 << 12).fill(-1);

  constructor(popCount: number) {
    this.popCount = popCount;
    this.table = new Int16Array(popCount * 256);
  }

  classOf(order: Int16Array): number {
    const n = this.popCount;
    let hash = 0x811c9dc5;
    for (let i = 0; i < n; i++) hash = Math.imul(hash ^ order[i], 0x01000193);
    const mask = this.slots.length - 1;
    let slot = (hash >>> 0) & mask;
    for (;;) {
      const cls = this.slots[slot];
      if (cls === -1) break;
      if (this.sameAs(cls, order)) return cls;
      slot = (slot + 1) & mask;
    }
    const cls = this.count++;
    if (cls * n + n > this.table.length) {
      const bigger = new Int16Array(this.table.length * 2);
      bigger.set(this.table);
      this.table = bigger;
    }
    this.table.set(order, cls * n);
    this.slots[slot] = cls;
    if (2 * this.count > this.slots.length) this.rehash();
    return cls;
  }

  private sameAs(cls: number, order: Int16Array): boolean {
    const base = cls * this.popCount;
    for (let i = 0; i < this.popCount; i++) if (this.table[base + i] !== order[i]) return false;
    return true;
  }

  private rehash(): void {
    const old = this.count;
    this.slots = new Int32Array(this.slots.length * 2).fill(-1);
    const order = new Int16Array(this.popCount);
    this.count = 0;
    const table = this.table;
    for (let cls = 0; cls < old; cls++) {
      order.set(table.subarray(cls * this.popCount, (cls + 1) * this.popCount));
      this.classOf(order);
    }
  }
}

/** (lat, lon) → order class, open addressing on the coordinates' bits: 540k GeoLite2 records have only 150k distinct places. */
class PlaceCache {
  private lat = new Float64Array(1 << 18);
  private lon = new Float64Array(1 << 18);
  private cls = new Int32Array(1 << 18).fill(-1);
  private size = 0;
  private readonly bits = new Float64Array(1);
  private readonly words = new Int32Array(this.bits.buffer);

  private slotOf(lat: number, lon: number, mask: number): number {
    this.bits[0] = lat;
    let hash = Math.imul(this.words[0] ^ this.words[1], 0x9e3779b1);
    this.bits[0] = lon;
    hash = Math.imul(hash ^ this.words[0] ^ (this.words[1] << 7), 0x85ebca6b);
    let slot = (hash >>> 7) & mask;
    while (this.cls[slot] !== -1 && !(this.lat[slot] === lat && this.lon[slot] === lon)) slot = (slot + 1) & mask;
    return slot;
  }

  get(lat: number, lon: number): number {
    return this.cls[this.slotOf(lat, lon, this.cls.length - 1)];
  }

  set(lat: number, lon: number, cls: number): void {
    const slot = this.slotOf(lat, lon, this.cls.length - 1);
    if (this.cls[slot] === -1) this.size++;
    this.lat[slot] = lat;
    this.lon[slot] = lon;
    this.cls[slot] = cls;
    if (2 * this.size > this.cls.length) this.grow();
  }

  private grow(): void {
    const { lat, lon, cls } = this;
    this.lat = new Float64Array(lat.length * 2);
    this.lon = new Float64Array(lat.length * 2);
    this.cls = new Int32Array(lat.length * 2).fill(-1);
    const mask = this.cls.length - 1;
    for (let i = 0; i < cls.length; i++) {
      if (cls[i] === -1) continue;
      const slot = this.slotOf(lat[i], lon[i], mask);
      this.lat[slot] = lat[i];
      this.lon[slot] = lon[i];
      this.cls[slot] = cls[i];
    }
  }
}

/**
 * One class per distinct ordered PoP list, and the class of every location;
 * the order is computed once per distinct place.
 */
export function nearestOrderClasses(index: GeoIndex, catalog: PopCatalog): NearestOrders {
  const popCount = catalog.count;
  const classOfLocation = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, index.locationCount)));
  const distinct = new OrderTable(popCount);
  const places = new PlaceCache();
  const scratch = new Int16Array(popCount);
  const keys = new Float64Array(popCount);
  for (let loc = 0; loc < index.locationCount; loc++) {
    const lat = index.lat[loc];
    const lon = index.lon[loc];
    const pinned = index.fixedPop[loc];
    // Pinned and coordinate-less locations are rare: computed each time.
    const cacheable = pinned < 0 && lat === lat && lon === lon;
    let cls = cacheable ? places.get(lat, lon) : -1;
    if (cls < 0) {
      orderPops(catalog, lat, lon, index.country[loc], index.continent[loc], pinned, scratch, keys);
      cls = distinct.classOf(scratch);
      if (cacheable) places.set(lat, lon, cls);
    }
    classOfLocation[loc] = cls;
  }
  const orderCount = distinct.count;
  const table = new Int16Array(new SharedArrayBuffer(2 * Math.max(1, orderCount * popCount)));
  table.set(distinct.table.subarray(0, orderCount * popCount));
  const orders: Int16Array[] = [];
  for (let c = 0; c < orderCount; c++) orders.push(table.subarray(c * popCount, (c + 1) * popCount));
  return { classOfLocation: classOfLocation.subarray(0, index.locationCount), orders, table, popCount, classOfUnknown: orderCount };
}
