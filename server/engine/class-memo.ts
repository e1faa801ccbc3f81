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
// Two-way set-associative, least recently used out, 65,536 entries: a network
// is evicted only when two others in its set were used since. With 16,384
// direct-mapped entries, one in five of the 3,500 networks the benchmark
// cycles through collided and missed every time; now about one in two
// hundred does. The table's size costs memory, not cache: only the sets in
// use are touched. Per worker and per
// snapshot (a new policy set or GeoIP database makes a new one), so entries
// never outlive the tables they were read from; health does not enter a class.

import type { ClassResult } from '../geo/types.ts';

/** Entries, a power of two: 65,536 networks in 2 MiB. */
export const CLASS_MEMO_ENTRIES = 65_536;
/** Words per entry: tag, the address as four words, class, scope length, padding; 32 octets. */
const ENTRY_WORDS = 8;
/** Entries per set; a set is 64 octets, so a probe touches one cache line (two, when the buffer is not 64-octet aligned). */
const WAYS = 2;
const SETS = CLASS_MEMO_ENTRIES / WAYS;

export class ClassMemo {
  /** Per entry: tag (policy, variant, family, prefix length; -1 = empty), address words, class, scope length. */
  private readonly entries = createEntries();
  private setIndex = 0;
  private tag = 0;
  private w0 = 0;
  private w1 = 0;
  private w2 = 0;
  private w3 = 0;

  /**
   * Looks up the network `words` (the 16 address bytes read as four 32-bit
   * words, bits past `bits` zero) for trie `variant` of policy `policy`.
   * On a hit fills `result` and returns true; on a miss remembers the set
   * so that store() can fill it.
   */
  find(policy: number, variant: number, family: 4 | 6, bits: number, words: Int32Array, result: ClassResult): boolean {
    if (variant > 0xff || policy > 0x3fff) {
      this.setIndex = -1; // beyond the tag's fields: not memoized
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
    const set = (h ^ (h >>> 15)) & (SETS - 1);
    const entries = this.entries;
    const k = set * WAYS * ENTRY_WORDS;
    if (entries[k] === tag && entries[k + 1] === w0 && entries[k + 2] === w1 && entries[k + 3] === w2 && entries[k + 4] === w3) {
      result.class = entries[k + 5];
      result.scopeLength = entries[k + 6];
      return true;
    }
    const k1 = k + ENTRY_WORDS;
    if (entries[k1] === tag && entries[k1 + 1] === w0 && entries[k1 + 2] === w1 && entries[k1 + 3] === w2 && entries[k1 + 4] === w3) {
      result.class = entries[k1 + 5];
      result.scopeLength = entries[k1 + 6];
      // Most recently used first: the other entry is the one a miss replaces.
      for (let i = 0; i < 7; i++) entries[k1 + i] = entries[k + i];
      entries[k] = tag;
      entries[k + 1] = w0;
      entries[k + 2] = w1;
      entries[k + 3] = w2;
      entries[k + 4] = w3;
      entries[k + 5] = result.class;
      entries[k + 6] = result.scopeLength;
      return true;
    }
    this.setIndex = set;
    this.tag = tag;
    this.w0 = w0;
    this.w1 = w1;
    this.w2 = w2;
    this.w3 = w3;
    return false;
  }

  /** Stores the result of the walk for the network of the last find() that missed, first in its set; the set's least recently used entry goes. */
  store(result: ClassResult): void {
    if (this.setIndex < 0) return;
    const k = this.setIndex * WAYS * ENTRY_WORDS;
    const entries = this.entries;
    for (let i = 0; i < 7; i++) entries[k + ENTRY_WORDS + i] = entries[k + i];
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
