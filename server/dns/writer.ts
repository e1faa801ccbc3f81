// Writes responses into one reused buffer per socket handler: header, the
// question copied byte for byte from the query (original letter case), a
// pre-encoded AnswerTemplate, and an OPT record when the query had one.

import {
  EDNS_ADVERTISED_PAYLOAD, EDNS_OPTION_COOKIE, EDNS_OPTION_ECS, EDNS_OPTION_NSID, TYPE_OPT,
} from './constants.ts';
import type { QueryView } from './query.ts';
import type { AnswerTemplate } from './template.ts';

const MAX_MESSAGE = 65535;

export class ResponseWriter {
  /** Output area; a response occupies buf[0 .. returned length). */
  readonly buf = Buffer.alloc(MAX_MESSAGE);
  /** NSID payload (RFC 5001), sent when asked for; empty to never send one. */
  nsid: Uint8Array = new Uint8Array(0);
  /** ECS SCOPE PREFIX-LENGTH for the next response; echoed only when the query carried ECS. */
  ecsScope = 0;
  /** Server cookie (RFC 9018 layout, 16 bytes) for the next response, when the query had a COOKIE. */
  readonly serverCookie = new Uint8Array(16);
  /** Set after each write: was the response truncated (TC=1)? */
  truncated = false;

  /**
   * Writes a full answer. `maxSize` is the requestor's limit (see sizeLimit);
   * `ttl` ≥ 0 overwrites the template's patchable TTL fields.
   */
  writeAnswer(view: QueryView, query: Uint8Array, template: AnswerTemplate, maxSize: number, ttl = -1): number {
    const buf = this.buf;
    this.truncated = false;
    const questionEnd = view.questionEnd;
    // The question is a few dozen octets: an element loop beats subarray() + set(), which allocate.
    for (let i = 12; i < questionEnd; i++) buf[i] = query[i];
    const bodyStart = questionEnd;
    const optLength = view.hasEdns ? this.optLength(view) : 0;
    const room = maxSize - bodyStart - optLength;
    let bodyLength = template.body.length;
    let additionalCount = template.additionalCount;
    if (bodyLength > room) {
      if (template.requiredLength <= room && template.requiredLength < bodyLength) {
        bodyLength = template.requiredLength; // drop the optional additional records
        additionalCount = 0;
      } else {
        this.truncated = true;
        this.writeHeader(view, template.rcode, template.authoritative, true, 0, 0, 0);
        let end = bodyStart;
        if (view.hasEdns) {
          buf[11] = 1;
          end = this.writeOpt(view, end, template.rcode);
        }
        return end;
      }
    }
    buf.set(bodyLength === template.body.length ? template.body : template.body.subarray(0, bodyLength), bodyStart);
    const slots = template.apexSlots;
    if (slots.length > 0) {
      const pointer = 0xc000 | (12 + view.keyLength - template.apexLength);
      const hi = pointer >> 8;
      const lo = pointer & 0xff;
      for (let i = 0; i < slots.length; i++) {
        const at = bodyStart + slots[i];
        if (slots[i] < bodyLength) {
          buf[at] = hi;
          buf[at + 1] = lo;
        }
      }
    }
    if (ttl >= 0) {
      const ttlSlots = template.ttlSlots;
      for (let i = 0; i < ttlSlots.length; i++) {
        if (ttlSlots[i] < bodyLength) buf.writeUInt32BE(ttl, bodyStart + ttlSlots[i]);
      }
    }
    this.writeHeader(view, template.rcode, template.authoritative, false, template.answerCount, template.authorityCount, additionalCount);
    let end = bodyStart + bodyLength;
    if (view.hasEdns) {
      buf[10] = (additionalCount + 1) >> 8;
      buf[11] = (additionalCount + 1) & 0xff;
      end = this.writeOpt(view, end, template.rcode);
    }
    return end;
  }

  /**
   * An error or empty reply: header, the question when there is one, and the
   * OPT record when the query carried a readable one. With `withQuestion`
   * false (NOTIMP for unknown opcodes) the body is empty.
   */
  writeError(view: QueryView, query: Uint8Array, rcode: number, withQuestion: boolean, withOpt: boolean): number {
    this.truncated = false;
    const buf = this.buf;
    const includeQuestion = withQuestion && view.hasQuestion;
    let end = 12;
    if (includeQuestion) {
      buf.set(query.subarray(12, view.questionEnd), 12);
      end = view.questionEnd;
    }
    this.writeHeader(view, rcode, false, false, 0, 0, 0);
    if (!includeQuestion) buf[5] = 0;
    if (withOpt && view.hasEdns) {
      buf[11] = 1;
      end = this.writeOpt(view, end, rcode);
    }
    return end;
  }

  private writeHeader(view: QueryView, rcode: number, aa: boolean, tc: boolean, an: number, ns: number, ar: number): void {
    const buf = this.buf;
    buf[0] = view.id >> 8;
    buf[1] = view.id & 0xff;
    const q = view.flags;
    // QR=1, opcode and RD copied, RA=0, AD=0, CD copied.
    buf[2] = 0x80 | ((q >> 8) & 0x79) | (aa ? 0x04 : 0) | (tc ? 0x02 : 0);
    buf[3] = (q & 0x10) | (rcode & 0x0f);
    buf[4] = 0;
    buf[5] = view.hasQuestion ? 1 : 0;
    buf[6] = an >> 8;
    buf[7] = an & 0xff;
    buf[8] = ns >> 8;
    buf[9] = ns & 0xff;
    buf[10] = ar >> 8;
    buf[11] = ar & 0xff;
  }

  private optLength(view: QueryView): number {
    let length = 11;
    if (view.nsidRequested && this.nsid.length > 0) length += 4 + this.nsid.length;
    if (view.ecsPresent) length += 8 + ((view.ecsSourcePrefix + 7) >> 3);
    if (view.cookiePresent) length += 4 + 8 + 16;
    return length;
  }

  private writeOpt(view: QueryView, at: number, rcode: number): number {
    const buf = this.buf;
    buf[at] = 0; // root owner
    buf[at + 1] = TYPE_OPT >> 8;
    buf[at + 2] = TYPE_OPT & 0xff;
    buf[at + 3] = EDNS_ADVERTISED_PAYLOAD >> 8;
    buf[at + 4] = EDNS_ADVERTISED_PAYLOAD & 0xff;
    buf[at + 5] = (rcode >> 4) & 0xff; // extended RCODE, upper 8 bits
    buf[at + 6] = 0; // version 0
    buf[at + 7] = view.dnssecOk ? 0x80 : 0;
    buf[at + 8] = 0;
    const rdlenAt = at + 9;
    let p = at + 11;
    if (view.nsidRequested && this.nsid.length > 0) {
      const n = this.nsid.length;
      buf[p] = 0; buf[p + 1] = EDNS_OPTION_NSID; buf[p + 2] = n >> 8; buf[p + 3] = n & 0xff;
      buf.set(this.nsid, p + 4);
      p += 4 + n;
    }
    if (view.ecsPresent) {
      const addressLength = (view.ecsSourcePrefix + 7) >> 3;
      const optLen = 4 + addressLength;
      buf[p] = 0; buf[p + 1] = EDNS_OPTION_ECS; buf[p + 2] = 0; buf[p + 3] = optLen;
      buf[p + 4] = 0; buf[p + 5] = view.ecsFamily;
      buf[p + 6] = view.ecsSourcePrefix;
      buf[p + 7] = this.ecsScope;
      for (let i = 0; i < addressLength; i++) buf[p + 8 + i] = view.ecsAddress[i];
      p += 8 + addressLength;
    }
    if (view.cookiePresent) {
      buf[p] = 0; buf[p + 1] = EDNS_OPTION_COOKIE; buf[p + 2] = 0; buf[p + 3] = 24;
      buf.set(view.clientCookie, p + 4);
      buf.set(this.serverCookie, p + 12);
      p += 28;
    }
    const rdlen = p - at - 11;
    buf[rdlenAt] = rdlen >> 8;
    buf[rdlenAt + 1] = rdlen & 0xff;
    return p;
  }
}

/** Largest response the requestor accepts over UDP (RFC 6891 §6.2.5, capped at our advertised 1232). */
export function udpSizeLimit(view: QueryView): number {
  if (!view.hasEdns) return 512;
  return view.ednsUdpSize < EDNS_ADVERTISED_PAYLOAD ? view.ednsUdpSize : EDNS_ADVERTISED_PAYLOAD;
}

export const TCP_SIZE_LIMIT = MAX_MESSAGE;
