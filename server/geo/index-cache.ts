// A disk cache of built GeoIndexes. Building the index from the City database
// takes about a second of CPU (every record is decoded); reading a cached one
// back is a few file reads into shared memory. The key is the database file's
// identity (path, size, mtime, inode), the custom networks and the cache
// format, so a replaced database or an edited networks.yaml misses the cache.
//
// A cache file is input like any other: it is read and written through
// fsutil/safe-files.ts (a private directory, no symbolic links, exclusive
// temporary files), and checked before use against the one layout GeoIndex
// has — every field named exactly once with its kind, lengths that agree,
// a payload digest, and every trie edge and string offset in range — so a
// damaged or crafted file is a cache miss, never a wrong or unsafe index.

import { createHash } from 'node:crypto';
import { readdirSync, rmSync, statSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { readFileSafely, writeFileSafely } from '../fsutil/safe-files.ts';
import type { CustomNetworkSet, GeoIndex } from './types.ts';

/** Bump when GeoIndex's layout or the build changes meaning. */
const FORMAT = 'popsteer-geo-index-2';
const MAGIC = Buffer.from('PSGEOIX2');

type TypedArray = Int32Array | Float64Array | Uint16Array | Uint8Array | Int16Array | Uint32Array;
type ArrayKind = 'Int32Array' | 'Float64Array' | 'Uint16Array' | 'Uint8Array' | 'Int16Array' | 'Uint32Array';
const ARRAY_TYPES: Record<ArrayKind, { new (buffer: SharedArrayBuffer): TypedArray; BYTES_PER_ELEMENT: number }> = {
  Int32Array, Float64Array, Uint16Array, Uint8Array, Int16Array, Uint32Array,
};

/** Every field of GeoIndex, by dotted path, with its kind: the only shape a cache file may have. */
const LAYOUT: Readonly<Record<string, ArrayKind | 'number' | 'string'>> = {
  nodeCount: 'number', root: 'number', ipv4Root: 'number', locationCount: 'number',
  databaseType: 'string', buildEpochMs: 'number',
  children: 'Int32Array', lat: 'Float64Array', lon: 'Float64Array', accuracyKm: 'Uint16Array', country: 'Uint16Array',
  continent: 'Uint8Array', subdivision: 'Int32Array', label: 'Int32Array', fixedPop: 'Int16Array', customNetwork: 'Int32Array',
  'strings.bytes': 'Uint8Array', 'strings.offsets': 'Uint32Array',
};
const PER_LOCATION = ['lat', 'lon', 'accuracyKm', 'country', 'continent', 'subdivision', 'label', 'fixedPop', 'customNetwork'] as const;

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

/** Flattens the index: a JSON header naming every typed array (and the payload digest), then their bytes. */
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
  const digest = createHash('sha256');
  for (const chunk of chunks) digest.update(chunk);
  const header = Buffer.from(JSON.stringify({
    format: FORMAT, arrays, scalars, databaseType: cached.databaseType, buildEpochMs: cached.buildEpochMs, sha256: digest.digest('hex'),
  }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length);
  writeFileSafely(file, [MAGIC, length, header, ...chunks], 0o600);
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

interface CacheHeader {
  format: string;
  arrays: Array<{ path: string; kind: string; length: number }>;
  scalars: Record<string, unknown>;
  databaseType: string;
  buildEpochMs: number;
  sha256: string;
}

/** Reads a cached index into shared memory, or null when absent, unsafe or not exactly right. */
export function readIndexCache(file: string): CachedIndex | null {
  let bytes: Buffer | null;
  try {
    bytes = readFileSafely(file);
  } catch {
    return null;
  }
  if (bytes === null) return null;
  try {
    return decodeIndexCache(bytes);
  } catch {
    return null;
  }
}

function decodeIndexCache(bytes: Buffer): CachedIndex | null {
  if (bytes.length < 12 || !bytes.subarray(0, 8).equals(MAGIC)) return null;
  const headerLength = bytes.readUInt32BE(8);
  const header = JSON.parse(bytes.subarray(12, 12 + headerLength).toString('utf8')) as CacheHeader;
  if (header?.format !== FORMAT || !Array.isArray(header.arrays) || typeof header.scalars !== 'object' || header.scalars === null) return null;
  if (typeof header.databaseType !== 'string' || typeof header.buildEpochMs !== 'number' || typeof header.sha256 !== 'string') return null;
  // Fields by path, each exactly once and of the kind GeoIndex has; nothing else.
  const values = new Map<string, unknown>();
  let offset = 12 + headerLength;
  const digest = createHash('sha256');
  for (const entry of header.arrays) {
    const kind = Object.hasOwn(LAYOUT, entry?.path) ? LAYOUT[entry.path] : undefined;
    if (kind === undefined || kind !== entry.kind || kind === 'number' || kind === 'string' || values.has(entry.path)) return null;
    if (!Number.isSafeInteger(entry.length) || entry.length < 0) return null;
    const Type = ARRAY_TYPES[kind];
    const byteLength = entry.length * Type.BYTES_PER_ELEMENT;
    if (offset + byteLength > bytes.length) return null;
    const payload = bytes.subarray(offset, offset + byteLength);
    digest.update(payload);
    const shared = new SharedArrayBuffer(byteLength);
    new Uint8Array(shared).set(payload);
    values.set(entry.path, new Type(shared));
    offset += byteLength;
  }
  if (offset !== bytes.length || digest.digest('hex') !== header.sha256) return null;
  for (const [path, value] of Object.entries(header.scalars)) {
    const kind = Object.hasOwn(LAYOUT, path) ? LAYOUT[path] : undefined;
    if (kind !== typeof value || values.has(path)) return null;
    values.set(path, value);
  }
  if (values.size !== Object.keys(LAYOUT).length) return null;
  const field = <T>(path: string): T => values.get(path) as T;
  const index: GeoIndex = {
    nodeCount: field('nodeCount'), children: field('children'), root: field('root'), ipv4Root: field('ipv4Root'),
    locationCount: field('locationCount'), lat: field('lat'), lon: field('lon'), accuracyKm: field('accuracyKm'),
    country: field('country'), continent: field('continent'), subdivision: field('subdivision'), label: field('label'),
    fixedPop: field('fixedPop'), customNetwork: field('customNetwork'),
    strings: { bytes: field('strings.bytes'), offsets: field('strings.offsets') },
    databaseType: field('databaseType'), buildEpochMs: field('buildEpochMs'),
  };
  if (!consistent(index)) return null;
  return { index, databaseType: header.databaseType, buildEpochMs: header.buildEpochMs };
}

/** Lengths agree, and every trie edge and string reference stays inside its table, so a lookup can never leave them. */
function consistent(index: GeoIndex): boolean {
  const { nodeCount, locationCount, children } = index;
  if (!Number.isSafeInteger(nodeCount) || !Number.isSafeInteger(locationCount) || nodeCount < 1 || locationCount < 0) return false;
  // The child table may hold spare room past nodeCount (custom networks splice nodes in).
  const nodeSlots = children.length >> 1;
  if (children.length % 2 !== 0 || nodeSlots < nodeCount) return false;
  for (const root of [index.root, index.ipv4Root]) if (!Number.isInteger(root) || root < 0 || root >= nodeSlots) return false;
  for (const name of PER_LOCATION) if (index[name].length !== locationCount) return false;
  // Children: a node (>= 0), no data (-1), or location -edge-2.
  const lowest = -locationCount - 1;
  for (let i = 0; i < children.length; i++) {
    const edge = children[i];
    if (edge >= nodeSlots || edge < lowest) return false;
  }
  const { bytes, offsets } = index.strings;
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i] > bytes.length || (i > 0 && offsets[i] < offsets[i - 1])) return false;
  }
  // A string reference is 0 (none) or an entry with an end offset after it.
  for (const column of [index.subdivision, index.label]) {
    for (let i = 0; i < column.length; i++) if (column[i] < 0 || (column[i] !== 0 && column[i] + 1 >= offsets.length)) return false;
  }
  for (const column of [index.fixedPop, index.customNetwork]) {
    for (let i = 0; i < column.length; i++) if (column[i] < -1) return false;
  }
  return true;
}
