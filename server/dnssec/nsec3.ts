// NSEC3 (RFC 5155) with RFC 9276's parameters: SHA-1, no extra iterations,
// an empty salt, opt-out off. The hashed chain is built and signed when the
// snapshot compiles (zone.ts); a query only hashes its next-closer name
// (one SHA-1, no signature) and binary-searches the chain for the precomputed
// record that covers it.

import { createHash, hash } from 'node:crypto';

export const TYPE_NSEC3 = 50;
export const TYPE_NSEC3PARAM = 51;
const HASH_SHA1 = 1;

/** The NSEC3 parameters of a zone: RFC 9276 asks for 0 iterations and no salt. */
export interface Nsec3Params {
  iterations: number;
  salt: Uint8Array;
}

export const RFC9276_PARAMS: Nsec3Params = { iterations: 0, salt: new Uint8Array(0) };

/** The NSEC3 hash of a lower-cased wire name (RFC 5155 §5): SHA-1 over name‖salt, then `iterations` more times over hash‖salt. */
export function nsec3Hash(name: Uint8Array, params: Nsec3Params): Uint8Array {
  // RFC 9276's parameters, the only ones zones use here: the one-shot hash costs a third of a Hash object (on the query path).
  if (params.iterations === 0 && params.salt.length === 0) return hash('sha1', name, 'buffer');
  let digest = createHash('sha1').update(name).update(params.salt).digest();
  for (let i = 0; i < params.iterations; i++) digest = createHash('sha1').update(digest).update(params.salt).digest();
  return digest;
}

const BASE32HEX = '0123456789abcdefghijklmnopqrstuv';

/** Base32 with the extended hex alphabet, lower case, no padding (RFC 4648 §7; 20 octets make 32 characters). */
export function base32hex(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32HEX[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32HEX[(value << (5 - bits)) & 31];
  return out;
}

/** The owner of the NSEC3 record for `hash`: its base32hex label under the apex. */
export function nsec3Owner(hash: Uint8Array, apex: Uint8Array): Uint8Array {
  const label = Buffer.from(base32hex(hash), 'latin1');
  return Uint8Array.from([label.length, ...label, ...apex]);
}

function paramsHead(params: Nsec3Params): number[] {
  return [HASH_SHA1, 0, params.iterations >> 8, params.iterations & 0xff, params.salt.length, ...params.salt];
}

/** NSEC3PARAM RDATA (RFC 5155 §4.2): algorithm, flags 0, iterations, salt. */
export function nsec3paramRdata(params: Nsec3Params): Uint8Array {
  return Uint8Array.from(paramsHead(params));
}

/** NSEC3 RDATA (RFC 5155 §3.2): the parameters (opt-out off), the next hashed owner, the type bitmap (nsec.ts nsecTypeBitmap). */
export function nsec3Rdata(params: Nsec3Params, nextHash: Uint8Array, bitmap: Uint8Array): Uint8Array {
  return Uint8Array.from([...paramsHead(params), nextHash.length, ...nextHash, ...bitmap]);
}

function compareHashes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * Index of the chain record that matches or covers `hash` in the sorted
 * `chain`: the last hash at or before it, wrapping to the last record when
 * `hash` sorts before the first (that record covers the wrap-around).
 */
export function coveringIndex(chain: Uint8Array[], hash: Uint8Array): number {
  let lo = 0;
  let hi = chain.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareHashes(chain[mid], hash) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? chain.length - 1 : lo - 1;
}
