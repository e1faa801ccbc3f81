// Shared by the geo tests and the geo benchmark: a seeded PRNG and address
// samplers that cover the whole GeoLite2 database.

import { formatAddress } from '../../../server/lib/address.ts';
import type { GeoIndex } from '../../../server/geo/types.ts';

/** mulberry32: small, seeded, good enough to spread samples. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SampledAddress {
  family: 4 | 6;
  bytes: Uint8Array;
  text: string;
}

/**
 * A random address reached by a random walk down the trie: every branch is
 * equally likely at each node, so samples spread over all the networks the
 * database describes, short and long, rather than only the big ones a
 * uniform draw over the address space would mostly hit. Bits below the leaf
 * are random too. With `avoidEmpty`, a branch with no data is taken only
 * when both are empty (most of the IPv6 space is unallocated).
 */
export function sampleByDescent(index: GeoIndex, family: 4 | 6, random: () => number, avoidEmpty = false): SampledAddress {
  const bytes = new Uint8Array(16);
  const bits = family === 4 ? 32 : 128;
  let node = family === 4 ? index.ipv4Root : index.root;
  let leafReached = false;
  for (let depth = 0; depth < bits; depth++) {
    let bit = random() < 0.5 ? 0 : 1;
    if (!leafReached && avoidEmpty && index.children[2 * node + bit] === -1 && index.children[2 * node + (bit ^ 1)] !== -1) bit ^= 1;
    if (bit) bytes[depth >> 3] |= 0x80 >> (depth & 7);
    if (!leafReached) {
      const next = index.children[2 * node + bit];
      if (next < 0) leafReached = true;
      else node = next;
    }
  }
  return { family, bytes, text: formatAddress(family, bytes) };
}

/** A uniformly random IPv4 address. */
export function sampleUniformIpv4(random: () => number): SampledAddress {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 4; i++) bytes[i] = Math.floor(random() * 256);
  return { family: 4, bytes, text: formatAddress(4, bytes) };
}

/** A mix: uniform IPv4, trie-descent IPv4 and trie-descent IPv6 (under 2000::/3, where GeoIP has data). */
export function sampleMixed(index: GeoIndex, count: number, seed: number): SampledAddress[] {
  const random = seededRandom(seed);
  const out: SampledAddress[] = [];
  for (let i = 0; i < count; i++) {
    const kind = i % 3;
    if (kind === 0) out.push(sampleUniformIpv4(random));
    else if (kind === 1) out.push(sampleByDescent(index, 4, random));
    else out.push(sampleGlobalIpv6(index, random));
  }
  return out;
}

/** Trie descent inside 2000::/3 (global unicast), skipping the IPv4 aliases 2001::/32 and 2002::/16. */
export function sampleGlobalIpv6(index: GeoIndex, random: () => number): SampledAddress {
  for (let attempt = 0; attempt < 64; attempt++) {
    const sample = sampleByDescent(index, 6, random, true);
    const b = sample.bytes;
    if ((b[0] & 0xe0) !== 0x20) continue;
    if (b[0] === 0x20 && (b[1] === 0x02 || (b[1] === 0x01 && b[2] === 0 && b[3] === 0))) continue;
    return sample;
  }
  // Rare: fall back to a fixed global address so the count stays exact.
  const bytes = Uint8Array.from([0x2a, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  return { family: 6, bytes, text: formatAddress(6, bytes) };
}
