// Load-time compilation of a MaxMind database into a GeoIndex (gdnsd-style):
// every search-tree node is read once, every distinct data record becomes a
// location id, and custom networks are spliced into the same trie so that
// they win over GeoIP, longest prefix first. Slow path only.

import type { Reader } from 'maxmind';
import { continentNumber, countryNumber, PackedStringsBuilder } from './codes.ts';
import { FlatLocationDecoder, isFlatCityLayout } from './dbip-layout.ts';
import { MmdbDataReader, MmdbFormatError, treeRecordReader } from './mmdb-format.ts';
import type { CustomNetwork, CustomNetworkSet, GeoIndex } from './types.ts';

type Metadata = Reader<never>['metadata'];

const METADATA_MARKER = Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1');
const DATA_SECTION_SEPARATOR = 16;
const IPV4_DEPTH = 96;
const UNKNOWN = -1;

/** Leaf edge value of a location id (see GeoIndex). */
export function leafOf(location: number): number {
  return -location - 2;
}

export function addressBit(address: Uint8Array, bit: number): number {
  return (address[bit >> 3] >> (7 - (bit & 7))) & 1;
}

/** The per-location columns of a GeoIndex, filled while the tree is read. */
type LocationColumns = Pick<GeoIndex, 'lat' | 'lon' | 'accuracyKm' | 'country' | 'continent' | 'subdivision' | 'label' | 'fixedPop' | 'customNetwork'>;

function sharedColumns(count: number): LocationColumns {
  const n = Math.max(1, count);
  const columns: LocationColumns = {
    lat: new Float64Array(new SharedArrayBuffer(8 * n)),
    lon: new Float64Array(new SharedArrayBuffer(8 * n)),
    accuracyKm: new Uint16Array(new SharedArrayBuffer(2 * n)),
    country: new Uint16Array(new SharedArrayBuffer(2 * n)),
    continent: new Uint8Array(new SharedArrayBuffer(n)),
    subdivision: new Int32Array(new SharedArrayBuffer(4 * n)),
    label: new Int32Array(new SharedArrayBuffer(4 * n)),
    fixedPop: new Int16Array(new SharedArrayBuffer(2 * n)),
    customNetwork: new Int32Array(new SharedArrayBuffer(4 * n)),
  };
  columns.fixedPop.fill(-1);
  columns.customNetwork.fill(-1);
  return columns;
}

/**
 * Copies the search tree into `children` and numbers the distinct data
 * records in file order. A bitmap over the data section marks every record a
 * leaf points to; a record's location id is its rank in that bitmap. (Two
 * sequential passes; a hash table of millions of lookups is several times
 * slower.) Returns the data offset of each location id.
 */
function readTree(readRecord: (node: number, bit: number) => number, nodeCount: number, dataSize: number, children: Int32Array): Int32Array {
  const marks = new Int32Array((dataSize >> 5) + 1);
  for (let node = 0; node < nodeCount; node++) {
    for (let bit = 0; bit < 2; bit++) {
      const record = readRecord(node, bit);
      let edge: number;
      if (record < nodeCount) edge = record;
      else if (record === nodeCount) edge = UNKNOWN;
      else {
        const offset = record - nodeCount - DATA_SECTION_SEPARATOR;
        if (offset < 0 || offset >= dataSize) throw new MmdbFormatError(`node ${node} points outside the data section: corrupt or truncated file`);
        marks[offset >> 5] |= 1 << (offset & 31);
        edge = leafOf(offset); // renumbered below
      }
      children[2 * node + bit] = edge;
    }
  }
  const rankBefore = new Int32Array(marks.length + 1);
  for (let w = 0; w < marks.length; w++) rankBefore[w + 1] = rankBefore[w] + bitCount(marks[w]);
  for (let i = 0; i < 2 * nodeCount; i++) {
    const edge = children[i];
    if (edge > -2) continue;
    const offset = -edge - 2;
    const word = offset >> 5;
    children[i] = leafOf(rankBefore[word] + bitCount(marks[word] & ((1 << (offset & 31)) - 1)));
  }
  const recordOffsets = new Int32Array(rankBefore[marks.length]);
  let id = 0;
  for (let w = 0; w < marks.length; w++) {
    for (let bits = marks[w]; bits !== 0; bits &= bits - 1) recordOffsets[id++] = (w << 5) + (31 - Math.clz32(bits & -bits));
  }
  return recordOffsets;
}

function bitCount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

export function buildGeoIndex(db: Buffer, metadata: Metadata, networks: CustomNetworkSet | null): GeoIndex {
  const { nodeCount, recordSize } = metadata;
  const readRecord = treeRecordReader(db, recordSize, nodeCount);
  const dataStart = metadata.searchTreeSize + DATA_SECTION_SEPARATOR;
  const dataEnd = db.lastIndexOf(METADATA_MARKER);
  if (dataEnd < dataStart) throw new MmdbFormatError('the data section is missing: truncated file');

  const customs = networks?.networks ?? [];
  // Room for the ::/96 path of an IPv4-only tree and one new node per bit of every custom network.
  let capacity = nodeCount + IPV4_DEPTH + 1;
  for (const n of customs) capacity += n.prefixLength + (n.family === 4 ? IPV4_DEPTH : 0) + 1;
  const children = new Int32Array(new SharedArrayBuffer(8 * capacity));

  const recordOffsets = readTree(readRecord, nodeCount, dataEnd - dataStart, children);
  const recordCount = recordOffsets.length;
  const columns = sharedColumns(recordCount + customs.length);
  const strings = new PackedStringsBuilder();
  const data = new MmdbDataReader(db, dataStart, dataEnd);
  const decoder = isFlatCityLayout(metadata) ? new FlatLocationDecoder(data, strings) : new LocationDecoder(data, strings);
  for (let location = 0; location < recordCount; location++) decoder.decode(recordOffsets[location], location, columns);

  const trie = { children, used: nodeCount, root: 0, ipv4Root: 0, inDegree: null as Int32Array | null };
  if (metadata.ipVersion === 4) {
    // Put an IPv4-only tree under ::/96 so every index has the same shape.
    trie.root = newNode(trie, UNKNOWN, UNKNOWN);
    let parent = trie.root;
    for (let depth = 1; depth < IPV4_DEPTH; depth++) {
      const next = newNode(trie, UNKNOWN, UNKNOWN);
      children[2 * parent] = next;
      parent = next;
    }
    children[2 * parent] = 0;
    trie.ipv4Root = 0;
  } else {
    trie.ipv4Root = materializeZeroPath(trie, IPV4_DEPTH);
  }

  insertCustomNetworks(trie, customs, recordCount, columns, strings);

  return {
    nodeCount: trie.used,
    children,
    root: trie.root,
    ipv4Root: trie.ipv4Root,
    locationCount: recordCount + customs.length,
    ...columns,
    strings: strings.finish(),
    databaseType: metadata.databaseType,
    buildEpochMs: metadata.buildEpoch.getTime(),
  };
}

const RECORD_KEYS = ['location', 'country', 'registered_country', 'continent', 'subdivisions', 'city'];
const [LOCATION, COUNTRY, REGISTERED_COUNTRY, CONTINENT, SUBDIVISIONS, CITY] = [0, 1, 2, 3, 4, 5];
const LOCATION_KEYS = ['latitude', 'longitude', 'accuracy_radius'];

/**
 * Reads the fields popsteer keeps from one data record, with one pass over
 * the record's map. Records share strings and maps through pointers, so each
 * shared value is decoded once and remembered by its position.
 */
class LocationDecoder {
  private readonly data: MmdbDataReader;
  private readonly strings: PackedStringsBuilder;
  /** String index by the string's position (records share strings through pointers). */
  private readonly stringAt = new Map<number, number>();
  private readonly field = new Int32Array(RECORD_KEYS.length);
  private readonly location = new Int32Array(LOCATION_KEYS.length);
  private readonly countryAt = new Map<number, number>();
  private readonly continentAt = new Map<number, number>();

  constructor(data: MmdbDataReader, strings: PackedStringsBuilder) {
    this.data = data;
    this.strings = strings;
  }

  decode(dataOffset: number, id: number, out: LocationColumns): void {
    const data = this.data;
    const field = this.field;
    data.mapFields(data.recordPosition(dataOffset), RECORD_KEYS, field);
    const location = this.location;
    data.mapFields(field[LOCATION], LOCATION_KEYS, location);
    out.lat[id] = data.number(location[0]);
    out.lon[id] = data.number(location[1]);
    out.accuracyKm[id] = Math.min(65535, data.number(location[2]) || 0);
    // Anonymous and satellite ranges have no "country", only where they are registered.
    let country = this.country(field[COUNTRY]);
    if (country === 0) country = this.country(field[REGISTERED_COUNTRY]);
    out.country[id] = country;
    out.continent[id] = this.remember(this.continentAt, data.mapField(field[CONTINENT], 'code'), (at) => continentNumber(data.string(at)));
    out.subdivision[id] = this.remember(this.stringAt, data.mapField(data.arrayItem(field[SUBDIVISIONS], 0), 'iso_code'), (at) => this.strings.add(data.string(at)));
    out.label[id] = this.remember(this.stringAt, data.mapField(data.mapField(field[CITY], 'names'), 'en'), (at) => this.strings.add(data.string(at)));
  }

  private country(at: number): number {
    return this.remember(this.countryAt, this.data.mapField(at, 'iso_code'), (p) => countryNumber(this.data.string(p)));
  }

  private remember(cache: Map<number, number>, at: number, read: (at: number) => number): number {
    if (at < 0) return 0;
    let value = cache.get(at);
    if (value === undefined) {
      value = read(at);
      cache.set(at, value);
    }
    return value;
  }
}

interface TrieUnderConstruction {
  children: Int32Array;
  used: number;
  root: number;
  ipv4Root: number;
  /** Parents per node, kept only while IPv6 custom networks are spliced in (copy-on-write of shared nodes). */
  inDegree: Int32Array | null;
}

function newNode(trie: TrieUnderConstruction, left: number, right: number): number {
  const node = trie.used++;
  if (2 * node + 1 >= trie.children.length) throw new Error('geo index node capacity exceeded');
  trie.children[2 * node] = left;
  trie.children[2 * node + 1] = right;
  if (trie.inDegree) {
    trie.inDegree[node] = 1; // the caller links it from exactly one parent
    if (left >= 0) trie.inDegree[left]++;
    if (right >= 0) trie.inDegree[right]++;
  }
  return node;
}

/** Follows the all-zero path from the root for `depth` bits, splitting leaves into nodes on the way. */
function materializeZeroPath(trie: TrieUnderConstruction, depth: number): number {
  let node = trie.root;
  for (let d = 0; d < depth; d++) {
    let next = trie.children[2 * node];
    if (next < 0) {
      next = newNode(trie, next, next);
      trie.children[2 * node] = next;
    }
    node = next;
  }
  return node;
}

/**
 * Splices custom networks in, shortest prefix first so that a longer one
 * inserted later splits the shorter one's leaf: longest prefix wins. IPv6
 * networks go in first with copy-on-write (a node shared with the IPv4
 * aliases must not change for them); IPv4 networks are written in place
 * under ::/96, so the IPv4-mapped and 6to4 aliases see them too.
 */
function insertCustomNetworks(trie: TrieUnderConstruction, customs: readonly CustomNetwork[], firstLocation: number, columns: LocationColumns, strings: PackedStringsBuilder): void {
  if (customs.length === 0) return;
  const order = customs.map((n, i) => i);
  order.sort((a, b) => (customs[b].family - customs[a].family) || (customs[a].prefixLength - customs[b].prefixLength));
  if (customs.some((n) => n.family === 6)) trie.inDegree = countParents(trie);
  for (const i of order) {
    const network = customs[i];
    const location = firstLocation + i;
    columns.lat[location] = network.lat;
    columns.lon[location] = network.lon;
    columns.country[location] = countryNumber(network.country);
    columns.continent[location] = continentNumber(network.continent);
    columns.label[location] = strings.add(network.label || network.cidr);
    columns.fixedPop[location] = network.pop;
    columns.customNetwork[location] = i;
    const start = network.family === 4 ? trie.ipv4Root : trie.root;
    insertNetwork(trie, start, network.address, network.prefixLength, leafOf(location), network.family === 6);
  }
  trie.inDegree = null;
}

function countParents(trie: TrieUnderConstruction): Int32Array {
  const inDegree = new Int32Array(trie.children.length >> 1);
  for (let i = 0; i < 2 * trie.used; i++) {
    const child = trie.children[i];
    if (child >= 0) inDegree[child]++;
  }
  return inDegree;
}

function insertNetwork(trie: TrieUnderConstruction, start: number, address: Uint8Array, prefixLength: number, leaf: number, copyOnWrite: boolean): void {
  const { children } = trie;
  if (prefixLength === 0) {
    children[2 * start] = leaf;
    children[2 * start + 1] = leaf;
    return;
  }
  let node = start;
  for (let depth = 0; depth < prefixLength - 1; depth++) {
    const slot = 2 * node + addressBit(address, depth);
    let next = children[slot];
    if (next < 0) {
      next = newNode(trie, next, next);
      children[slot] = next;
    } else if (copyOnWrite && trie.inDegree![next] > 1) {
      trie.inDegree![next]--;
      next = newNode(trie, children[2 * next], children[2 * next + 1]);
      children[slot] = next;
    }
    node = next;
  }
  const slot = 2 * node + addressBit(address, prefixLength - 1);
  if (trie.inDegree && children[slot] >= 0) trie.inDegree[children[slot]]--;
  children[slot] = leaf;
}
