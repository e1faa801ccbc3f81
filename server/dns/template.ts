// A pre-encoded response body: the answer, authority and additional records
// of one (name, type) outcome, built once at load time. Answering copies the
// body after the question; the only per-query fixes are the pointers to the
// zone apex (its offset depends on the query name's length) and, optionally,
// the TTLs.

export interface AnswerTemplate {
  rcode: number;
  authoritative: boolean;
  /** Answer, authority and additional records back to back. */
  body: Uint8Array;
  answerCount: number;
  authorityCount: number;
  additionalCount: number;
  /**
   * Bytes of `body` that must be sent whole: answer and authority, plus the
   * additional section when it carries referral glue. Past this point the
   * additional records are optional and are dropped when they do not fit.
   */
  requiredLength: number;
  /** Offsets in `body` of two-byte compression pointers to the zone apex in the question. */
  apexSlots: Int32Array;
  /** Wire length of the zone apex name; its offset in the question is 12 + qnameLength − apexLength. */
  apexLength: number;
  /** Offsets in `body` of TTL fields that a caller may overwrite per query. */
  ttlSlots: Int32Array;
  /** In a signed zone: the same answer with its RRSIGs (and NSEC proofs), sent when the query has DO=1. */
  signed?: AnswerTemplate;
  /**
   * A steered answer's signed twins, built on first use per steered name (a
   * policy's names share its templates; each name has its own signatures),
   * [0] for the name itself, [1 + gap] for a wildcard expansion in that gap.
   */
  signedAt?: Map<object, AnswerTemplate[]>;
}

const EMPTY = new Uint8Array(0);
const NO_SLOTS = new Int32Array(0);

export function emptyTemplate(rcode: number, authoritative: boolean): AnswerTemplate {
  return {
    rcode, authoritative, body: EMPTY, answerCount: 0, authorityCount: 0, additionalCount: 0,
    requiredLength: 0, apexSlots: NO_SLOTS, apexLength: 0, ttlSlots: NO_SLOTS,
  };
}
