// Small builders for raw DNS messages, so conformance cases say what they send
// ("a query whose ECS prefix is 33") instead of carrying hand-typed hex. They
// write exactly what they are told, including what no real client would send:
// wrong counts, bad lengths, pointers anywhere, trailing bytes.

export const CLASS_IN = 1;
export const CLASS_CH = 3;
export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, MB: 7, NULL: 10, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, DS: 43,
  SVCB: 64, HTTPS: 65, TKEY: 249, TSIG: 250, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255, CAA: 257,
} as const;
export const OPTION = { NSID: 3, ECS: 8, COOKIE: 10, PADDING: 12 } as const;

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_AD = 0x0020;
export const FLAG_CD = 0x0010;

/** "www.Cdn.example" → wire labels, letter case kept; labels may be given as raw bytes. */
export function name(...labels: Array<string | Uint8Array>): Uint8Array {
  const parts: number[] = [];
  const split = labels.flatMap((l): Array<string | Uint8Array> => (typeof l === 'string' ? l.split('.').filter((s) => s !== '') : [l]));
  for (const label of split) {
    const bytes = typeof label === 'string' ? Buffer.from(label, 'latin1') : label;
    parts.push(bytes.length, ...bytes);
  }
  parts.push(0);
  return Uint8Array.from(parts);
}

export function u16(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}

export function u32(value: number): Uint8Array {
  return Uint8Array.of((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** A compression pointer to `offset`. */
export function pointer(offset: number): Uint8Array {
  return u16(0xc000 | offset);
}

export interface EdnsOption {
  code: number;
  data: Uint8Array;
  /** Declared length, when it must differ from data.length. */
  length?: number;
}

export function option(code: number, data: Uint8Array, length = data.length): EdnsOption {
  return { code, data, length };
}

/** ECS option (RFC 7871 §6); `address` is written as given, so it may be too long or too short. */
export function ecs(family: number, sourcePrefix: number, scopePrefix: number, address: number[]): EdnsOption {
  return option(OPTION.ECS, concat(u16(family), Uint8Array.of(sourcePrefix, scopePrefix), Uint8Array.from(address)));
}

export const nsid = (): EdnsOption => option(OPTION.NSID, new Uint8Array(0));

export function cookie(clientCookie: Uint8Array, serverCookie = new Uint8Array(0)): EdnsOption {
  return option(OPTION.COOKIE, concat(clientCookie, serverCookie));
}

export interface OptSpec {
  udpSize?: number;
  extendedRcode?: number;
  version?: number;
  dnssecOk?: boolean;
  options?: EdnsOption[];
  /** Owner name (root unless a case says otherwise). */
  owner?: Uint8Array;
  /** Added to the true RDLENGTH, to declare more or fewer bytes than follow. */
  rdlengthDelta?: number;
  /** Raw bytes appended to the RDATA after the options (fragments). */
  rdataTail?: Uint8Array;
}

export function opt(spec: OptSpec = {}): Uint8Array {
  const options = (spec.options ?? []).map((o) => concat(u16(o.code), u16(o.length ?? o.data.length), o.data));
  const rdata = concat(...options, spec.rdataTail ?? new Uint8Array(0));
  const ttl = ((spec.extendedRcode ?? 0) << 24) | ((spec.version ?? 0) << 16) | (spec.dnssecOk ? 0x8000 : 0);
  return concat(spec.owner ?? Uint8Array.of(0), u16(TYPE.OPT), u16(spec.udpSize ?? 1232), u32(ttl >>> 0),
    u16(rdata.length + (spec.rdlengthDelta ?? 0)), rdata);
}

export function rr(owner: Uint8Array, type: number, klass: number, ttl: number, rdata: Uint8Array): Uint8Array {
  return concat(owner, u16(type), u16(klass), u32(ttl), u16(rdata.length), rdata);
}

export interface QuestionSpec {
  name: Uint8Array;
  type: number;
  klass?: number;
}

export interface MessageSpec {
  id?: number;
  /** Header flags other than the opcode (QR, AA, TC, RD …). */
  flags?: number;
  opcode?: number;
  rcode?: number;
  questions?: QuestionSpec[];
  answers?: Uint8Array[];
  authorities?: Uint8Array[];
  /** Additional records before the OPT. */
  additionals?: Uint8Array[];
  edns?: OptSpec | null;
  /** Where the OPT goes: the additional section (default), or a wrong one. */
  ednsSection?: 'additional' | 'answer' | 'authority';
  /** Header counts to declare instead of the true ones. */
  counts?: Partial<{ qd: number; an: number; ns: number; ar: number }>;
  /** Raw bytes after the last record. */
  trailing?: Uint8Array;
}

export function message(spec: MessageSpec): Uint8Array {
  const questions = (spec.questions ?? []).map((q) => concat(q.name, u16(q.type), u16(q.klass ?? CLASS_IN)));
  const answers = [...(spec.answers ?? [])];
  const authorities = [...(spec.authorities ?? [])];
  const additionals = [...(spec.additionals ?? [])];
  if (spec.edns) {
    const section = spec.ednsSection ?? 'additional';
    (section === 'answer' ? answers : section === 'authority' ? authorities : additionals).push(opt(spec.edns));
  }
  const flags = (spec.flags ?? 0) | ((spec.opcode ?? 0) << 11) | (spec.rcode ?? 0);
  const counts = spec.counts ?? {};
  const header = concat(
    u16(spec.id ?? 0x1234), u16(flags),
    u16(counts.qd ?? questions.length), u16(counts.an ?? answers.length),
    u16(counts.ns ?? authorities.length), u16(counts.ar ?? additionals.length),
  );
  return concat(header, ...questions, ...answers, ...authorities, ...additionals, spec.trailing ?? new Uint8Array(0));
}

/** The common case: one question, RD set, optional EDNS. */
export function query(qname: string | Uint8Array, type: number, extra: Omit<MessageSpec, 'questions'> & { klass?: number } = {}): Uint8Array {
  const wire = typeof qname === 'string' ? name(qname) : qname;
  return message({ flags: FLAG_RD, ...extra, questions: [{ name: wire, type, klass: extra.klass ?? CLASS_IN }] });
}
