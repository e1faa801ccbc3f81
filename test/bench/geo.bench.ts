// Geo micro-benchmark: build cost of the full GeoLite2-City index, per-query
// cost of lookup + nearest-PoP order with the cache warm (addresses drawn from
// the real database), memory, and the ECS scope distribution that scope
// merging gives with the example PoP catalog under the nearest policy.
//
//   node test/bench/geo.bench.ts            (GEO_BENCH_QUERIES=2000000 to change the loop)

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadPopCatalog } from '../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../server/geo/database.ts';
import { nearestOrderClasses } from '../../server/geo/distance.ts';
import { lookupLocation, newLocationResult } from '../../server/geo/lookup.ts';
import { parseAddressInto } from '../../server/lib/address.ts';
import { buildClassTrie, lookupClass, newClassResult, type ClassTrie } from '../../server/geo/scope.ts';
import type { GeoIndex } from '../../server/geo/types.ts';
import { REPO_ROOT } from '../helpers/server.ts';
import { sampleByDescent, sampleMixed, seededRandom } from '../unit/geo/helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MB = 1024 * 1024;
const QUERIES = Number(process.env.GEO_BENCH_QUERIES ?? 2_000_000);

function rssMb(): number {
  gc();
  return process.memoryUsage().rss / MB;
}

function timed<T>(run: () => T): { value: T; wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const value = run();
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { value, wallMs, cpuMs: (used.user + used.system) / 1000 };
}

function line(label: string, value: string): void {
  process.stdout.write(`${label.padEnd(52)} ${value}\n`);
}

const rssBefore = rssMb();
const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
const load = timed(() => loadGeoDatabase());
const db = load.value;
const { index } = db;
const rssAfterLoad = rssMb();
const orders = timed(() => nearestOrderClasses(index, catalog));
const nearest = orders.value;
const classes = timed(() => buildClassTrie(index, nearest.classOfLocation, nearest.classOfUnknown));
const classTrie = classes.value;
const rssAfterAll = rssMb();

const indexBytes = index.children.byteLength + index.lat.byteLength + index.lon.byteLength + index.accuracyKm.byteLength + index.country.byteLength
  + index.continent.byteLength + index.subdivision.byteLength + index.label.byteLength + index.fixedPop.byteLength + index.customNetwork.byteLength
  + index.strings.bytes.byteLength + index.strings.offsets.byteLength;
const orderBytes = nearest.classOfLocation.byteLength + nearest.table.byteLength;

process.stdout.write(`geo bench: ${db.databaseType} built ${db.buildEpoch.toISOString().slice(0, 10)}, ${catalog.count} PoPs, node ${process.version}\n`);
line('index build (read + walk + decode records)', `${load.wallMs.toFixed(0)} ms wall, ${load.cpuMs.toFixed(0)} ms cpu`);
line('nearest orders (once per distinct place)', `${orders.wallMs.toFixed(0)} ms wall, ${orders.cpuMs.toFixed(0)} ms cpu`);
line('class trie (scope merging)', `${classes.wallMs.toFixed(0)} ms wall, ${classes.cpuMs.toFixed(0)} ms cpu`);
line('trie nodes / locations / distinct orders', `${index.nodeCount} / ${index.locationCount} / ${nearest.orders.length}`);
line('memory: index (shared typed arrays)', `${(indexBytes / MB).toFixed(1)} MB`);
line('memory: nearest-order cache (per location + table)', `${(orderBytes / MB).toFixed(2)} MB`);
line('memory: class trie', `${(classTrie.byteLength / MB).toFixed(1)} MB`);
line('memory: mmdb file bytes (kept for explain)', `${(db.fileSize / MB).toFixed(1)} MB`);
line('RSS: before / after load / after orders+classes', `${rssBefore.toFixed(0)} / ${rssAfterLoad.toFixed(0)} / ${rssAfterAll.toFixed(0)} MB`);

// --- per-query cost -------------------------------------------------------
const SAMPLE = 65_536;
const samples = sampleMixed(index, SAMPLE, 0xbe7c4);
const families = new Uint8Array(SAMPLE);
const addresses = new Uint8Array(16 * SAMPLE);
samples.forEach((s, i) => { families[i] = s.family; addresses.set(s.bytes, 16 * i); });
const views = Array.from({ length: SAMPLE }, (_, i) => addresses.subarray(16 * i, 16 * i + 16));

function perQuery(label: string, body: (i: number) => number): void {
  let checksum = 0;
  for (let i = 0; i < SAMPLE; i++) checksum += body(i); // warm-up
  const started = process.hrtime.bigint();
  for (let q = 0; q < QUERIES; q++) checksum += body(q & (SAMPLE - 1));
  const ns = Number(process.hrtime.bigint() - started) / QUERIES;
  line(label, `${ns.toFixed(0)} ns/query (checksum ${checksum})`);
}

const location = newLocationResult();
const scoped = newClassResult();
perQuery('lookupLocation + nearest order (first PoP)', (i) => {
  lookupLocation(index, families[i] as 4 | 6, views[i], families[i] === 4 ? 24 : 56, location);
  const cls = location.location < 0 ? -1 : nearest.classOfLocation[location.location];
  return cls < 0 ? 0 : nearest.orders[cls][0];
});
perQuery('lookupClass (merged scope) + nearest order', (i) => {
  lookupClass(index, classTrie, families[i] as 4 | 6, views[i], families[i] === 4 ? 24 : 56, scoped);
  return scoped.class === nearest.classOfUnknown ? scoped.scopeLength : nearest.orders[scoped.class][0] + scoped.scopeLength;
});
const texts = samples.map((s) => s.text);
const parsed = new Uint8Array(16);
perQuery('parseAddressInto(text) + lookupClass + order', (i) => {
  const family = parseAddressInto(texts[i], parsed) as 4 | 6;
  lookupClass(index, classTrie, family, parsed, family === 4 ? 32 : 128, scoped);
  return scoped.class === nearest.classOfUnknown ? 0 : nearest.orders[scoped.class][0];
});

// --- scope distribution ---------------------------------------------------
function quartiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `p25 /${at(0.25)}  median /${at(0.5)}  p75 /${at(0.75)}`;
}

/** Class tries whose classes are the first k PoPs of the nearest order (k = PoP count: the whole list). */
function classTrieForPrefix(k: number): ClassTrie {
  if (k >= catalog.count) return classTrie;
  const idOf = new Map<string, number>();
  const classOfOrder = nearest.orders.map((order) => {
    const key = order.subarray(0, k).join(',');
    let id = idOf.get(key);
    if (id === undefined) { id = idOf.size; idOf.set(key, id); }
    return id;
  });
  const classOfLocation = Int32Array.from(nearest.classOfLocation, (c) => classOfOrder[c]);
  return buildClassTrie(index, classOfLocation, idOf.size);
}

function scopeReport(title: string, prefixes: Uint8Array[], family: 4 | 6, sourceBits: number): void {
  process.stdout.write(`\n${title}\n`);
  const record = prefixes.map((p) => lookupLocation(index, family, p, sourceBits, location).prefixLength);
  line('  unmerged GeoIP record prefix', quartiles(record));
  for (const k of [catalog.count, 3, 1]) {
    const trie = classTrieForPrefix(k);
    const scopes = prefixes.map((p) => lookupClass(index, trie, family, p, sourceBits, scoped).scopeLength);
    const label = k === catalog.count ? `  merged by the whole ordered list (${k} PoPs)` : `  merged by the first ${k} PoP${k > 1 ? 's' : ''} of the order`;
    line(label, quartiles(scopes));
  }
}

function uniformRecordedSlash24s(count: number, seed: number): Uint8Array[] {
  const random = seededRandom(seed);
  const out: Uint8Array[] = [];
  for (let attempt = 0; out.length < count && attempt < count * 20; attempt++) {
    const p = new Uint8Array(16);
    p[0] = Math.floor(random() * 224); p[1] = Math.floor(random() * 256); p[2] = Math.floor(random() * 256);
    if (lookupLocation(index, 4, p, 24, location).location >= 0) out.push(p);
  }
  return out;
}

function descentPrefixes(ix: GeoIndex, family: 4 | 6, count: number, sourceBits: number, seed: number): Uint8Array[] {
  const random = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const p = sampleByDescent(ix, family, random, true).bytes;
    p.fill(0, sourceBits >> 3);
    return p;
  });
}

scopeReport('ECS scopes, 3,000 /24s drawn uniformly among the /24s GeoIP has a record for (source /24):', uniformRecordedSlash24s(3_000, 0x3000), 4, 24);
scopeReport('ECS scopes, 3,000 /24s drawn by random descent of the trie (favours fragmented space):', descentPrefixes(index, 4, 3_000, 24, 0x3001), 4, 24);
