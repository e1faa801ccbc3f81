// Which address decides: the ECS option's (RFC 7871) when present, usable
// and trusted, else the resolver's. Written into reused fields, no allocation.

import { FAMILY_IPV4 } from '../dns/constants.ts';
import type { QueryView } from '../dns/query.ts';
import { parseAddressInto } from '../geo/address.ts';

/** Longest source prefixes used for decisions (RFC 7871 §11.1 privacy advice). */
export const MAX_IPV4_BITS = 24;
export const MAX_IPV6_BITS = 56;

export class DecidingAddress {
  /** 16 bytes; IPv4 in the first 4. */
  readonly bytes = new Uint8Array(16);
  /** `bytes` as four 32-bit words (class-memo.ts keys). */
  readonly words = new Int32Array(this.bytes.buffer, 0, 4);
  family: 4 | 6 = 4;
  /** Bits of `bytes` that are meaningful (the ECS source, capped). */
  bits = 32;
  /** True when the address came from ECS (the reply then carries a real scope). */
  fromEcs = false;
  /** ECS was present but not usable (prefix 0, special-use address, untrusted resolver). */
  ecsFallback = false;
  /** The resolver's own address, always filled. */
  readonly resolver = new Uint8Array(16);
  resolverFamily: 4 | 6 = 4;
  /** The text `resolver` was parsed from: queries come from few resolvers, so it is parsed only when it changes. */
  resolverText = '';
}

/**
 * Special-use networks whose ECS carries no location (RFC 7871 §11: private,
 * loopback, link-local, CGNAT, documentation, unspecified).
 */
export function isSpecialUse(family: 4 | 6, b: Uint8Array): boolean {
  if (family === 4) {
    const a = b[0];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b[1] === 254) || (a === 172 && (b[1] & 0xf0) === 16)
      || (a === 192 && b[1] === 168) || (a === 100 && (b[1] & 0xc0) === 64)
      || (a === 192 && b[1] === 0 && b[2] === 2) || (a === 198 && b[1] === 51 && b[2] === 100) || (a === 203 && b[1] === 0 && b[2] === 113);
  }
  let zero = true;
  for (let i = 0; i < 15; i++) if (b[i] !== 0) { zero = false; break; }
  if (zero) return true; // :: and ::1
  return (b[0] & 0xfe) === 0xfc // fc00::/7 unique local
    || (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) // fe80::/10 link-local
    || (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x0d && b[3] === 0xb8); // 2001:db8::/32 documentation
}

/** Whether a resolver (its parsed address) may decide with its ECS option; null trusts every resolver. */
export type TrustEcs = (family: 4 | 6, address: Uint8Array) => boolean;

/** Fills `out` from the query's ECS option or the resolver's address. */
export function chooseDecidingAddress(view: QueryView, resolverAddress: string, trustEcs: TrustEcs | null, out: DecidingAddress): void {
  if (resolverAddress !== out.resolverText) {
    const family = parseAddressInto(resolverAddress, out.resolver);
    out.resolverFamily = family === 6 ? 6 : 4;
    out.resolverText = resolverAddress;
  }
  out.fromEcs = false;
  out.ecsFallback = false;
  if (view.ecsPresent) {
    const ecsFamily = view.ecsFamily === FAMILY_IPV4 ? 4 : 6;
    const trusted = trustEcs === null || trustEcs(out.resolverFamily, out.resolver);
    if (trusted && view.ecsSourcePrefix > 0 && !isSpecialUse(ecsFamily, view.ecsAddress)) {
      out.family = ecsFamily;
      const source = view.ecsAddress;
      for (let i = 0; i < 16; i++) out.bytes[i] = source[i];
      const cap = ecsFamily === 4 ? MAX_IPV4_BITS : MAX_IPV6_BITS;
      out.bits = view.ecsSourcePrefix < cap ? view.ecsSourcePrefix : cap;
      // Bits past the cap are cleared: they must not influence the decision.
      const bytes = out.bytes;
      const partial = out.bits >> 3;
      if ((out.bits & 7) !== 0) bytes[partial] &= 0xff00 >> (out.bits & 7);
      for (let i = (out.bits + 7) >> 3; i < 16; i++) bytes[i] = 0;
      out.fromEcs = true;
      return;
    }
    out.ecsFallback = true;
  }
  out.family = out.resolverFamily;
  for (let i = 0; i < 16; i++) out.bytes[i] = out.resolver[i];
  out.bits = out.family === 4 ? 32 : 128;
}
