// Builds AnswerTemplates at load time. Names below the zone apex are written
// as their leading labels plus a pointer to the apex inside the question, so
// every answer is compressed without a per-query compression table; names
// outside the zone are written whole.

import { CLASS_IN } from './constants.ts';
import { labelOffsetsOf, lowerWire } from './name.ts';
import type { AnswerTemplate } from './template.ts';

/** A piece of RDATA: bytes, or a name that may be compressed (RFC 3597 §4 lists which). */
export type RdataPart = Uint8Array | { name: Uint8Array; compress: boolean };

/** Record owner: the query name itself (pointer 0xC00C), or a given name. */
export type Owner = 'qname' | Uint8Array;

export const SECTION_ANSWER = 0;
export const SECTION_AUTHORITY = 1;
export const SECTION_ADDITIONAL = 2;

interface PendingRecord {
  owner: Owner;
  type: number;
  klass: number;
  ttl: number;
  rdata: RdataPart[];
  patchTtl: boolean;
}

export class TemplateBuilder {
  private readonly apexLower: Uint8Array;
  private readonly sections: PendingRecord[][] = [[], [], []];

  /** `apex`: the zone apex in wire form; `null` for templates with no zone (CHAOS). */
  constructor(apex: Uint8Array | null) {
    this.apexLower = apex ? lowerWire(apex) : new Uint8Array(0);
  }

  add(section: number, owner: Owner, type: number, ttl: number, rdata: RdataPart[], options: { klass?: number; patchTtl?: boolean } = {}): this {
    this.sections[section].push({ owner, type, klass: options.klass ?? CLASS_IN, ttl, rdata, patchTtl: options.patchTtl ?? false });
    return this;
  }

  /** Appends every record of another builder's sections (used to chain CNAME targets). */
  append(other: TemplateBuilder): this {
    for (let s = 0; s < 3; s++) this.sections[s].push(...other.sections[s]);
    return this;
  }

  get answerCount(): number {
    return this.sections[SECTION_ANSWER].length;
  }

  build(rcode: number, authoritative: boolean, glueRequired = false): AnswerTemplate {
    const bytes: number[] = [];
    const apexSlots: number[] = [];
    const ttlSlots: number[] = [];
    const writeName = (name: Uint8Array, compress: boolean): void => {
      const suffixStart = compress ? this.apexSuffixStart(name) : -1;
      if (suffixStart < 0) {
        for (const b of name) bytes.push(b);
        return;
      }
      for (let i = 0; i < suffixStart; i++) bytes.push(name[i]);
      apexSlots.push(bytes.length);
      bytes.push(0xc0, 0x00);
    };
    let requiredLength = 0;
    for (let s = 0; s < 3; s++) {
      for (const rr of this.sections[s]) {
        if (rr.owner === 'qname') bytes.push(0xc0, 0x0c);
        else writeName(rr.owner, true);
        bytes.push(rr.type >> 8, rr.type & 0xff, rr.klass >> 8, rr.klass & 0xff);
        if (rr.patchTtl) ttlSlots.push(bytes.length);
        bytes.push((rr.ttl >>> 24) & 0xff, (rr.ttl >>> 16) & 0xff, (rr.ttl >>> 8) & 0xff, rr.ttl & 0xff);
        const rdlenAt = bytes.length;
        bytes.push(0, 0);
        for (const part of rr.rdata) {
          if (part instanceof Uint8Array) for (const b of part) bytes.push(b);
          else writeName(part.name, part.compress);
        }
        const rdlen = bytes.length - rdlenAt - 2;
        if (rdlen > 0xffff) throw new RangeError('RDATA longer than 65535 octets');
        bytes[rdlenAt] = rdlen >> 8;
        bytes[rdlenAt + 1] = rdlen & 0xff;
      }
      if (s === SECTION_AUTHORITY || (s === SECTION_ADDITIONAL && glueRequired)) requiredLength = bytes.length;
    }
    return {
      rcode,
      authoritative,
      body: Uint8Array.from(bytes),
      answerCount: this.sections[0].length,
      authorityCount: this.sections[1].length,
      additionalCount: this.sections[2].length,
      requiredLength,
      apexSlots: Int32Array.from(apexSlots),
      apexLength: this.apexLower.length,
      ttlSlots: Int32Array.from(ttlSlots),
    };
  }

  /** Offset in `name` where the zone apex starts, or -1 when the name is outside the zone. */
  private apexSuffixStart(name: Uint8Array): number {
    const apex = this.apexLower;
    if (apex.length === 0 || apex.length > name.length) return -1;
    const start = name.length - apex.length;
    if (!labelOffsetsOf(name).includes(start) && !(start === name.length - 1)) return -1;
    for (let i = 0; i < apex.length; i++) {
      const c = name[start + i];
      const lower = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      if (lower !== apex[i]) return -1;
    }
    return start;
  }
}
