// The per-query parser. It fills one reused QueryView straight from the
// Buffer and returns a status code; it never throws on bad input and never
// builds objects that depend on the packet. Every read is preceded by a bounds
// check, so malformed input is found by comparison, not by catching.

import {
  EDNS_OPTION_COOKIE, EDNS_OPTION_ECS, EDNS_OPTION_NSID, FAMILY_IPV4, FAMILY_IPV6,
  MAX_NAME_WIRE_LENGTH, TYPE_OPT,
} from './constants.ts';
import { hashSuffixes } from './name.ts';

/** The query is well formed; answer it. */
export const PARSE_OK = 0;
/** Reply FORMERR (header and, when it could be read, the question). */
export const PARSE_FORMERR = 1;
/** Reply NOTIMP with an empty body (unknown opcode). */
export const PARSE_NOTIMP = 4;
/** Reply BADVERS in an OPT record (EDNS version above 0). */
export const PARSE_BADVERS = 16;
/** Send nothing: too short to carry an ID, or a response (QR=1) that must never be answered. */
export const PARSE_DROP = -1;

export type ParseStatus = typeof PARSE_OK | typeof PARSE_FORMERR | typeof PARSE_NOTIMP | typeof PARSE_BADVERS | typeof PARSE_DROP;

const MAX_LABELS = 128;
/** Bound on records read from the answer/authority/additional sections of a query. */
const MAX_QUERY_RECORDS = 64;

export class QueryView {
  id = 0;
  flags = 0;
  opcode = 0;
  /** Offset just past the question (qname, qtype, qclass); 12 when there is none. */
  questionEnd = 12;
  hasQuestion = false;
  qtype = 0;
  qclass = 0;
  /** Lower-cased wire qname, for lookups; the original bytes stay in the packet for the echo. */
  readonly key = new Uint8Array(MAX_NAME_WIRE_LENGTH + 1);
  keyLength = 0;
  readonly labelOffsets = new Uint8Array(MAX_LABELS);
  labelCount = 0;
  /** suffixHashes[i]: hash of the name from label i on (see name.ts hashSuffixes). */
  readonly suffixHashes = new Int32Array(MAX_LABELS + 1);

  hasEdns = false;
  ednsVersion = 0;
  ednsUdpSize = 0;
  dnssecOk = false;
  nsidRequested = false;

  ecsPresent = false;
  ecsFamily = 0;
  ecsSourcePrefix = 0;
  /** ECS address, zero-padded to 16 bytes (IPv4 uses the first 4). */
  readonly ecsAddress = new Uint8Array(16);

  cookiePresent = false;
  /** Client cookie (8 bytes) and the length of the whole COOKIE option payload. */
  readonly clientCookie = new Uint8Array(8);
  cookieLength = 0;

  reset(): void {
    this.id = 0;
    this.flags = 0;
    this.opcode = 0;
    this.questionEnd = 12;
    this.hasQuestion = false;
    this.qtype = 0;
    this.qclass = 0;
    this.keyLength = 0;
    this.labelCount = 0;
    this.hasEdns = false;
    this.ednsVersion = 0;
    this.ednsUdpSize = 0;
    this.dnssecOk = false;
    this.nsidRequested = false;
    this.ecsPresent = false;
    this.ecsFamily = 0;
    this.ecsSourcePrefix = 0;
    this.cookiePresent = false;
    this.cookieLength = 0;
  }

  get recursionDesired(): boolean {
    return (this.flags & 0x0100) !== 0;
  }
}

/**
 * Skips one name in a section after the question. Pointers are not followed
 * (we never need the name) but must point backwards into an earlier part of
 * the message. Returns the offset after the name, or -1 when malformed.
 */
function skipName(buf: Uint8Array, offset: number, end: number): number {
  let total = 0;
  const start = offset;
  while (offset < end) {
    const len = buf[offset];
    if (len === 0) return offset + 1;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (offset + 1 >= end) return -1;
      const target = ((len & 0x3f) << 8) | buf[offset + 1];
      if (target < 12 || target >= start) return -1;
      return offset + 2;
    }
    if (kind !== 0) return -1;
    total += len + 1;
    if (total > MAX_NAME_WIRE_LENGTH - 1) return -1;
    offset += len + 1;
  }
  return -1;
}

/**
 * Parses `buf[0..length)` into `view`. The caller answers according to the
 * status; on PARSE_FORMERR the view still holds the ID, flags and, where it
 * could be read, the question, so the error reply can echo them.
 */
export function parseQuery(buf: Uint8Array, length: number, view: QueryView): ParseStatus {
  view.reset();
  if (length < 12) return PARSE_DROP;
  const flags = (buf[2] << 8) | buf[3];
  view.id = (buf[0] << 8) | buf[1];
  view.flags = flags;
  if ((flags & 0x8000) !== 0) return PARSE_DROP; // a response: never answer (no loops)
  view.opcode = (flags >> 11) & 0x0f;
  const status = parseSections(buf, length, view);
  // Other opcodes are not implemented, but their OPT (when it could be read)
  // still goes into the reply: a NOTIMP without one reads as "no EDNS here".
  return view.opcode === 0 ? status : PARSE_NOTIMP;
}

/**
 * Question, answer, authority and additional sections, after the header.
 * Longer than a screen on purpose: it is one pass over the packet on the fast
 * path, the cursor a local and every exit a status code; split into calls it
 * would carry the offset and the status through each of them.
 */
function parseSections(buf: Uint8Array, length: number, view: QueryView): ParseStatus {
  const qdcount = (buf[4] << 8) | buf[5];
  const ancount = (buf[6] << 8) | buf[7];
  const nscount = (buf[8] << 8) | buf[9];
  const arcount = (buf[10] << 8) | buf[11];
  if (qdcount > 1) return PARSE_FORMERR;

  let offset = 12;
  if (qdcount === 1) {
    // The question name: no compression is possible (nothing precedes it).
    const key = view.key;
    let keyLen = 0;
    let labels = 0;
    for (;;) {
      if (offset >= length) return PARSE_FORMERR;
      const len = buf[offset];
      if (len === 0) {
        key[keyLen++] = 0;
        offset++;
        break;
      }
      if ((len & 0xc0) !== 0) return PARSE_FORMERR; // pointer or reserved label type
      if (keyLen + len + 2 > MAX_NAME_WIRE_LENGTH || labels >= MAX_LABELS) return PARSE_FORMERR;
      if (offset + len >= length) return PARSE_FORMERR;
      view.labelOffsets[labels++] = keyLen;
      key[keyLen++] = len;
      for (let i = 1; i <= len; i++) {
        const c = buf[offset + i];
        key[keyLen++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
      offset += len + 1;
    }
    if (offset + 4 > length) return PARSE_FORMERR;
    view.keyLength = keyLen;
    view.labelCount = labels;
    view.qtype = (buf[offset] << 8) | buf[offset + 1];
    view.qclass = (buf[offset + 2] << 8) | buf[offset + 3];
    offset += 4;
    view.questionEnd = offset;
    view.hasQuestion = true;
    hashSuffixes(key, view.labelOffsets, labels, view.suffixHashes);
  }

  // Checked after the question so that the FORMERR reply can still echo it.
  if (ancount + nscount + arcount > MAX_QUERY_RECORDS) return PARSE_FORMERR;

  // Answer and authority sections must hold well-formed records and no OPT.
  for (let r = 0; r < ancount + nscount; r++) {
    offset = skipName(buf, offset, length);
    if (offset < 0 || offset + 10 > length) return PARSE_FORMERR;
    const type = (buf[offset] << 8) | buf[offset + 1];
    if (type === TYPE_OPT) return PARSE_FORMERR;
    const rdlen = (buf[offset + 8] << 8) | buf[offset + 9];
    offset += 10 + rdlen;
    if (offset > length) return PARSE_FORMERR;
  }

  let badVersion = false;
  for (let r = 0; r < arcount; r++) {
    const nameStart = offset;
    offset = skipName(buf, offset, length);
    if (offset < 0 || offset + 10 > length) return PARSE_FORMERR;
    const type = (buf[offset] << 8) | buf[offset + 1];
    const rdlen = (buf[offset + 8] << 8) | buf[offset + 9];
    const rdataStart = offset + 10;
    const rdataEnd = rdataStart + rdlen;
    if (rdataEnd > length) return PARSE_FORMERR;
    if (type === TYPE_OPT) {
      if (view.hasEdns) return PARSE_FORMERR; // two OPT records (RFC 6891 §6.1.1)
      if (offset - nameStart !== 1 || buf[nameStart] !== 0) return PARSE_FORMERR; // owner must be root
      view.hasEdns = true;
      const udpSize = (buf[offset + 2] << 8) | buf[offset + 3];
      view.ednsUdpSize = udpSize < 512 ? 512 : udpSize;
      view.ednsVersion = buf[offset + 5];
      view.dnssecOk = (buf[offset + 6] & 0x80) !== 0;
      if (view.ednsVersion !== 0) badVersion = true;
      const status = parseOptions(buf, rdataStart, rdataEnd, view);
      if (status !== PARSE_OK) return status;
    }
    offset = rdataEnd;
  }
  if (offset !== length) return PARSE_FORMERR; // trailing bytes after the last record
  if (badVersion) return PARSE_BADVERS;
  if (!view.hasQuestion && !view.cookiePresent) return PARSE_FORMERR; // QDCOUNT 0 is only for cookie refresh (RFC 7873 §5.4)
  return PARSE_OK;
}

function parseOptions(buf: Uint8Array, offset: number, end: number, view: QueryView): ParseStatus {
  while (offset < end) {
    if (offset + 4 > end) return PARSE_FORMERR; // an option fragment
    const code = (buf[offset] << 8) | buf[offset + 1];
    const len = (buf[offset + 2] << 8) | buf[offset + 3];
    const dataStart = offset + 4;
    const dataEnd = dataStart + len;
    if (dataEnd > end) return PARSE_FORMERR; // option overruns RDATA
    if (code === EDNS_OPTION_ECS) {
      if (view.ecsPresent) return PARSE_FORMERR;
      if (!parseEcs(buf, dataStart, len, view)) return PARSE_FORMERR;
    } else if (code === EDNS_OPTION_NSID) {
      view.nsidRequested = true;
    } else if (code === EDNS_OPTION_COOKIE) {
      // Client cookie alone (8), or with a server cookie of 8 to 32 bytes (RFC 7873 §4).
      if (view.cookiePresent) return PARSE_FORMERR;
      if (len !== 8 && (len < 16 || len > 40)) return PARSE_FORMERR;
      view.cookiePresent = true;
      view.cookieLength = len;
      for (let i = 0; i < 8; i++) view.clientCookie[i] = buf[dataStart + i];
    }
    // Any other option is ignored (RFC 6891 §6.1.2).
    offset = dataEnd;
  }
  return PARSE_OK;
}

/** RFC 7871 §6 and §7.1.1: any inconsistency is FORMERR. */
function parseEcs(buf: Uint8Array, offset: number, len: number, view: QueryView): boolean {
  if (len < 4) return false;
  const family = (buf[offset] << 8) | buf[offset + 1];
  const source = buf[offset + 2];
  const scope = buf[offset + 3];
  const maxBits = family === FAMILY_IPV4 ? 32 : family === FAMILY_IPV6 ? 128 : -1;
  if (maxBits < 0 || source > maxBits) return false;
  if (scope !== 0) return false;
  const addressLength = (source + 7) >> 3;
  if (len - 4 !== addressLength) return false;
  const address = view.ecsAddress;
  // Element loops, not fill()/set(): per query, the builtins' call overhead outweighs 16 octets.
  for (let i = 0; i < addressLength; i++) address[i] = buf[offset + 4 + i];
  for (let i = addressLength; i < 16; i++) address[i] = 0;
  // Bits beyond the source prefix must be zero.
  const spare = (addressLength << 3) - source;
  if (spare > 0 && (address[addressLength - 1] & ((1 << spare) - 1)) !== 0) return false;
  view.ecsPresent = true;
  view.ecsFamily = family;
  view.ecsSourcePrefix = source;
  return true;
}

