// ASN matches of steering rules, kept apart from the rest of the compiler:
//   asn           the client's AS (ECS address, else the resolver's): read from
//                 the GeoIP index, into which the ASN source is spliced
//                 (geo/asn-splice.ts), exactly like the country — so it
//                 combines with country, continent, subdivision and self;
//   resolver_asn  the resolver's own AS: the AS's networks become resolver
//                 CIDRs (steering/cidr-trie.ts), so it combines like
//                 resolver_cidr (with client_cidr, resolver_cidr and self).

import type { AsnNetwork, AsnSource } from '../geo/asn-source.ts';
import type { CidrEntry } from '../steering/cidr-trie.ts';

/** The problem with a rule's ASN keys, or null. */
export function asnMatchProblem(asns: readonly number[], resolverAsns: readonly number[], source: AsnSource | null): string | null {
  if (asns.length + resolverAsns.length === 0 || source !== null) return null;
  const key = asns.length > 0 ? 'asn' : 'resolver_asn';
  return `\`${key}\` needs an ASN source: set asn_database in popsteer.yaml (or --asn-database, POPSTEER_ASN_DATABASE) to a GeoLite2-ASN .mmdb, a CSV of ranges or a CIDR,ASN list`;
}

const networksByAsn = new WeakMap<AsnSource, Map<number, AsnNetwork[]>>();

/**
 * The address space each AS really holds, as networks: the leaves of the
 * source's trie, so a more specific network of another AS inside one of its
 * prefixes is left out (longest prefix wins, as for clients). Collected in
 * one walk for the ASes not asked for before, and kept per source.
 */
function networksOfAsns(source: AsnSource, asns: readonly number[]): Map<number, AsnNetwork[]> {
  let known = networksByAsn.get(source);
  if (!known) networksByAsn.set(source, (known = new Map()));
  const missing = new Set(asns.filter((asn) => !known!.has(asn)));
  if (missing.size > 0) {
    for (const asn of missing) known.set(asn, []);
    collectLeaves(source, missing, known);
  }
  return known;
}

function collectLeaves(source: AsnSource, wanted: Set<number>, byAsn: Map<number, AsnNetwork[]>): void {
  const { children, root, ipv4Root } = source.trie;
  const asns = source.networks.asns;
  const path = new Uint8Array(16);
  const visit = (node: number, depth: number, family: 4 | 6): void => {
    for (let bit = 0; bit < 2; bit++) {
      if (bit === 1) path[depth >> 3] |= 0x80 >> (depth & 7);
      const edge = children[2 * node + bit];
      if (edge >= 0) {
        if (edge === ipv4Root) visit(edge, 0, 4); // the path so far is all zeros: IPv4 bits start over at 0
        else visit(edge, depth + 1, family);
      } else if (edge < -1 && wanted.has(asns[-edge - 2])) {
        const asn = asns[-edge - 2];
        byAsn.get(asn)!.push({ family, address: path.slice(), prefixLength: depth + 1, asn });
      }
      if (bit === 1) path[depth >> 3] &= ~(0x80 >> (depth & 7));
    }
  };
  visit(root, 0, 6);
}

/** A rule's resolver_asn as resolver CIDR entries. */
export function resolverAsnEntries(source: AsnSource, asns: readonly number[], rule: number): CidrEntry[] {
  const byAsn = networksOfAsns(source, asns);
  const entries: CidrEntry[] = [];
  for (const asn of asns) {
    for (const n of byAsn.get(asn) ?? []) entries.push({ rule, family: n.family, network: n.address, prefixLength: n.prefixLength });
  }
  return entries;
}
