// The DO=1 twin of a pre-encoded answer: the same records, each RRset
// followed by its RRSIG, plus denial records (NSEC) in the authority section.
// The unsigned template is read back record by record (its names hold only
// labels, the 0xC00C pointer to the query name and 0xC000 placeholders for
// the zone apex, builder.ts), so every template of the server, zone or
// steered, gets its twin from one function without knowing how it was built.

import { CLASS_IN, TYPE_CNAME, TYPE_MX, TYPE_NS, TYPE_SOA, TYPE_SRV } from '../dns/constants.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import { TYPE_RRSIG, type CanonicalRRset } from './sign.ts';

/** A record to add to the authority section (an NSEC), owner written whole. */
export interface ExtraRecord {
  owner: Uint8Array;
  type: number;
  ttl: number;
  rdata: Uint8Array;
}

/**
 * Decides an RRset's signature: its RRSIG RDATA, or null to leave it unsigned
 * (a delegation's NS, glue). `section` 0 answer, 1 authority, 2 additional.
 */
export type SignatureFor = (rrset: CanonicalRRset, section: number) => Uint8Array | readonly Uint8Array[] | null;

/** A SignatureFor answer as a list (a rollover's key sets carry one RRSIG per published key). */
function asList(rrsigs: Uint8Array | readonly Uint8Array[] | null): readonly Uint8Array[] {
  if (rrsigs === null) return [];
  return rrsigs instanceof Uint8Array ? [rrsigs] : rrsigs;
}

interface ParsedRecord {
  section: number;
  start: number;
  ownerEnd: number;
  end: number;
  owner: Uint8Array;
  type: number;
  klass: number;
  ttl: number;
  ttlPatched: boolean;
  canonical: Uint8Array;
}

class Reader {
  readonly body: Uint8Array;
  readonly qname: Uint8Array;
  readonly apex: Uint8Array;

  constructor(body: Uint8Array, qname: Uint8Array, apex: Uint8Array) {
    this.body = body;
    this.qname = qname;
    this.apex = apex;
  }

  /** The name at `at`, lower-cased and whole, and the offset after it. */
  name(at: number): { name: Uint8Array; end: number } {
    const parts: number[] = [];
    for (;;) {
      const len = this.body[at];
      if (len >= 0xc0) {
        const pointer = ((len & 0x3f) << 8) | this.body[at + 1];
        const tail = pointer === 12 ? this.qname : pointer === 0 ? this.apex : null;
        if (tail === null) throw new Error(`unexpected compression pointer ${pointer} in a template`);
        return { name: Uint8Array.from([...parts, ...tail]), end: at + 2 };
      }
      if (len === 0) return { name: Uint8Array.from([...parts, 0]), end: at + 1 };
      parts.push(len);
      for (let i = 1; i <= len; i++) {
        const c = this.body[at + i];
        parts.push(c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
      }
      at += len + 1;
    }
  }

  /** RDATA in canonical form: embedded names of the RFC 4034 §6.2 types whole and lower-cased. */
  canonicalRdata(type: number, start: number, end: number): Uint8Array {
    const prefix = type === TYPE_MX ? 2 : type === TYPE_SRV ? 6 : 0;
    if (type !== TYPE_NS && type !== TYPE_CNAME && type !== TYPE_MX && type !== TYPE_SRV && type !== TYPE_SOA) return this.body.slice(start, end);
    const names = type === TYPE_SOA ? 2 : 1;
    const out: number[] = [...this.body.subarray(start, start + prefix)];
    let at = start + prefix;
    for (let n = 0; n < names; n++) {
      const { name, end: after } = this.name(at);
      out.push(...name);
      at = after;
    }
    out.push(...this.body.subarray(at, end));
    return Uint8Array.from(out);
  }
}

function parseRecords(template: AnswerTemplate, qname: Uint8Array, apex: Uint8Array): ParsedRecord[] {
  const reader = new Reader(template.body, qname, apex);
  const ttlSlots = new Set(template.ttlSlots);
  const counts = [template.answerCount, template.authorityCount, template.additionalCount];
  const records: ParsedRecord[] = [];
  let at = 0;
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < counts[section]; i++) {
      const start = at;
      const { name: owner, end: ownerEnd } = reader.name(at);
      const body = template.body;
      const type = (body[ownerEnd] << 8) | body[ownerEnd + 1];
      const klass = (body[ownerEnd + 2] << 8) | body[ownerEnd + 3];
      const ttl = ((body[ownerEnd + 4] << 24) | (body[ownerEnd + 5] << 16) | (body[ownerEnd + 6] << 8) | body[ownerEnd + 7]) >>> 0;
      const rdlen = (body[ownerEnd + 8] << 8) | body[ownerEnd + 9];
      const rdataStart = ownerEnd + 10;
      at = rdataStart + rdlen;
      records.push({
        section, start, ownerEnd, end: at, owner, type, klass, ttl, ttlPatched: ttlSlots.has(ownerEnd + 4),
        canonical: reader.canonicalRdata(type, rdataStart, at),
      });
    }
  }
  return records;
}

function sameOwner(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Consecutive records of one section with the same owner and type: the RRsets of a template. */
function groupRRsets(records: ParsedRecord[]): ParsedRecord[][] {
  const groups: ParsedRecord[][] = [];
  for (const r of records) {
    const last = groups[groups.length - 1];
    if (last && last[0].section === r.section && last[0].type === r.type && sameOwner(last[0].owner, r.owner)) last.push(r);
    else groups.push([r]);
  }
  return groups;
}

/** Output of a signed template under construction, with its slot lists. */
class Out {
  bytes: number[] = [];
  apexSlots: number[] = [];
  ttlSlots: number[] = [];
  counts = [0, 0, 0];

  /** Copies bytes [from, to) of the source body, carrying the apex and TTL slots inside them. */
  copy(template: AnswerTemplate, from: number, to: number): void {
    const base = this.bytes.length - from;
    for (let i = from; i < to; i++) this.bytes.push(template.body[i]);
    for (const s of template.apexSlots) if (s >= from && s < to) this.apexSlots.push(s + base);
    for (const s of template.ttlSlots) if (s >= from && s < to) this.ttlSlots.push(s + base);
  }

  /** Type, class, TTL, RDLENGTH and RDATA after an owner already written. */
  fields(type: number, klass: number, ttl: number, rdata: Uint8Array, patchTtl: boolean): void {
    this.bytes.push(type >> 8, type & 0xff, klass >> 8, klass & 0xff);
    if (patchTtl) this.ttlSlots.push(this.bytes.length);
    this.bytes.push((ttl >>> 24) & 0xff, (ttl >>> 16) & 0xff, (ttl >>> 8) & 0xff, ttl & 0xff, rdata.length >> 8, rdata.length & 0xff);
    for (const b of rdata) this.bytes.push(b);
  }
}

/**
 * The signed twin of `template`. `qname` and `apex` are the lower-cased wire
 * names its 0xC00C and 0xC000 pointers stand for; `originalTtl` (when > 0)
 * replaces the encoded TTL in what the signatures cover (steered answers are
 * served with TTLs up to it). Extra records go at the end of the authority section, signed.
 */
export function signTemplate(template: AnswerTemplate, qname: Uint8Array, apex: Uint8Array, signatureFor: SignatureFor,
  options: { originalTtl?: number; extraAuthority?: ExtraRecord[] } = {}): AnswerTemplate {
  const records = parseRecords(template, qname, apex);
  const out = new Out();
  const groups = groupRRsets(records);
  const authorityEnd = records.filter((r) => r.section < 2).reduce((end, r) => Math.max(end, r.end), 0);
  let requiredLength = -1;
  const flushExtras = (): void => {
    for (const extra of options.extraAuthority ?? []) {
      const rrset: CanonicalRRset = { owner: extra.owner, type: extra.type, klass: CLASS_IN, ttl: extra.ttl, rdatas: [extra.rdata] };
      for (const b of extra.owner) out.bytes.push(b);
      out.fields(extra.type, CLASS_IN, extra.ttl, extra.rdata, false);
      out.counts[1]++;
      for (const rrsig of asList(signatureFor(rrset, 1))) {
        for (const b of extra.owner) out.bytes.push(b);
        out.fields(TYPE_RRSIG, CLASS_IN, extra.ttl, rrsig, false);
        out.counts[1]++;
      }
    }
  };
  let extrasDone = false;
  for (const group of groups) {
    if (group[0].section === 2 && !extrasDone) {
      flushExtras();
      extrasDone = true;
      requiredLength = out.bytes.length;
    }
    appendSignedGroup(template, group, out, signatureFor, options.originalTtl ?? 0);
  }
  if (!extrasDone) {
    flushExtras();
    requiredLength = out.bytes.length;
  }
  // Referral glue is required whole: the template said so by counting it in requiredLength.
  if (template.requiredLength > authorityEnd) requiredLength = out.bytes.length;
  return {
    rcode: template.rcode,
    authoritative: template.authoritative,
    body: Uint8Array.from(out.bytes),
    answerCount: out.counts[0],
    authorityCount: out.counts[1],
    additionalCount: out.counts[2],
    requiredLength,
    apexSlots: Int32Array.from(out.apexSlots),
    apexLength: template.apexLength,
    ttlSlots: Int32Array.from(out.ttlSlots),
  };
}

/**
 * The last target of a CNAME chain that ends without the asked data (the
 * answer section ends in a CNAME and the authority holds the SOA), or null.
 */
export function negativeCnameTarget(template: AnswerTemplate, qname: Uint8Array, apex: Uint8Array): Uint8Array | null {
  if (template.answerCount === 0 || template.authorityCount === 0) return null;
  const records = parseRecords(template, qname, apex);
  const last = records[template.answerCount - 1];
  if (last.type !== TYPE_CNAME || !records.some((r) => r.section === 1 && r.type === TYPE_SOA)) return null;
  return last.canonical;
}

/** One RRset's records as they were, then its RRSIG under the same owner bytes. */
function appendSignedGroup(template: AnswerTemplate, group: ParsedRecord[], out: Out, signatureFor: SignatureFor, originalTtl: number): void {
  const first = group[0];
  out.copy(template, first.start, group[group.length - 1].end);
  out.counts[first.section] += group.length;
  const ttl = originalTtl > 0 ? originalTtl : first.ttl;
  const rrset: CanonicalRRset = { owner: first.owner, type: first.type, klass: first.klass, ttl, rdatas: group.map((r) => r.canonical) };
  for (const rrsig of asList(signatureFor(rrset, first.section))) {
    out.copy(template, first.start, first.ownerEnd);
    out.fields(TYPE_RRSIG, first.klass, first.ttl, rrsig, first.ttlPatched);
    out.counts[first.section]++;
  }
}
