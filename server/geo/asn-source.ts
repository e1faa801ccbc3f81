// ASN sources: which autonomous system announces an address. Three layouts,
// detected from the file's content: a MaxMind DB with
// `autonomous_system_number` (GeoLite2-ASN, GeoIP2-ISP; asn-mmdb.ts), a CSV
// of ranges `ip_range_start,ip_range_end,asn[,org]` (the layout of
// @ip-location-db/asn) and a prefix-to-origin-AS list `CIDR,ASN` exported
// from the operator's own routers (asn-text.ts). Several files make one
// source (e.g. separate IPv4 and IPv6 files); where networks overlap, the
// longest prefix wins, as in a routing table.
//
// Every layout becomes the same thing: a list of networks and a binary trie
// over them in the GeoIndex encoding (IPv4 under ::/96), which asn-splice.ts
// merges into the GeoIP index and explain walks. Slow path only.

import { readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ConfigError } from '../config/errors.ts';
import { formatAddress, maskAddress, parseAddressInto } from '../lib/address.ts';
import { isMmdb, readAsnMmdb } from './asn-mmdb.ts';
import { readAsnText } from './asn-text.ts';
import { AsnNetworkList, type AsnLayout } from './asn-networks.ts';

export { AsnNetworkList, type AsnFileContent, type AsnLayout, type AsnNetwork } from './asn-networks.ts';

export interface AsnFile {
  path: string;
  layout: AsnLayout;
  /** File identity when loaded, so a watcher can skip events that changed nothing. */
  identity: string;
  networks: number;
}

/**
 * A binary trie over the 128-bit space, encoded like GeoIndex.children:
 * >= 0 a child node, -1 no data, <= -2 a leaf (network index = -v - 2).
 */
export interface AsnTrie {
  children: Int32Array;
  nodeCount: number;
  root: number;
  /** Node at ::/96, where IPv4 lookups start. */
  ipv4Root: number;
}

export interface AsnSource {
  files: AsnFile[];
  networks: AsnNetworkList;
  /** Index of each file's first network in `networks`. */
  fileStarts: number[];
  /** Organisation by AS number, where the source names one. */
  organizations: Map<number, string>;
  trie: AsnTrie;
  loadMs: number;
}

/** What a source says about one address (explain). */
export interface AsnAnswer {
  asn: number;
  organization: string;
  /** The network of the source that holds the address, e.g. "80.128.0.0/11". */
  network: string;
  /** The file it came from. */
  file: string;
}

const IPV4_DEPTH = 96;

/** Loads and merges the files; throws ConfigError naming the file (and line) of the first problem. */
export function loadAsnSource(paths: readonly string[]): AsnSource {
  const started = performance.now();
  const files: AsnFile[] = [];
  const networks = new AsnNetworkList();
  const fileStarts: number[] = [];
  const organizations = new Map<number, string>();
  for (const path of paths) {
    const { bytes, identity } = readSourceFile(path);
    const start = networks.count;
    const content = isMmdb(bytes) ? readAsnMmdb(path, bytes, networks) : readAsnText(path, bytes.toString('utf8'), networks);
    if (networks.count === start) {
      throw new ConfigError('POPSTEER_ERR_ASN_SOURCE', path, null, '', `no networks in this ${content.layout === 'mmdb' ? 'database' : 'file'}: give a GeoLite2-ASN .mmdb, a CSV of ranges (ip_range_start,ip_range_end,asn[,org]) or a CIDR,ASN list`);
    }
    files.push({ path, layout: content.layout, identity, networks: networks.count - start });
    fileStarts.push(start);
    for (const [asn, org] of content.organizations) if (!organizations.has(asn)) organizations.set(asn, org);
  }
  const trie = buildAsnTrie(networks);
  return { files, networks, fileStarts, organizations, trie, loadMs: performance.now() - started };
}

export function readSourceFile(path: string): { bytes: Buffer; identity: string } {
  try {
    const stat = statSync(path);
    const bytes = readFileSync(path);
    return { bytes, identity: fileIdentity(stat.ino, stat.size, stat.mtimeMs) };
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_ASN_SOURCE', path, null, '', `cannot read the ASN source: ${(err as Error).message}`);
  }
}

export function fileIdentity(ino: number, size: number, mtimeMs: number): string {
  return `${ino}:${size}:${mtimeMs}`;
}

/** The trie of `networks`: shorter prefixes first, so a longer one splits the shorter one's leaf (longest wins). */
function buildAsnTrie(networks: AsnNetworkList): AsnTrie {
  const { count, prefixLengths, families } = networks;
  let capacity = IPV4_DEPTH + 2;
  for (let i = 0; i < count; i++) capacity += prefixLengths[i] + (families[i] === 4 ? IPV4_DEPTH : 0);
  let children = new Int32Array(2 * Math.min(capacity, 1 << 20));
  let used = 0;
  const newNode = (left: number, right: number): number => {
    if (2 * used + 2 > children.length) {
      const grown = new Int32Array(children.length * 2);
      grown.set(children);
      children = grown;
    }
    const node = used++;
    children[2 * node] = left;
    children[2 * node + 1] = right;
    return node;
  };
  const root = newNode(-1, -1);
  let ipv4Root = root;
  for (let d = 0; d < IPV4_DEPTH; d++) {
    const next = newNode(-1, -1);
    children[2 * ipv4Root] = next;
    ipv4Root = next;
  }
  // Shorter first (by depth in the 128-bit trie), file order among equals: a counting sort.
  const depthOf = (i: number): number => prefixLengths[i] + (families[i] === 4 ? IPV4_DEPTH : 0);
  const starts = new Int32Array(130);
  for (let i = 0; i < count; i++) starts[depthOf(i) + 1]++;
  for (let d = 1; d < starts.length; d++) starts[d] += starts[d - 1];
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[starts[depthOf(i)]++] = i;
  for (const i of order) {
    const n = { family: families[i], address: networks.address(i), prefixLength: prefixLengths[i] };
    let node = n.family === 4 ? ipv4Root : root;
    const leaf = -i - 2;
    if (n.prefixLength === 0) {
      // ::/0 would also cover the IPv4 space; a default route says nothing about an address.
      continue;
    }
    for (let depth = 0; depth < n.prefixLength - 1; depth++) {
      const slot = 2 * node + bitOf(n.address, depth);
      let next = children[slot];
      if (next < 0) {
        next = newNode(next, next);
        children[slot] = next;
      }
      node = next;
    }
    const slot = 2 * node + bitOf(n.address, n.prefixLength - 1);
    // An IPv6 network covering ::/96 must not replace the IPv4 subtree.
    if (children[slot] >= 0 && n.family === 6) overwriteLeaves(children, children[slot], leaf, ipv4Root);
    else children[slot] = leaf;
  }
  const shared = new Int32Array(new SharedArrayBuffer(8 * Math.max(1, used)));
  shared.set(children.subarray(0, 2 * used));
  return { children: shared, nodeCount: used, root, ipv4Root };
}

/** Replaces every empty edge or leaf under `node` with `leaf`, stopping at the IPv4 root. */
function overwriteLeaves(children: Int32Array, node: number, leaf: number, ipv4Root: number): void {
  if (node === ipv4Root) return;
  for (let bit = 0; bit < 2; bit++) {
    const edge = children[2 * node + bit];
    if (edge >= 0) overwriteLeaves(children, edge, leaf, ipv4Root);
    else children[2 * node + bit] = leaf;
  }
}

function bitOf(address: Uint8Array, bit: number): number {
  return (address[bit >> 3] >> (7 - (bit & 7))) & 1;
}

/** The network of the source holding `text`, or null. Slow path (explain). */
export function lookupAsn(source: AsnSource, text: string): AsnAnswer | null {
  const bytes = new Uint8Array(16);
  const family = parseAddressInto(text, bytes);
  if (family === 0) return null;
  const index = networkOf(source.trie, family, bytes);
  if (index < 0) return null;
  const { networks } = source;
  const asn = networks.asns[index];
  // Not networks.address(): explain runs on the main thread, where the source
  // arrives as a structured clone, without AsnNetworkList's methods.
  const network = networks.addresses.slice(16 * index, 16 * index + 16);
  maskAddress(network, networks.prefixLengths[index]);
  let file = 0;
  while (file + 1 < source.fileStarts.length && source.fileStarts[file + 1] <= index) file++;
  return {
    asn,
    organization: source.organizations.get(asn) ?? '',
    network: `${formatAddress(networks.families[index] as 4 | 6, network)}/${networks.prefixLengths[index]}`,
    file: source.files[file].path,
  };
}

/** Index of the network holding the address, or -1. */
export function networkOf(trie: AsnTrie, family: 4 | 6, bytes: Uint8Array): number {
  let node = family === 4 ? trie.ipv4Root : trie.root;
  const bits = family === 4 ? 32 : 128;
  for (let depth = 0; depth < bits; depth++) {
    const edge = trie.children[2 * node + bitOf(bytes, depth)];
    if (edge === -1) return -1;
    if (edge < -1) return -edge - 2;
    node = edge;
  }
  return -1;
}

/**
 * The share of networks a replacement changes: networks that went away, came
 * new or moved to another AS, over the networks of the larger of the two. A
 * broken download (truncated, another layout, an empty export) changes most
 * of them; a routine update a few per cent.
 */
export function changedShare(before: AsnSource, after: AsnSource): number {
  const key = (list: AsnNetworkList, i: number): string => `${list.prefixLengths[i]}|${Buffer.from(list.addresses.buffer, list.addresses.byteOffset + 16 * i, 16).toString('hex')}`;
  const old = new Map<string, number>();
  for (let i = 0; i < before.networks.count; i++) old.set(key(before.networks, i), before.networks.asns[i]);
  let changed = 0;
  let kept = 0;
  for (let i = 0; i < after.networks.count; i++) {
    const asn = old.get(key(after.networks, i));
    if (asn === undefined) changed++;
    else {
      kept++;
      if (asn !== after.networks.asns[i]) changed++;
    }
  }
  changed += old.size - kept;
  const total = Math.max(old.size, after.networks.count);
  return total === 0 ? 0 : Math.min(1, changed / total);
}
