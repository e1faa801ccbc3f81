// The hashes popsteer uses, in one place: FNV-1a (32-bit) for names, networks
// and endpoint sets, and the murmur3 finaliser to spread an integer key.
// Small enough for V8 to inline into the per-query path; nothing allocates.
// Results are signed 32-bit integers (what Math.imul gives); a caller that
// wants an unsigned value or a table index applies `>>> 0` or a mask.

export const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** One FNV-1a step: `value` (a byte, or any 32-bit integer) folded into `h`. */
export function fnv1aStep(h: number, value: number): number {
  return Math.imul(h ^ value, FNV_PRIME);
}

/** FNV-1a over `bytes[start, end)`, continuing from `h` (the offset basis by default). */
export function fnv1a(bytes: ArrayLike<number>, start = 0, end = bytes.length, h = FNV_OFFSET): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h;
}

/** FNV-1a over a string's UTF-16 code units, unsigned. */
export function fnv1aString(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** The murmur3 32-bit finaliser (fmix32), unsigned: every input bit affects every output bit. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
