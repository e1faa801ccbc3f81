// Plain-data shapes of the geo module. Everything the query path reads is a
// typed array (over SharedArrayBuffer where it is large), so an index can be
// posted to DNS worker threads without copying and is never mutated after it
// is published.

/** UTF-8 strings packed into one byte array; string i is bytes[offsets[i] .. offsets[i + 1]). */
export interface PackedStrings {
  bytes: Uint8Array;
  offsets: Uint32Array;
}

/**
 * A binary trie over the 128-bit IPv6 space; IPv4 lives at ::/96 (depth 96).
 * The MaxMind tree is a DAG (the IPv4 subtree is also reachable from the
 * IPv4-mapped, 6to4 and Teredo prefixes); lookups never care, since every
 * path from a root is a plain walk down.
 *
 * Edge encoding in `children[2 * node + bit]`:
 *   >= 0  the child node
 *   -1    no data ("unknown")
 *   <= -2 a leaf: location id = -value - 2
 */
export interface GeoIndex {
  nodeCount: number;
  children: Int32Array;
  /** Node at ::/0, where IPv6 lookups start. */
  root: number;
  /** Node at ::/96, where IPv4 lookups start. */
  ipv4Root: number;
  locationCount: number;
  /** Degrees; NaN when the record has no coordinates (Country databases, some anonymous ranges). */
  lat: Float64Array;
  lon: Float64Array;
  /** Kilometres, 0 when unknown. */
  accuracyKm: Uint16Array;
  /** ISO 3166-1 alpha-2, two ASCII bytes packed (high byte first); 0 = unknown. See countryText(). */
  country: Uint16Array;
  /** Index into CONTINENT_CODES; 0 = unknown. */
  continent: Uint8Array;
  /** First subdivision ISO code, index into `strings`; 0 = none. */
  subdivision: Int32Array;
  /** English city name (or a custom network's label), index into `strings`; 0 = none. */
  label: Int32Array;
  /** PoP ordinal a custom network pins, -1 otherwise. */
  fixedPop: Int16Array;
  /** Index of the custom network that made this location, -1 for GeoIP records. */
  customNetwork: Int32Array;
  /**
   * AS number of each location, 0 = unknown; present only when an ASN source
   * is spliced in (asn-splice.ts), which gives each (GeoIP record, AS) pair a location of its own.
   */
  asn?: Uint32Array;
  /** strings[0] is the empty string. */
  strings: PackedStrings;
  databaseType: string;
  buildEpochMs: number;
}

/** Reused output of lookupLocation: the caller owns one per thread. */
export interface LocationResult {
  /** Location id, -1 when the address has no data. */
  location: number;
  /** Length of the network that decided it, relative to the family (IPv4: 0..32). */
  prefixLength: number;
}

/** Reused output of lookupClass. */
export interface ClassResult {
  class: number;
  /** Widest prefix, relative to the family, whose every address has this class. */
  scopeLength: number;
}

export interface Pop {
  id: string;
  name: string;
  lat: number;
  lon: number;
  country: string;
  continent: string;
  ipv4: string[];
  ipv6: string[];
  capacity: number;
  ordinal: number;
}

export interface PopCatalog {
  file: string;
  pops: readonly Pop[];
  count: number;
  ids: string[];
  lat: Float64Array;
  lon: Float64Array;
  country: Uint16Array;
  continent: Uint8Array;
  capacity: Float64Array;
  ordinalOf: ReadonlyMap<string, number>;
}

/** One operator-supplied network from geo-data/networks.yaml, checked. */
export interface CustomNetwork {
  /** Canonical text, e.g. "198.51.100.0/24". */
  cidr: string;
  family: 4 | 6;
  /** 16 bytes; IPv4 in the first 4. Host bits are zero. */
  address: Uint8Array;
  prefixLength: number;
  lat: number;
  lon: number;
  country: string;
  continent: string;
  /** Pinned PoP ordinal, -1 when the entry gives a location. */
  pop: number;
  label: string;
  line: number;
}

export interface CustomNetworkSet {
  file: string;
  networks: readonly CustomNetwork[];
}

/** The nearest-PoP orders: one class per distinct ordered PoP list. */
export interface NearestOrders {
  /** Class (index into `orders`) of every location id. */
  classOfLocation: Int32Array;
  /** PoP ordinals nearest first, ties by PoP id; views into `table`. */
  orders: Int16Array[];
  /** orders[c] = table.subarray(c * popCount, (c + 1) * popCount). */
  table: Int16Array;
  popCount: number;
  /** The class to give addresses with no location (= orders.length, which has no order of its own). */
  classOfUnknown: number;
}
