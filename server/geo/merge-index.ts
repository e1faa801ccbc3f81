// Several GeoIP files as one index: DB-IP publishes IPv4 and IPv6 as separate
// databases, and an operator may add a file of their own. The tries are
// merged so that the first file that knows an address decides it (a network
// the first file has is kept whole; where it has nothing, the next file's
// data shows through). Location ids are the files' ids one after the other,
// so custom networks (spliced into the first file's index) keep theirs.
// Shared nodes of either DAG are memoised; nodes are numbered parent first
// (scope.ts builds class tries fastest that way). Slow path only.

import { PackedStringsBuilder, stringAt } from './codes.ts';
import type { GeoIndex } from './types.ts';

export function mergeGeoIndexes(indexes: readonly GeoIndex[]): GeoIndex {
  return indexes.reduce((merged, next) => mergeTwo(merged, next));
}

function sharedNodes(index: GeoIndex): Uint8Array {
  const parents = new Uint8Array(index.nodeCount);
  for (let i = 0; i < 2 * index.nodeCount; i++) {
    const child = index.children[i];
    if (child >= 0 && parents[child] < 2) parents[child]++;
  }
  parents[index.ipv4Root] = 2;
  return parents;
}

function mergeTwo(a: GeoIndex, b: GeoIndex): GeoIndex {
  const sharedA = sharedNodes(a);
  const sharedB = sharedNodes(b);
  const shift = a.locationCount;
  let children = new Int32Array(2 * (a.nodeCount + b.nodeCount + 1024));
  let used = 0;
  const allocate = (): number => {
    if (2 * used + 2 > children.length) {
      const grown = new Int32Array(children.length * 2);
      grown.set(children);
      children = grown;
    }
    return used++;
  };
  const memo = new Map<number, Map<number, number>>();
  const merge = (ea: number, eb: number): number => {
    if (ea === a.ipv4Root) eb = b.ipv4Root; // the IPv4 subtrees line up, wherever A reaches its own
    if (ea <= -2) return ea; // A knows the whole network: A decides
    if (ea === -1 && eb < 0) return eb <= -2 ? eb - shift : -1;
    const shared = (ea >= 0 && sharedA[ea] > 1) || (eb >= 0 && sharedB[eb] > 1);
    let byB: Map<number, number> | undefined;
    if (shared) {
      byB = memo.get(ea);
      const done = byB?.get(eb);
      if (done !== undefined) return done;
      if (!byB) memo.set(ea, (byB = new Map()));
    }
    const node = allocate();
    byB?.set(eb, node);
    for (let bit = 0; bit < 2; bit++) {
      const ca = ea >= 0 ? a.children[2 * ea + bit] : ea;
      const cb = eb >= 0 ? b.children[2 * eb + bit] : eb;
      children[2 * node + bit] = merge(ca, cb);
    }
    return node;
  };
  const root = merge(a.root, b.root);
  const ipv4Root = memo.get(a.ipv4Root)!.get(b.ipv4Root)!;

  const strings = new PackedStringsBuilder();
  const remap = (index: GeoIndex): Int32Array => Int32Array.from({ length: index.strings.offsets.length - 1 }, (_, i) => strings.add(stringAt(index.strings, i)));
  const stringsA = remap(a);
  const stringsB = remap(b);
  const count = Math.max(1, a.locationCount + b.locationCount);
  const join = <T extends Float64Array | Uint16Array | Uint8Array | Int32Array | Int16Array>(make: (buffer: SharedArrayBuffer) => T, bytes: number,
    from: (index: GeoIndex) => T, mapB: ((v: number) => number) | null = null, mapA: ((v: number) => number) | null = null): T => {
    const out = make(new SharedArrayBuffer(bytes * count));
    const va = from(a);
    const vb = from(b);
    for (let i = 0; i < a.locationCount; i++) out[i] = mapA ? mapA(va[i]) : va[i];
    for (let i = 0; i < b.locationCount; i++) out[shift + i] = mapB ? mapB(vb[i]) : vb[i];
    return out;
  };
  const nodes = new Int32Array(new SharedArrayBuffer(8 * used));
  nodes.set(children.subarray(0, 2 * used));
  return {
    nodeCount: used,
    children: nodes,
    root,
    ipv4Root,
    locationCount: a.locationCount + b.locationCount,
    lat: join((x) => new Float64Array(x), 8, (i) => i.lat),
    lon: join((x) => new Float64Array(x), 8, (i) => i.lon),
    accuracyKm: join((x) => new Uint16Array(x), 2, (i) => i.accuracyKm),
    country: join((x) => new Uint16Array(x), 2, (i) => i.country),
    continent: join((x) => new Uint8Array(x), 1, (i) => i.continent),
    subdivision: join((x) => new Int32Array(x), 4, (i) => i.subdivision, (v) => stringsB[v], (v) => stringsA[v]),
    label: join((x) => new Int32Array(x), 4, (i) => i.label, (v) => stringsB[v], (v) => stringsA[v]),
    fixedPop: join((x) => new Int16Array(x), 2, (i) => i.fixedPop, () => -1),
    customNetwork: join((x) => new Int32Array(x), 4, (i) => i.customNetwork, () => -1),
    strings: strings.finish(),
    databaseType: `${a.databaseType} + ${b.databaseType}`,
    buildEpochMs: Math.max(a.buildEpochMs, b.buildEpochMs),
  };
}
