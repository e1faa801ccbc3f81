// The nearest-order cache gives back exactly the orders that were computed,
// misses when the catalog changes, and ignores a damaged file.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nearestOrderClasses } from '../../../server/geo/distance.ts';
import { ordersCacheFile, readOrdersCache, writeOrdersCache } from '../../../server/geo/orders-cache.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

test('cached nearest orders read back identical and shared; another catalog or a damaged file misses', () => {
  const world = syntheticWorld();
  const { index, catalog } = world.geo;
  const dir = join(mkdtempSync(join(tmpdir(), 'popsteer-orders-')), 'cache');
  const computed = nearestOrderClasses(index, catalog);
  const file = ordersCacheFile(dir, index, catalog);
  writeOrdersCache(file, computed);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.orders')).length, 1);
  const read = readOrdersCache(file, index.locationCount, catalog.count);
  assert.ok(read, 'a hit');
  assert.deepEqual(Array.from(read.classOfLocation), Array.from(computed.classOfLocation));
  assert.deepEqual(read.orders.map((o) => Array.from(o)), computed.orders.map((o) => Array.from(o)));
  assert.equal(read.classOfUnknown, computed.classOfUnknown);
  assert.ok(read.table.buffer instanceof SharedArrayBuffer);

  const moved = { ...catalog, pops: catalog.pops.map((p, i) => (i === 0 ? { ...p, lat: p.lat + 1 } : p)) };
  assert.notEqual(ordersCacheFile(dir, index, moved), file, 'a moved PoP is another key');
  assert.equal(readOrdersCache(file, index.locationCount, catalog.count + 1), null, 'another PoP count misses');

  const bytes = readFileSync(file);
  bytes[bytes.length - 1] ^= 1;
  writeFileSync(file, bytes);
  assert.equal(readOrdersCache(file, index.locationCount, catalog.count), null, 'a damaged payload misses');
  writeFileSync(file, bytes.subarray(0, 30));
  assert.equal(readOrdersCache(file, index.locationCount, catalog.count), null, 'a truncated file misses');
});

test('a file whose digest matches but holds an ordinal out of range (negative or too large) misses', () => {
  const world = syntheticWorld();
  const { index, catalog } = world.geo;
  const dir = join(mkdtempSync(join(tmpdir(), 'popsteer-orders-')), 'cache');
  const computed = nearestOrderClasses(index, catalog);
  const file = ordersCacheFile(dir, index, catalog);
  const rewritten = (change: (orders: typeof computed) => void): ReturnType<typeof readOrdersCache> => {
    const copy = { ...computed, classOfLocation: computed.classOfLocation.slice(), table: computed.table.slice() };
    copy.orders = computed.orders.map((_, c) => copy.table.subarray(c * copy.popCount, (c + 1) * copy.popCount));
    change(copy);
    writeOrdersCache(file, copy);
    return readOrdersCache(file, index.locationCount, catalog.count);
  };
  assert.ok(rewritten(() => {}), 'unchanged, a hit');
  assert.equal(rewritten((o) => { o.table[o.popCount + 1] = o.popCount; }), null, 'a PoP ordinal equal to the count');
  assert.equal(rewritten((o) => { o.table[o.table.length - 1] = -1; }), null, 'a negative PoP ordinal');
  assert.equal(rewritten((o) => { o.classOfLocation[0] = o.orders.length; }), null, 'a class past the last order');
  assert.equal(rewritten((o) => { o.classOfLocation[o.classOfLocation.length - 1] = -1; }), null, 'a negative class');
});
