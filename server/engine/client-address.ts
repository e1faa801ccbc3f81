// Which address decides, and which ECS scope rule the reply follows (README,
// "ECS scopes"): the ECS option's address (RFC 7871) when present, usable and
// trusted, else the resolver's. Resolvers cache an answer for every client
// inside the scope it carries, so each case claims exactly the clients that
// would get the same answer:
//
//   no ECS option                      → no ECS in the reply
//   source prefix 0                    → resolver decides, scope 0 (RFC 7871 §7.1.2)
//   resolver not in ecs_trust          → resolver decides, scope 0 (ECS is never read)
//   special-use source (10/8, fc00::/7 …) → resolver decides, scope = that block
//   IPv4 inside IPv6 (compatible, mapped, SIIT, NAT64 64:ff9b::/96, Teredo, 6to4)
//                                      → the embedded IPv4 decides, scope = prefix + IPv4 scope
//   any other source                   → located, scope = the widest network with the same answer
//
// Written into reused fields; no allocation per query.

import { FAMILY_IPV4 } from '../dns/constants.ts';
import type { QueryView } from '../dns/query.ts';
import { parseAddressInto } from '../lib/address.ts';
import { isCidrProblem, networkContains, parseCidr } from '../lib/cidr.ts';
import { buildCidrTrie, longestContaining, scopeAvoidingCidrs, type CidrEntry } from '../steering/cidr-trie.ts';
import type { CidrTrie } from '../steering/types.ts';

/** Longest source prefixes used for decisions (RFC 7871 §11.1 privacy advice). */
export const MAX_IPV4_BITS = 24;
export const MAX_IPV6_BITS = 56;

/** How the deciding address and the reply's scope were chosen (DecidingAddress.rule). */
export const SCOPE_NO_ECS = 0;
export const SCOPE_LOCATED = 1;
export const SCOPE_SOURCE_ZERO = 2;
export const SCOPE_UNTRUSTED = 3;
export const SCOPE_SPECIAL_USE = 4;
export const SCOPE_EMBEDDED_IPV4 = 5;

/** Special-use networks whose addresses say nothing about where a client is (RFC 6890 and its updates). */
export const SPECIAL_USE_BLOCKS: ReadonlyArray<{ cidr: string; name: string }> = [
  { cidr: '0.0.0.0/8', name: '"this network"' },
  { cidr: '10.0.0.0/8', name: 'private' },
  { cidr: '100.64.0.0/10', name: 'shared address space (CGNAT)' },
  { cidr: '127.0.0.0/8', name: 'loopback' },
  { cidr: '169.254.0.0/16', name: 'link-local' },
  { cidr: '172.16.0.0/12', name: 'private' },
  { cidr: '192.0.0.0/24', name: 'IETF protocol assignments' },
  { cidr: '192.0.2.0/24', name: 'documentation' },
  { cidr: '192.168.0.0/16', name: 'private' },
  { cidr: '198.18.0.0/15', name: 'benchmarking' },
  { cidr: '198.51.100.0/24', name: 'documentation' },
  { cidr: '203.0.113.0/24', name: 'documentation' },
  { cidr: '224.0.0.0/4', name: 'multicast' },
  { cidr: '240.0.0.0/4', name: 'reserved' },
  { cidr: '::/8', name: 'reserved by the IETF' },
  { cidr: '::/128', name: 'unspecified' },
  { cidr: '::1/128', name: 'loopback' },
  { cidr: '100::/64', name: 'discard-only' },
  { cidr: '2001:db8::/32', name: 'documentation' },
  { cidr: 'fc00::/7', name: 'unique local' },
  { cidr: 'fe80::/10', name: 'link-local' },
  { cidr: 'ff00::/8', name: 'multicast' },
];

/**
 * IPv6 prefixes that carry an IPv4 address, as gdnsd reads them: the IPv4
 * bits start at `at` (Teredo's are inverted). Sources inside are located by
 * that IPv4 address; the scope is `at` + the IPv4 scope.
 */
export const EMBEDDED_IPV4_PREFIXES: ReadonlyArray<{ cidr: string; name: string; at: number; inverted: boolean }> = [
  { cidr: '::/96', name: 'IPv4-compatible (deprecated)', at: 96, inverted: false },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped', at: 96, inverted: false },
  { cidr: '::ffff:0:0:0/96', name: 'IPv4-translated (SIIT)', at: 96, inverted: false },
  { cidr: '64:ff9b::/96', name: 'NAT64 well-known prefix', at: 96, inverted: false },
  { cidr: '2001::/32', name: 'Teredo', at: 96, inverted: true },
  { cidr: '2002::/16', name: '6to4', at: 16, inverted: false },
];

/**
 * Parses an address as an ECS option carries it. Unlike the socket-address
 * parser, an IPv4-mapped IPv6 address (::ffff:a.b.c.d) stays IPv6: a
 * resolver can send it as an IPv6 source.
 */
export function parseEcsAddress(text: string, out: Uint8Array): 0 | 4 | 6 {
  const family = parseAddressInto(text, out);
  if (family !== 4 || !text.includes(':')) return family;
  out.copyWithin(12, 0, 4);
  out.fill(0, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  return 6;
}

function entriesOf(list: ReadonlyArray<{ cidr: string }>): CidrEntry[] {
  return list.map(({ cidr }, rule) => {
    const [text, length] = cidr.split('/');
    const network = new Uint8Array(16);
    const family = parseEcsAddress(text, network);
    if (family === 0) throw new Error(`bad built-in network ${cidr}`);
    return { rule, family, network, prefixLength: Number(length) };
  });
}

const SPECIAL_USE = buildCidrTrie(entriesOf(SPECIAL_USE_BLOCKS));
const EMBEDDED = buildCidrTrie(entriesOf(EMBEDDED_IPV4_PREFIXES));
/** Every block decided otherwise than by location: a located scope must not reach into one. */
const DECIDED_ELSEWHERE: CidrTrie = buildCidrTrie(entriesOf([...SPECIAL_USE_BLOCKS, ...EMBEDDED_IPV4_PREFIXES]));

export class DecidingAddress {
  /** 16 bytes; IPv4 in the first 4. */
  readonly bytes = new Uint8Array(16);
  /** `bytes` as four 32-bit words (class-memo.ts keys). */
  readonly words = new Int32Array(this.bytes.buffer, 0, 4);
  family: 4 | 6 = 4;
  /** Bits of `bytes` that are meaningful (the ECS source, capped). */
  bits = 32;
  /** True when the address came from ECS (the reply's scope then comes from the class trie). */
  fromEcs = false;
  /** ECS was present but did not decide (prefix 0, special-use address, untrusted resolver). */
  ecsFallback = false;
  /** Which scope rule applies: SCOPE_*. */
  rule = SCOPE_NO_ECS;
  /** The reply's scope when it does not come from the class trie (resolver decided), in the ECS family. */
  fixedScope = 0;
  /** Bits before the embedded IPv4 address (SCOPE_EMBEDDED_IPV4): the reply's scope is this plus the IPv4 scope. */
  scopeOffset = 0;
  /** The special-use block (index into SPECIAL_USE_BLOCKS) or embedding prefix (EMBEDDED_IPV4_PREFIXES) involved; -1 none. */
  block = -1;
  embedding = -1;
  /** The resolver's own address, always filled. */
  readonly resolver = new Uint8Array(16);
  resolverFamily: 4 | 6 = 4;
  /** The text `resolver` was parsed from: queries come from few resolvers, so it is parsed only when it changes. */
  resolverText = '';
}

/** Whether a resolver (its parsed address) may decide with its ECS option; null trusts every resolver. */
export type TrustEcs = (family: 4 | 6, address: Uint8Array) => boolean;

/** The ecs_trust setting as a check; null (every resolver) for an empty list. Throws on a malformed network. */
export function ecsTrustCheck(networks: readonly string[]): TrustEcs | null {
  if (networks.length === 0) return null;
  const trusted = networks.map((text) => {
    const parsed = parseCidr(text, 'match');
    if (isCidrProblem(parsed)) throw new Error(`ecs_trust: ${parsed.message}`);
    return parsed;
  });
  return (family, address) => {
    for (let i = 0; i < trusted.length; i++) if (networkContains(trusted[i], family, address)) return true;
    return false;
  };
}

const found = { rule: -1, length: 0 };

/** Fills `out` from the query's ECS option or the resolver's address. */
export function chooseDecidingAddress(view: QueryView, resolverAddress: string, trustEcs: TrustEcs | null, out: DecidingAddress): void {
  if (resolverAddress !== out.resolverText) {
    const family = parseAddressInto(resolverAddress, out.resolver);
    out.resolverFamily = family === 6 ? 6 : 4;
    out.resolverText = resolverAddress;
  }
  out.fromEcs = false;
  out.ecsFallback = false;
  out.fixedScope = 0;
  out.scopeOffset = 0;
  out.block = -1;
  out.embedding = -1;
  out.rule = SCOPE_NO_ECS;
  if (view.ecsPresent) {
    const family = view.ecsFamily === FAMILY_IPV4 ? 4 : 6;
    const source = view.ecsSourcePrefix;
    if (source === 0) out.rule = SCOPE_SOURCE_ZERO;
    else if (trustEcs !== null && !trustEcs(out.resolverFamily, out.resolver)) out.rule = SCOPE_UNTRUSTED;
    else if (family === 6 && takeEmbeddedIpv4(view.ecsAddress, source, out)) return;
    else if (!isSpecialUse(family, view.ecsAddress, source, 0, out)) {
      copySource(view.ecsAddress, family, source, out);
      return;
    }
    out.ecsFallback = true;
  }
  useResolver(out);
}

/** The ECS source decides: masked to its prefix, capped at /24 or /56 (bits past the cap must not influence the decision). */
function copySource(address: Uint8Array, family: 4 | 6, source: number, out: DecidingAddress): void {
  out.family = family;
  const cap = family === 4 ? MAX_IPV4_BITS : MAX_IPV6_BITS;
  const bits = source < cap ? source : cap;
  const bytes = out.bytes;
  for (let i = 0; i < 16; i++) bytes[i] = address[i];
  const partial = bits >> 3;
  if ((bits & 7) !== 0) bytes[partial] &= 0xff00 >> (bits & 7);
  for (let i = (bits + 7) >> 3; i < 16; i++) bytes[i] = 0;
  out.bits = bits;
  out.fromEcs = true;
  out.rule = SCOPE_LOCATED;
}

/**
 * A special-use source (the whole source network inside the block): the
 * resolver decides and the scope is the block, `offset` bits further for
 * an IPv4 address found inside IPv6.
 */
function isSpecialUse(family: 4 | 6, address: Uint8Array, source: number, offset: number, out: DecidingAddress): boolean {
  longestContaining(SPECIAL_USE, family, address, source, found);
  if (found.rule < 0) return false;
  out.rule = SCOPE_SPECIAL_USE;
  out.block = found.rule;
  out.fixedScope = offset + found.length;
  return true;
}

const embedded = new Uint8Array(16);

/**
 * An IPv6 source inside a prefix that embeds IPv4: located by the IPv4
 * address (and its bits the source covers), as gdnsd does. A source too
 * short to reach the IPv4 bits carries no location: the resolver decides and
 * the scope is the embedding prefix.
 */
function takeEmbeddedIpv4(address: Uint8Array, source: number, out: DecidingAddress): boolean {
  longestContaining(EMBEDDED, 6, address, source, found);
  if (found.rule < 0) return false;
  const prefix = EMBEDDED_IPV4_PREFIXES[found.rule];
  out.embedding = found.rule;
  const ipv4Bits = Math.min(32, source - prefix.at);
  if (ipv4Bits <= 0) {
    out.rule = SCOPE_SPECIAL_USE;
    out.fixedScope = found.length;
    out.ecsFallback = true;
    useResolver(out);
    return true;
  }
  const start = prefix.at >> 3;
  const invert = prefix.inverted ? 0xff : 0;
  embedded.fill(0);
  // The IPv4 address starts on a whole octet for every prefix (bit 96 or 16).
  for (let i = 0; i < 4; i++) embedded[i] = address[start + i] ^ invert;
  if (isSpecialUse(4, embedded, ipv4Bits, prefix.at, out)) {
    out.ecsFallback = true;
    useResolver(out);
    return true;
  }
  copySource(embedded, 4, ipv4Bits, out);
  out.rule = SCOPE_EMBEDDED_IPV4;
  out.scopeOffset = prefix.at;
  return true;
}

function useResolver(out: DecidingAddress): void {
  out.family = out.resolverFamily;
  for (let i = 0; i < 16; i++) out.bytes[i] = out.resolver[i];
  out.bits = out.family === 4 ? 32 : 128;
}

/**
 * A located scope narrowed so that it holds no special-use block and no
 * IPv4-embedding prefix: addresses there are decided another way, and a
 * resolver must not reuse this answer for them.
 */
export function scopeAvoidingSpecialUse(family: 4 | 6, bytes: Uint8Array, scope: number): number {
  return scopeAvoidingCidrs(DECIDED_ELSEWHERE, family, bytes, scope);
}
