// The decision class of recently seen client networks, so a repeated network
// costs one probe of a small table instead of a walk down the class trie.
//
// Why: the walk visits up to 24 (IPv4) or 56 (IPv6) nodes spread over tens
// of megabytes of shared tables; under load the kernel's network stack and
// the load generator evict them from the CPU caches, and the walk becomes a
// chain of memory misses. Client networks repeat heavily (a resolver sends
// the same ECS /24 for all its clients behind it), and this table, a few
// hundred kilobytes, stays cached.
//
// Direct-mapped: a colliding network replaces the entry. Per worker and per
// snapshot (a new policy set or GeoIP database makes a new one), so entries
// never outlive the tables they were read from; health does not enter a class.

import type { ClassResult } from '../geo/types.ts';

/** Entries, a power of two: 16,384 networks in 384 KiB. */
export const CLASS_MEMO_ENTRIES = 16_384;
const KEY_WORDS = 5;

export class ClassMemo {
  /** Per entry: tag (policy, variant, family, prefix length; -1 = empty) and the address as four words. */
  private readonly keys = new Int32Array(CLASS_MEMO_ENTRIES * KEY_WORDS).fill(-1);
  /** Per entry: class and scope length. */
  private readonly values = new Int32Array(CLASS_MEMO_ENTRIES * 2);
  private slot = 0;
  private tag = 0;
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;

  /**
   * Looks up the network `words` (the 16 address bytes read as four 32-bit
   * words, bits past `bits` zero) for trie `variant` of policy `policy`.
   * On a hit fills `result` and returns true; on a miss remembers the slot
   * so that store() can fill it.
   */
  find(policy: number, variant: number, family: 4 | 6, bits: number, words: Int32Array, result: ClassResult): boolean {
    if (variant > 0xff || policy > 0x3fff) {
      this.slot = -1; // beyond the tag's fields: not memoized
      return false;
    }
    const tag = (((policy << 8) | variant) << 9) | (family === 6 ? 256 : 0) | bits;
    const w0 = words[0];
    const w1 = words[1];
    const w2 = words[2];
    const w3 = words[3];
    let h = Math.imul(tag ^ w0, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ w1, 0x85ebca77);
    h = Math.imul(h ^ (h >>> 13) ^ w2, 0xc2b2ae3d);
    h = Math.imul(h ^ (h >>> 16) ^ w3, 0x27d4eb2f);
    const slot = (h ^ (h >>> 15)) & (CLASS_MEMO_ENTRIES - 1);
    const keys = this.keys;
    const k = slot * KEY_WORDS;
    if (keys[k] === tag && keys[k + 1] === w0 && keys[k + 2] === w1 && keys[k + 3] === w2 && keys[k + 4] === w3) {
      result.class = this.values[2 * slot];
      result.scopeLength = this.values[2 * slot + 1];
      return true;
    }
    this.slot = slot;
    this.tag = tag;
    this.w0 = w0;
    this.w1 = w1;
    this.w2 = w2;
    this.w3 = w3;
    return false;
  }

  /** Stores the result of the walk for the network of the last find() that missed. */
  store(result: ClassResult): void {
    if (this.slot < 0) return;
    const k = this.slot * KEY_WORDS;
    const keys = this.keys;
    keys[k] = this.tag;
    keys[k + 1] = this.w0;
    keys[k + 2] = this.w1;
    keys[k + 3] = this.w2;
    keys[k + 4] = this.w3;
    this.values[2 * this.slot] = result.class;
    this.values[2 * this.slot + 1] = result.scopeLength;
  }
}
