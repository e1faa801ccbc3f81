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

/** Entries, a power of two: 16,384 networks in 512 KiB. */
export const CLASS_MEMO_ENTRIES = 16_384;
/** Words per entry: tag, the address as four words, class, scope length, padding; 32 octets, so a probe touches one cache line (two, when the buffer is not 32-octet aligned). */
const ENTRY_WORDS = 8;

export class ClassMemo {
  /** Per entry: tag (policy, variant, family, prefix length; -1 = empty), address words, class, scope length. */
  private readonly entries = createEntries();
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
    const entries = this.entries;
    const k = slot * ENTRY_WORDS;
    if (entries[k] === tag && entries[k + 1] === w0 && entries[k + 2] === w1 && entries[k + 3] === w2 && entries[k + 4] === w3) {
      result.class = entries[k + 5];
      result.scopeLength = entries[k + 6];
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
    const k = this.slot * ENTRY_WORDS;
    const entries = this.entries;
    entries[k] = this.tag;
    entries[k + 1] = this.w0;
    entries[k + 2] = this.w1;
    entries[k + 3] = this.w2;
    entries[k + 4] = this.w3;
    entries[k + 5] = result.class;
    entries[k + 6] = result.scopeLength;
  }
}

/** Entry storage with every tag empty. */
function createEntries(): Int32Array {
  const entries = new Int32Array(CLASS_MEMO_ENTRIES * ENTRY_WORDS);
  for (let i = 0; i < CLASS_MEMO_ENTRIES; i++) entries[i * ENTRY_WORDS] = -1;
  return entries;
}
