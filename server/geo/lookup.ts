// Per-query lookups: integers in, integers out, results written into objects
// the caller reuses. No allocation, no strings.

import type { GeoIndex, LocationResult } from './types.ts';

export function newLocationResult(): LocationResult {
  return { location: -1, prefixLength: 0 };
}

/**
 * Finds the location of `address` (16 bytes; IPv4 in the first 4). Bits at
 * and after `maxBits` are read as zero (an ECS address is only meaningful up
 * to its source prefix), so the result equals a MaxMind lookup of the masked
 * address; prefixLength is then the GeoIP network's length (possibly longer
 * than maxBits), relative to the family.
 */
export function lookupLocation(index: GeoIndex, family: 4 | 6, address: Uint8Array, maxBits: number, result: LocationResult): LocationResult {
  const children = index.children;
  const bits = family === 4 ? 32 : 128;
  let node = family === 4 ? index.ipv4Root : index.root;
  for (let depth = 0; depth < bits; depth++) {
    const bit = depth < maxBits ? (address[depth >> 3] >> (7 - (depth & 7))) & 1 : 0;
    const next = children[2 * node + bit];
    if (next < 0) {
      result.location = next === -1 ? -1 : -next - 2;
      result.prefixLength = depth + 1;
      return result;
    }
    node = next;
  }
  result.location = -1;
  result.prefixLength = bits;
  return result;
}
