// A disk cache of nearest-PoP orders, beside the GeoIP index cache. At 300
// PoPs the orders of GeoLite2-City's 144,000 distinct places cost about 8 s of
// CPU at each start (a haversine and a sort per place); read back, a few
// tens of milliseconds. The key is a digest of exactly what the orders are
// computed from: every PoP's id, coordinates, country and continent, and
// every location's coordinates, country, continent and pinned PoP.
//
// As with the index cache, a file is input: read and written through
// fsutil/safe-files.ts and checked before use (lengths, payload digest, every
// class and PoP ordinal in range), so a damaged file is a miss, never a
// wrong order.

import { createHash } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readFileSafely, writeFileSafely } from '../fsutil/safe-files.ts';
import type { GeoIndex, NearestOrders, PopCatalog } from './types.ts';

/** Bump when the order computation changes meaning. */
const FORMAT = 'popsteer-nearest-orders-1';
const MAGIC = Buffer.from('PSORDER1');
/** Magic, then locationCount, orderCount, popCount (u32 each), then the 32-octet payload digest. */
const HEADER = 8 + 12 + 32;
const MAX_ENTRIES = 4;

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The cache file for the orders of `catalog` over `index`. */
export function ordersCacheFile(cacheDir: string, index: GeoIndex, catalog: PopCatalog): string {
  const hash = createHash('sha256').update(FORMAT);
  hash.update(JSON.stringify(catalog.pops.map((p) => [p.id, p.lat, p.lon, p.country, p.continent])));
  for (const column of [index.lat, index.lon, index.country, index.continent, index.fixedPop]) hash.update(bytesOf(column.subarray(0, index.locationCount)));
  return join(cacheDir, `${hash.digest('hex').slice(0, 32)}.orders`);
}

export function writeOrdersCache(file: string, orders: NearestOrders): void {
  const classes = bytesOf(orders.classOfLocation);
  const table = bytesOf(orders.table.subarray(0, orders.orders.length * orders.popCount));
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32BE(orders.classOfLocation.length, 8);
  head.writeUInt32BE(orders.orders.length, 12);
  head.writeUInt32BE(orders.popCount, 16);
  createHash('sha256').update(classes).update(table).digest().copy(head, 20);
  writeFileSafely(file, [head, classes, table], 0o600);
  evictOldEntries(join(file, '..'));
}

/** The cached orders for `locationCount` locations and `popCount` PoPs, or null when absent or not exactly right. */
export function readOrdersCache(file: string, locationCount: number, popCount: number): NearestOrders | null {
  let bytes: Buffer | null;
  try {
    bytes = readFileSafely(file);
  } catch {
    return null;
  }
  if (bytes === null || bytes.length < HEADER || !bytes.subarray(0, 8).equals(MAGIC)) return null;
  const orderCount = bytes.readUInt32BE(12);
  if (bytes.readUInt32BE(8) !== locationCount || bytes.readUInt32BE(16) !== popCount) return null;
  if (bytes.length !== HEADER + 4 * locationCount + 2 * orderCount * popCount) return null;
  const payload = bytes.subarray(HEADER);
  if (!createHash('sha256').update(payload).digest().equals(bytes.subarray(20, HEADER))) return null;
  const classOfLocation = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, locationCount))).subarray(0, locationCount);
  bytesOf(classOfLocation).set(payload.subarray(0, 4 * locationCount));
  const table = new Int16Array(new SharedArrayBuffer(2 * Math.max(1, orderCount * popCount)));
  new Uint8Array(table.buffer).set(payload.subarray(4 * locationCount));
  if (!allBelow(new Uint32Array(classOfLocation.buffer, 0, locationCount), orderCount) || !allBelow(new Uint16Array(table.buffer, 0, orderCount * popCount), popCount)) return null;
  const orders: Int16Array[] = [];
  for (let c = 0; c < orderCount; c++) orders.push(table.subarray(c * popCount, (c + 1) * popCount));
  return { classOfLocation, orders, table, popCount, classOfUnknown: orderCount };
}

/**
 * Whether every entry is below `limit`, read unsigned so that a negative one
 * is too large: one comparison per entry. At 300 PoPs the table has 43 M
 * entries; two signed comparisons each were about 0.15 s of every start.
 */
function allBelow(values: Uint32Array | Uint16Array, limit: number): boolean {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  return values.length === 0 || max < limit;
}

/** Keeps the most recent few, so replaced catalogs and databases do not pile up. */
function evictOldEntries(dir: string): void {
  const entries = readdirSync(dir).filter((name) => name.endsWith('.orders'))
    .map((name) => ({ path: join(dir, name), mtime: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of entries.slice(MAX_ENTRIES)) rmSync(old.path, { force: true });
}
