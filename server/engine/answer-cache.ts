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
// on a hit (requests, responses, ECS use, decision cache, steering decisions,
// the RRL key), so metrics and rate limiting see every query.
//
// Two-way set-associative, least recently used out, fixed memory allocated
// once per worker (the default 16,384 entries: about 11 MiB), so a flood of
// distinct queries evicts entries but never grows the heap.

/** Longest query (octets after the ID) kept; a longer one is answered without the cache. */
const ANSWER_CACHE_QUERY_SLOT = 126;
/** Longest reply kept; a longer one (large signed answers) is answered without the cache. */
const ANSWER_CACHE_REPLY_SLOT = 512;
/** Default entries per DNS worker. */
const ANSWER_CACHE_DEFAULT_ENTRIES = 16_384; // as settings.ts answer_cache_entries

const WAYS = 2;

// Words per entry in `meta`.
const M_HASH = 0;
const M_QUERY_LENGTH = 1; // octets after the ID; 0 = empty
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
const M_FLAGS = 12;
const META_WORDS = 16;

/** ECS outcome of a cached query, for the ECS counters. */
export const ECS_NONE = 0;
export const ECS_USED = 1;
export const ECS_FALLBACK = 2;

const FLAG_DECISION_CACHE = 1;

/** What a query counted besides its reply, stored with it and replayed on a hit. */
export class ReplyFacts {
  qtype = 0;
  rcode = 0;
  /** RRL response key (engine.ts). */
  responseKey = 0;
  /** ECS_NONE, ECS_USED or ECS_FALLBACK. */
  ecs = ECS_NONE;
  /** The steering decision came from the decision cache (counted as a decision-cache hit). */
  decisionCached = false;
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
    this.decisionCached = false;
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
  private readonly meta: Int32Array;
  private readonly queries: Uint8Array;
  private readonly replies: Uint8Array;
  private readonly resolvers: string[];
  /** Per set: the way used most recently (a miss replaces the other). */
  private readonly recent: Uint8Array;
  private generation = 1;
  /** Set of the last answer() that missed (-1: not storable), and the query's hash. */
  private missSet = -1;
  private missHash = 0;
  /** The resolver of the last answer() and its hash: queries come from few resolvers, so it is hashed only when it changes. */
  private lastResolver = '';
  private lastResolverHash = 0x811c9dc5;
  /** Word views of the reply arena and of the last output buffer, for copying a reply four octets at a time. */
  private readonly replyWords: Int32Array;
  private outBytes: Uint8Array | null = null;
  private outWords: Int32Array | null = null;
  /** Facts of the last hit, read by the caller. */
  readonly facts = new ReplyFacts();
  hits = 0;
  misses = 0;

  /** `entries` is rounded down to a power of two, at least 2. */
  constructor(entries = ANSWER_CACHE_DEFAULT_ENTRIES) {
    let size = WAYS;
    while (size * 2 <= entries) size *= 2;
    this.entries = size;
    this.sets = size / WAYS;
    this.setShift = 32 - Math.log2(this.sets);
    this.meta = new Int32Array(size * META_WORDS);
    this.queries = new Uint8Array(size * ANSWER_CACHE_QUERY_SLOT);
    this.replies = new Uint8Array(size * ANSWER_CACHE_REPLY_SLOT);
    this.replyWords = new Int32Array(this.replies.buffer);
    this.resolvers = new Array<string>(size).fill('');
    this.recent = new Uint8Array(this.sets);
  }

  /** Forgets every entry (a new snapshot: every reply may differ). */
  invalidate(): void {
    this.generation = (this.generation + 1) | 0;
    if (this.generation === 0) {
      this.generation = 1;
      this.meta.fill(0);
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
    if (length < 12 || queryLength > ANSWER_CACHE_QUERY_SLOT) {
      this.missSet = -1;
      return 0;
    }
    // Four octets per multiply: the hash only spreads entries over sets, the comparison decides.
    let h = Math.imul(this.resolverHash(resolver) ^ queryLength, 0x01000193);
    let i = 2;
    for (; i + 3 < length; i += 4) h = Math.imul(h ^ (query[i] | (query[i + 1] << 8) | (query[i + 2] << 16) | (query[i + 3] << 24)), 0x01000193);
    for (; i < length; i++) h = Math.imul(h ^ query[i], 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    const set = (h >>> this.setShift) & (this.sets - 1); // the high bits: FNV's low bits spread poorly
    const first = set * WAYS;
    for (let way = 0; way < WAYS; way++) {
      const entry = first + way;
      if (this.matches(entry, h, query, queryLength, resolver, epoch)) {
        this.recent[set] = way;
        this.hits++;
        return this.replay(entry, query, out);
      }
    }
    this.misses++;
    this.missSet = set;
    this.missHash = h;
    return 0;
  }

  /**
   * Stores `reply[0, size)` as the answer to the query of the last answer()
   * that missed, in place of its set's least recently used entry.
   */
  store(query: Uint8Array, length: number, resolver: string, epoch: number, reply: Uint8Array, size: number, facts: ReplyFacts): void {
    const set = this.missSet;
    this.missSet = -1;
    if (set < 0 || size > ANSWER_CACHE_REPLY_SLOT || size < 12) return;
    const way = 1 - this.recent[set];
    this.recent[set] = way;
    const entry = set * WAYS + way;
    const meta = this.meta;
    const m = entry * META_WORDS;
    const queryLength = length - 2;
    meta[m + M_HASH] = this.missHash;
    meta[m + M_QUERY_LENGTH] = queryLength;
    meta[m + M_GENERATION] = this.generation;
    meta[m + M_EPOCH] = epoch;
    meta[m + M_REPLY_LENGTH] = size;
    meta[m + M_QTYPE] = facts.qtype;
    meta[m + M_RCODE] = facts.rcode;
    meta[m + M_RESPONSE_KEY] = facts.responseKey;
    meta[m + M_ECS] = facts.ecs;
    meta[m + M_DECISION_SLOT] = facts.decisionSlot;
    meta[m + M_OUTCOME_SLOT] = facts.outcomeSlot;
    meta[m + M_QUESTION_END] = facts.questionEnd;
    meta[m + M_FLAGS] = facts.decisionCached ? FLAG_DECISION_CACHE : 0;
    const queries = this.queries;
    const q = entry * ANSWER_CACHE_QUERY_SLOT;
    for (let i = 0; i < queryLength; i++) queries[q + i] = query[i + 2];
    const replies = this.replies;
    const r = entry * ANSWER_CACHE_REPLY_SLOT;
    for (let i = 0; i < size; i++) replies[r + i] = reply[i];
    this.resolvers[entry] = resolver;
  }

  private matches(entry: number, hash: number, query: Uint8Array, queryLength: number, resolver: string, epoch: number): boolean {
    const meta = this.meta;
    const m = entry * META_WORDS;
    if (meta[m + M_HASH] !== hash || meta[m + M_QUERY_LENGTH] !== queryLength) return false;
    if (meta[m + M_GENERATION] !== this.generation || meta[m + M_EPOCH] !== epoch) return false;
    const queries = this.queries;
    const q = entry * ANSWER_CACHE_QUERY_SLOT;
    for (let i = 0; i < queryLength; i++) if (queries[q + i] !== query[i + 2]) return false;
    return this.resolvers[entry] === resolver;
  }

  private replay(entry: number, query: Uint8Array, out: Uint8Array): number {
    const meta = this.meta;
    const m = entry * META_WORDS;
    const size = meta[m + M_REPLY_LENGTH];
    this.copyOut(entry * ANSWER_CACHE_REPLY_SLOT, size, out);
    out[0] = query[0];
    out[1] = query[1];
    const facts = this.facts;
    facts.qtype = meta[m + M_QTYPE];
    facts.rcode = meta[m + M_RCODE];
    facts.responseKey = meta[m + M_RESPONSE_KEY];
    facts.ecs = meta[m + M_ECS];
    facts.decisionSlot = meta[m + M_DECISION_SLOT];
    facts.outcomeSlot = meta[m + M_OUTCOME_SLOT];
    facts.questionEnd = meta[m + M_QUESTION_END];
    facts.decisionCached = (meta[m + M_FLAGS] & FLAG_DECISION_CACHE) !== 0;
    return size;
  }

  private resolverHash(resolver: string): number {
    if (resolver !== this.lastResolver) {
      let h = 0x811c9dc5;
      for (let i = 0; i < resolver.length; i++) h = Math.imul(h ^ resolver.charCodeAt(i), 0x01000193);
      this.lastResolver = resolver;
      this.lastResolverHash = h;
    }
    return this.lastResolverHash;
  }

  /** Copies `size` octets of the arena from `start` (a multiple of four) to the start of `out`, by words when `out` allows. */
  private copyOut(start: number, size: number, out: Uint8Array): void {
    if (out !== this.outBytes) {
      this.outBytes = out;
      this.outWords = out.byteOffset % 4 === 0 ? new Int32Array(out.buffer, out.byteOffset, out.length >> 2) : null;
    }
    const words = this.outWords;
    if (words !== null && size + 3 <= out.length) {
      const from = start >> 2;
      const replyWords = this.replyWords;
      for (let w = 0, n = (size + 3) >> 2; w < n; w++) words[w] = replyWords[from + w];
      return;
    }
    const replies = this.replies;
    for (let i = 0; i < size; i++) out[i] = replies[start + i];
  }
}
