// Whole UDP replies kept by the query that asked for them, so that a query
// seen before costs a hash, a comparison and a copy instead of the parse, the
// name lookup, the steering decision and the write. PowerDNS's packet cache
// works the same way.
//
// Why: on a 2-core PoP the kernel's share of a query is fixed, and what is
// left to win is the JavaScript of the answer path, about a microsecond per
// query (README "Throughput that holds"). Resolvers repeat themselves: the
// same resolver asks for the same name with the same ECS network every time
// its cached answer expires.
//
// The key is everything the reply depends on:
//   - the query's bytes after the ID (flags, question, EDNS options with the
//     ECS network, in the case the resolver sent them), compared exactly;
//   - the resolver's address (ECS trust, resolver CIDR rules, and the
//     location itself when there is no ECS);
//   - the generation: a new snapshot (policy set, GeoIP database, zones,
//     signatures) starts a new one;
//   - the health epoch (health/table.ts): any health change moves it.
// Only replies the engine marks cacheable are stored: no cookie (the server
// cookie carries a time), not truncated, and for steered names only
// decisions that the decision cache would also reuse (not weighted or
// capacity-shifted per client network, no TTL derived from health), so a hit
// sends the bytes the engine would have written, with this query's ID.
//
// What the query would have counted is stored beside the reply and replayed
// on a hit (requests, responses, ECS use, steering decisions, the RRL key),
// so metrics and rate limiting see every query. The decision cache is not
// counted: a hit never looks it up.
//
// Four-way set-associative, least recently used out, fixed memory allocated
// once per worker (the default 16,384 entries: 12 MiB), so a flood of
// distinct queries evicts entries but never grows the heap. Each entry is one
// contiguous 768-octet slot (its facts, then its key, then its reply) and the
// ways of a set are neighbours: under load the kernel's network stack
// evicts this table from the CPU caches between batches, and a hit then costs
// a few adjacent cache lines that the hardware prefetches together, where
// separate tables for keys, replies and facts cost a miss each. Four ways,
// not two: with 3,500 repeating networks in 8,192 two-way sets, one query in
// fifteen shared its set with two others and missed every time; in 4,096
// four-way sets about one in a hundred does.

import { fnv1aStep, fnv1aString, FNV_OFFSET, mix32 } from '../lib/hash.ts';
import { copyWords, wordView } from '../lib/words.ts';

/** Default entries per DNS worker. */
const ANSWER_CACHE_DEFAULT_ENTRIES = 16_384; // as settings.ts answer_cache_entries

const WAYS = 4;
/** A fresh set's recency order: ways 0, 1, 2, 3, most recent first, two bits each. */
const FRESH_ORDER = 0b11_10_01_00;

// One entry's slot: facts (16 words), key, reply.
const SLOT = 768;
const KEY_AT = 64;
/** Longest key: the query after its ID, then the resolver's address as text (at most 45 characters). */
const KEY_SLOT = 192;
const REPLY_AT = KEY_AT + KEY_SLOT;
/** Longest reply kept; a longer one (large signed answers) is answered without the cache. */
const REPLY_SLOT = SLOT - REPLY_AT;
/** Longest resolver address text that fits a key (IPv6 with an embedded IPv4 and a zone is longer; then no cache). */
const MAX_RESOLVER_TEXT = 46;
/** Longest query (octets after the ID) kept; a longer one is answered without the cache. */
const MAX_QUERY_KEY = KEY_SLOT - MAX_RESOLVER_TEXT;

// Words of an entry's facts, from the slot's start.
const M_HASH = 0;
const M_KEY_LENGTH = 1; // octets of the key; 0 = empty
const M_GENERATION = 2;
const M_EPOCH = 3;
const M_REPLY_LENGTH = 4;
const M_QTYPE = 5;
const M_RCODE = 6;
const M_RESPONSE_KEY = 7;
const M_ECS = 8;
const M_DECISION_SLOT = 9;
const M_OUTCOME_SLOT = 10;
const M_QUESTION_END = 11;
/** In the first way of a set: its ways from the most to the least recently used, two bits each (the last is replaced). */
const M_ORDER = 12;
const SLOT_WORDS = SLOT / 4;

/** ECS outcome of a cached query, for the ECS counters. */
export const ECS_NONE = 0;
export const ECS_USED = 1;
export const ECS_FALLBACK = 2;


/** What a query counted besides its reply, stored with it and replayed on a hit. */
export class ReplyFacts {
  qtype = 0;
  rcode = 0;
  /** RRL response key (engine.ts). */
  responseKey = 0;
  /** ECS_NONE, ECS_USED or ECS_FALLBACK. */
  ecs = ECS_NONE;
  /** Steering decision counter slot and outcome slot (decision-counters.ts), -1 when none. */
  decisionSlot = -1;
  outcomeSlot = -1;
  /** Offset past the question: the length of a truncated (RRL slip) reply. */
  questionEnd = 12;

  reset(): void {
    this.qtype = 0;
    this.rcode = 0;
    this.responseKey = 0;
    this.ecs = ECS_NONE;
    this.decisionSlot = -1;
    this.outcomeSlot = -1;
    this.questionEnd = 12;
  }
}

export class AnswerCache {
  readonly entries: number;
  private readonly sets: number;
  /** 32 − log2(sets): a set index is the hash's high bits. */
  private readonly setShift: number;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  private generation = 1;
  /** Set of the last answer() that missed (-1: not storable), and its key's hash and length. */
  private missSet = -1;
  private missHash = 0;
  private missKeyLength = 0;
  /** The resolver of the last answer() and its hash: queries come from few resolvers, so it is hashed only when it changes. */
  private lastResolver = '';
  private lastResolverHash = FNV_OFFSET;
  /** The last output buffer and its word view (lib/words.ts), for copying a reply four octets at a time. */
  private outBytes: Uint8Array | null = null;
  private outWords: Int32Array | null = null;
  /** Facts of the last hit, read by the caller. */
  readonly facts = new ReplyFacts();
  hits = 0;
  misses = 0;

  /** `entries` is rounded down to a power of two, at least 4 (one set). */
  constructor(entries = ANSWER_CACHE_DEFAULT_ENTRIES) {
    let size = WAYS;
    while (size * 2 <= entries) size *= 2;
    this.entries = size;
    this.sets = size / WAYS;
    this.setShift = 32 - Math.log2(this.sets);
    const arena = new ArrayBuffer(size * SLOT);
    this.bytes = new Uint8Array(arena);
    this.words = new Int32Array(arena);
  }

  /** Forgets every entry (a new snapshot: every reply may differ). */
  invalidate(): void {
    this.generation = (this.generation + 1) | 0;
    if (this.generation === 0) {
      this.generation = 1;
      for (let e = 0; e < this.entries; e++) this.words[e * SLOT_WORDS + M_KEY_LENGTH] = 0;
    }
  }

  /**
   * Looks up `query[0, length)` from `resolver` under health epoch `epoch`.
   * On a hit copies the reply into `out` with the query's ID, fills `facts`
   * and returns the reply's length; on a miss returns 0 and remembers where
   * store() puts the reply.
   */
  answer(query: Uint8Array, length: number, resolver: string, epoch: number, out: Uint8Array): number {
    const queryLength = length - 2;
    if (length < 12 || queryLength > MAX_QUERY_KEY || resolver.length > MAX_RESOLVER_TEXT) {
      this.missSet = -1;
      return 0;
    }
    const keyLength = queryLength + resolver.length;
    // Four octets per multiply: the hash only spreads entries over sets, the comparison decides.
    let h = fnv1aStep(this.resolverHash(resolver), keyLength);
    let i = 2;
    for (; i + 3 < length; i += 4) h = fnv1aStep(h, query[i] | (query[i + 1] << 8) | (query[i + 2] << 16) | (query[i + 3] << 24));
    for (; i < length; i++) h = fnv1aStep(h, query[i]);
    h = mix32(h) | 0;
    const set = (h >>> this.setShift) & (this.sets - 1); // the high bits: FNV's low bits spread poorly
    const first = set * WAYS;
    for (let way = 0; way < WAYS; way++) {
      const entry = first + way;
      if (this.matches(entry, h, keyLength, query, queryLength, resolver, epoch)) {
        this.touch(first, way);
        this.hits++;
        return this.replay(entry, query, out);
      }
    }
    this.misses++;
    this.missSet = set;
    this.missHash = h;
    this.missKeyLength = keyLength;
    return 0;
  }

  /**
   * Stores `reply[0, size)` as the answer to the query of the last answer()
   * that missed, in place of its set's least recently used entry.
   */
  store(query: Uint8Array, length: number, resolver: string, epoch: number, reply: Uint8Array, size: number, facts: ReplyFacts): void {
    const set = this.missSet;
    this.missSet = -1;
    if (set < 0 || size > REPLY_SLOT || size < 12) return;
    const words = this.words;
    const first = set * WAYS;
    const way = (this.orderOf(first) >>> 6) & 3; // the least recently used
    this.touch(first, way);
    const entry = first + way;
    const m = entry * SLOT_WORDS;
    words[m + M_HASH] = this.missHash;
    words[m + M_KEY_LENGTH] = this.missKeyLength;
    words[m + M_GENERATION] = this.generation;
    words[m + M_EPOCH] = epoch;
    words[m + M_REPLY_LENGTH] = size;
    words[m + M_QTYPE] = facts.qtype;
    words[m + M_RCODE] = facts.rcode;
    words[m + M_RESPONSE_KEY] = facts.responseKey;
    words[m + M_ECS] = facts.ecs;
    words[m + M_DECISION_SLOT] = facts.decisionSlot;
    words[m + M_OUTCOME_SLOT] = facts.outcomeSlot;
    words[m + M_QUESTION_END] = facts.questionEnd;
    const bytes = this.bytes;
    const k = entry * SLOT + KEY_AT;
    const queryLength = length - 2;
    for (let i = 0; i < queryLength; i++) bytes[k + i] = query[i + 2];
    for (let i = 0; i < resolver.length; i++) bytes[k + queryLength + i] = resolver.charCodeAt(i);
    const r = entry * SLOT + REPLY_AT;
    for (let i = 0; i < size; i++) bytes[r + i] = reply[i];
  }

  private matches(entry: number, hash: number, keyLength: number, query: Uint8Array, queryLength: number, resolver: string, epoch: number): boolean {
    const words = this.words;
    const m = entry * SLOT_WORDS;
    if (words[m + M_HASH] !== hash || words[m + M_KEY_LENGTH] !== keyLength) return false;
    if (words[m + M_GENERATION] !== this.generation || words[m + M_EPOCH] !== epoch) return false;
    const bytes = this.bytes;
    const k = entry * SLOT + KEY_AT;
    for (let i = 0; i < queryLength; i++) if (bytes[k + i] !== query[i + 2]) return false;
    // Address text is ASCII: one octet per character.
    for (let i = 0; i < resolver.length; i++) if (bytes[k + queryLength + i] !== resolver.charCodeAt(i)) return false;
    return true;
  }

  private replay(entry: number, query: Uint8Array, out: Uint8Array): number {
    const words = this.words;
    const m = entry * SLOT_WORDS;
    const size = words[m + M_REPLY_LENGTH];
    this.copyOut(entry * SLOT + REPLY_AT, size, out);
    out[0] = query[0];
    out[1] = query[1];
    const facts = this.facts;
    facts.qtype = words[m + M_QTYPE];
    facts.rcode = words[m + M_RCODE];
    facts.responseKey = words[m + M_RESPONSE_KEY];
    facts.ecs = words[m + M_ECS];
    facts.decisionSlot = words[m + M_DECISION_SLOT];
    facts.outcomeSlot = words[m + M_OUTCOME_SLOT];
    facts.questionEnd = words[m + M_QUESTION_END];
    return size;
  }

  /** The recency order of the set whose first entry is `first` (a set never touched has FRESH_ORDER). */
  private orderOf(first: number): number {
    const order = this.words[first * SLOT_WORDS + M_ORDER];
    return order === 0 ? FRESH_ORDER : order;
  }

  /** Makes `way` the most recently used of its set. */
  private touch(first: number, way: number): void {
    const order = this.orderOf(first);
    if ((order & 3) === way) return;
    // Remove `way` from the order, shift the ways before it back by one position, put it first.
    let rest = 0;
    let shift = 2;
    for (let position = 0; position < WAYS; position++) {
      const w = (order >>> (2 * position)) & 3;
      if (w === way) continue;
      rest |= w << shift;
      shift += 2;
    }
    this.words[first * SLOT_WORDS + M_ORDER] = rest | way;
  }

  private resolverHash(resolver: string): number {
    if (resolver !== this.lastResolver) {
      this.lastResolver = resolver;
      this.lastResolverHash = fnv1aString(resolver);
    }
    return this.lastResolverHash;
  }

  /** Copies `size` octets of the arena from `start` (a multiple of four) to the start of `out`, by words when `out` allows. */
  private copyOut(start: number, size: number, out: Uint8Array): void {
    if (out !== this.outBytes) {
      this.outBytes = out;
      this.outWords = wordView(out);
    }
    const words = this.outWords;
    if (words !== null && size + 3 <= out.length) {
      copyWords(this.words, start >> 2, words, 0, size);
      return;
    }
    const bytes = this.bytes;
    for (let i = 0; i < size; i++) out[i] = bytes[start + i];
  }
}
