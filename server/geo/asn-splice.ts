// Merges an ASN source into a GeoIndex: the product of the two tries, where
// every leaf is a (GeoIP location, AS number) pair and gets a location id of
// its own, with an `asn` column beside the location columns. Policies then
// match on the AS exactly as on the country (one group per distinct pair),
// the class tries merge it like any other attribute, and an ECS scope can
// never cross an AS boundary where the answer changes: the trie a query
// walks already splits there. The query path does not change at all.
//
// The GeoIP trie is a DAG (the IPv4 subtree is shared with its IPv6 aliases,
// custom networks copy on write), so products of shared nodes are memoised
// by (node, ASN edge); everything else is visited once. Nodes are numbered
// parent first, as the MaxMind writer does, which the class-trie build
// (scope.ts) relies on for speed. Slow path only.

import type { AsnSource } from './asn-source.ts';
import type { GeoIndex } from './types.ts';

const UNKNOWN = -1;

// eslint-disable-next-line max-lines-per-function -- one walk over both tries whose state (node stacks, output arrays) the steps share; left whole while the geo scale work changes this file (issue 18)
export function spliceAsn(index: GeoIndex, source: AsnSource): GeoIndex {
  const geo = index.children;
  const asnChildren = source.trie.children;
  const asnIpv4Root = source.trie.ipv4Root;
  const asnOfNetwork = source.networks.asns;

  // Shared GeoIP nodes (more than one parent): their products are memoised.
  const parents = new Uint8Array(index.nodeCount);
  for (let i = 0; i < 2 * index.nodeCount; i++) {
    const child = geo[i];
    if (child >= 0 && parents[child] < 2) parents[child]++;
  }
  const memo = new Map<number, Map<number, number>>();

  let children = new Int32Array(2 * (index.nodeCount + source.trie.nodeCount + 1024));
  let used = 0;
  const allocate = (): number => {
    if (2 * used + 2 > children.length) {
      const grown = new Int32Array(children.length * 2);
      grown.set(children);
      children = grown;
    }
    return used++;
  };

  // Combined locations: (GeoIP location + 1) * 2^32 + AS number → id.
  const pairIds = new Map<number, number>();
  const geoLocationOf: number[] = [];
  const asnOfLocation: number[] = [];
  const leafFor = (geoEdge: number, asnEdge: number): number => {
    const location = geoEdge <= -2 ? -geoEdge - 2 : -1;
    const asn = asnEdge <= -2 ? asnOfNetwork[-asnEdge - 2] : 0;
    if (location < 0 && asn === 0) return UNKNOWN;
    const key = (location + 1) * 4294967296 + asn;
    let id = pairIds.get(key);
    if (id === undefined) {
      id = geoLocationOf.length;
      pairIds.set(key, id);
      geoLocationOf.push(location);
      asnOfLocation.push(asn);
    }
    return -id - 2;
  };

  // The product of a GeoIP edge and an ASN edge, as an edge of the new trie.
  const product = (geoEdge: number, asnEdge: number): number => {
    if (geoEdge === index.ipv4Root) asnEdge = asnIpv4Root; // every alias of the IPv4 subtree sees IPv4's ASNs
    if (geoEdge < 0 && asnEdge < 0) return leafFor(geoEdge, asnEdge);
    const shared = geoEdge >= 0 && (parents[geoEdge] > 1 || geoEdge === index.ipv4Root);
    let byAsn: Map<number, number> | undefined;
    if (shared) {
      byAsn = memo.get(geoEdge);
      const done = byAsn?.get(asnEdge);
      if (done !== undefined) return done;
    }
    const node = allocate();
    if (byAsn === undefined && shared) memo.set(geoEdge, (byAsn = new Map()));
    byAsn?.set(asnEdge, node);
    for (let bit = 0; bit < 2; bit++) {
      const g = geoEdge >= 0 ? geo[2 * geoEdge + bit] : geoEdge;
      const a = asnEdge >= 0 ? asnChildren[2 * asnEdge + bit] : asnEdge;
      children[2 * node + bit] = product(g, a);
    }
    return node;
  };
  const root = product(index.root, source.trie.root);
  // The IPv4 root of the product: the product of the two IPv4 roots, found through the memo.
  const ipv4Root = memo.get(index.ipv4Root)!.get(asnIpv4Root)!;

  const count = Math.max(1, geoLocationOf.length);
  const column = <T extends Float64Array | Uint16Array | Uint8Array | Int32Array | Int16Array>(
    make: (buffer: SharedArrayBuffer) => T, bytes: number, from: ArrayLike<number>, missing: number): T => {
    const out = make(new SharedArrayBuffer(bytes * count));
    for (let i = 0; i < geoLocationOf.length; i++) {
      const l = geoLocationOf[i];
      out[i] = l >= 0 ? from[l] : missing;
    }
    return out;
  };
  const asn = new Uint32Array(new SharedArrayBuffer(4 * count));
  asn.set(asnOfLocation);
  const shared = new Int32Array(new SharedArrayBuffer(8 * used));
  shared.set(children.subarray(0, 2 * used));
  return {
    nodeCount: used,
    children: shared,
    root,
    ipv4Root,
    locationCount: geoLocationOf.length,
    lat: column((b) => new Float64Array(b), 8, index.lat, NaN),
    lon: column((b) => new Float64Array(b), 8, index.lon, NaN),
    accuracyKm: column((b) => new Uint16Array(b), 2, index.accuracyKm, 0),
    country: column((b) => new Uint16Array(b), 2, index.country, 0),
    continent: column((b) => new Uint8Array(b), 1, index.continent, 0),
    subdivision: column((b) => new Int32Array(b), 4, index.subdivision, 0),
    label: column((b) => new Int32Array(b), 4, index.label, 0),
    fixedPop: column((b) => new Int16Array(b), 2, index.fixedPop, -1),
    customNetwork: column((b) => new Int32Array(b), 4, index.customNetwork, -1),
    asn,
    strings: index.strings,
    databaseType: index.databaseType,
    buildEpochMs: index.buildEpochMs,
  };
}
