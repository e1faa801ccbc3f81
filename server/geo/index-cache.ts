// A disk cache of built GeoIndexes. Building the index from the City database
// takes about a second of CPU (every record is decoded); reading a cached one
// back is a few file reads into shared memory. The key is the database file's
// identity (path, size, mtime, inode), the custom networks and the cache
// format, so a replaced database or an edited networks.yaml misses the cache.
// A cache file that cannot be read back exactly is ignored and rebuilt.

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CustomNetworkSet, GeoIndex } from './types.ts';

/** Bump when GeoIndex's layout or the build changes meaning. */
const FORMAT = 'popsteer-geo-index-1';
const MAGIC = Buffer.from('PSGEOIX1');

type TypedArray = Int32Array | Float64Array | Uint16Array | Uint8Array | Int16Array | Uint32Array;
const KINDS: Record<string, new (buffer: SharedArrayBuffer) => TypedArray> = {
  Int32Array, Float64Array, Uint16Array, Uint8Array, Int16Array, Uint32Array,
};

export interface CachedIndex {
  index: GeoIndex;
  databaseType: string;
  buildEpochMs: number;
}

export function indexCacheFile(cacheDir: string, path: string, stat: Stats, networks: CustomNetworkSet | null): string {
  const hash = createHash('sha256')
    .update(`${FORMAT}|${resolve(path)}|${stat.size}|${stat.mtimeMs}|${stat.ino}|`)
    .update(JSON.stringify(networks?.networks.map((n) => [n.cidr, n.lat, n.lon, n.country, n.continent, n.pop, n.label]) ?? null))
    .digest('hex').slice(0, 32);
  return join(cacheDir, `${hash}.geoindex`);
}

/** Flattens the index: a JSON header naming every typed array, then their bytes. */
export function writeIndexCache(file: string, cached: CachedIndex): void {
  const arrays: Array<{ path: string; kind: string; length: number }> = [];
  const chunks: Buffer[] = [];
  const scalars: Record<string, unknown> = {};
  const visit = (value: unknown, path: string): void => {
    if (ArrayBuffer.isView(value)) {
      const array = value as TypedArray;
      arrays.push({ path, kind: array.constructor.name, length: array.length });
      chunks.push(Buffer.from(array.buffer, array.byteOffset, array.byteLength));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) visit(inner, path ? `${path}.${key}` : key);
    } else {
      scalars[path] = value;
    }
  };
  visit(cached.index, '');
  const header = Buffer.from(JSON.stringify({ format: FORMAT, arrays, scalars, databaseType: cached.databaseType, buildEpochMs: cached.buildEpochMs }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  mkdirSync(join(file, '..'), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', 0o644);
  try {
    for (const part of [MAGIC, length, header, ...chunks]) writeSync(fd, part);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temporary, file);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
  evictOldEntries(join(file, '..'));
}

/** Entries kept: the databases in use plus a few recent replacements. */
const MAX_ENTRIES = 4;

/** Removes all but the most recently written cache entries, so replaced databases do not pile up. */
function evictOldEntries(dir: string): void {
  const entries = readdirSync(dir).filter((name) => name.endsWith('.geoindex'))
    .map((name) => ({ path: join(dir, name), mtime: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of entries.slice(MAX_ENTRIES)) rmSync(old.path, { force: true });
}

/** Reads a cached index into shared memory, or null when absent or not exactly right. */
export function readIndexCache(file: string): CachedIndex | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return null;
  }
  try {
    if (bytes.length < 12 || !bytes.subarray(0, 8).equals(MAGIC)) return null;
    const headerLength = bytes.readUInt32BE(8);
    const header = JSON.parse(bytes.subarray(12, 12 + headerLength).toString('utf8')) as {
      format: string; arrays: Array<{ path: string; kind: string; length: number }>; scalars: Record<string, unknown>;
      databaseType: string; buildEpochMs: number;
    };
    if (header.format !== FORMAT) return null;
    const root: Record<string, unknown> = {};
    const put = (path: string, value: unknown): void => {
      const keys = path.split('.');
      let node = root;
      for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
      node[keys[keys.length - 1]] = value;
    };
    let offset = 12 + headerLength;
    for (const { path, kind, length } of header.arrays) {
      const Kind = KINDS[kind];
      if (!Kind) return null;
      const byteLength = length * (Kind as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      if (offset + byteLength > bytes.length) return null;
      const shared = new SharedArrayBuffer(byteLength);
      new Uint8Array(shared).set(bytes.subarray(offset, offset + byteLength));
      put(path, new Kind(shared));
      offset += byteLength;
    }
    if (offset !== bytes.length) return null;
    for (const [path, value] of Object.entries(header.scalars)) put(path, value);
    return { index: root as unknown as GeoIndex, databaseType: header.databaseType, buildEpochMs: header.buildEpochMs };
  } catch {
    return null;
  }
}
