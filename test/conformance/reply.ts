// Reading replies in tests: the header straight from the bytes (so nothing a
// decoder normalises can hide a wrong bit), the records through dns-packet,
// and a cross-check that both dns-packet and dns2 decode every reply cleanly.

import * as dnsPacket from 'dns-packet';
import { Packet } from 'dns2';
import { TYPE } from './wire.ts';

export interface ReplyRecord {
  name: string;
  type: number;
  klass: number;
  ttl: number;
  /** RDATA bytes as sent. */
  rdata: Buffer;
  /** dns-packet's reading of the RDATA. */
  data: unknown;
}

export interface ReplyOpt {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  options: Array<{ code: number; data: Buffer }>;
}

export interface Reply {
  bytes: Buffer;
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** Full RCODE: header bits plus the OPT's extended bits. */
  rcode: number;
  counts: { qd: number; an: number; ns: number; ar: number };
  /** The question section's bytes exactly as sent back. */
  question: Buffer;
  answers: ReplyRecord[];
  authorities: ReplyRecord[];
  /** Additional records other than the OPT. */
  additionals: ReplyRecord[];
  opt: ReplyOpt | null;
}

const typeNumber = (name: string): number => {
  const m = /^UNKNOWN_(\d+)$/.exec(name);
  if (m) return Number(m[1]);
  const known: Record<string, number> = TYPE;
  if (name in known) return known[name];
  throw new Error(`type ${name} missing from the test table`);
};
const classNumber = (name: string): number => ({ IN: 1, CH: 3, HS: 4, ANY: 255 } as Record<string, number>)[name] ?? Number(/\d+/.exec(name)?.[0] ?? 0);

/** Byte offsets of each record's RDATA, walked by hand so tests can compare raw bytes. */
function recordRdata(bytes: Buffer, offset: number, count: number): { rdatas: Buffer[]; end: number } {
  const rdatas: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    while (bytes[offset] !== 0 && (bytes[offset] & 0xc0) !== 0xc0) offset += bytes[offset] + 1;
    offset += bytes[offset] === 0 ? 1 : 2;
    const rdlength = bytes.readUInt16BE(offset + 8);
    rdatas.push(bytes.subarray(offset + 10, offset + 10 + rdlength));
    offset += 10 + rdlength;
  }
  return { rdatas, end: offset };
}

export function readReply(input: Uint8Array): Reply {
  const bytes = Buffer.from(input);
  const flags = bytes.readUInt16BE(2);
  const counts = { qd: bytes.readUInt16BE(4), an: bytes.readUInt16BE(6), ns: bytes.readUInt16BE(8), ar: bytes.readUInt16BE(10) };
  let offset = 12;
  for (let q = 0; q < counts.qd; q++) {
    while (bytes[offset] !== 0) offset += bytes[offset] + 1;
    offset += 5;
  }
  const question = bytes.subarray(12, offset);
  const sections = [counts.an, counts.ns, counts.ar].map((count) => {
    const { rdatas, end } = recordRdata(bytes, offset, count);
    offset = end;
    return rdatas;
  });
  const decoded = dnsPacket.decode(bytes);
  const convert = (records: dnsPacket.Answer[] | undefined, rdatas: Buffer[]): ReplyRecord[] => (records ?? []).map((r, i) => {
    const loose = r as unknown as { name: string; type: string; class?: string; ttl?: number; data?: unknown };
    return { name: loose.name, type: typeNumber(loose.type), klass: classNumber(loose.class ?? 'IN'), ttl: loose.ttl ?? 0, rdata: rdatas[i], data: loose.data };
  });
  const additionals = convert(decoded.additionals, sections[2]);
  let opt: ReplyOpt | null = null;
  let extended = 0;
  const optIndex = additionals.findIndex((r) => r.type === TYPE.OPT);
  if (optIndex >= 0) {
    const raw = (decoded.additionals ?? [])[optIndex] as unknown as { udpPayloadSize: number; extendedRcode: number; ednsVersion: number; flags: number; options: Array<{ code: number; data: Buffer }> };
    extended = raw.extendedRcode;
    opt = { udpSize: raw.udpPayloadSize, version: raw.ednsVersion, dnssecOk: (raw.flags & 0x8000) !== 0, options: raw.options.map((o) => ({ code: o.code, data: o.data })) };
    additionals.splice(optIndex, 1);
  }
  return {
    bytes,
    id: bytes.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0x0f,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    ad: (flags & 0x0020) !== 0,
    cd: (flags & 0x0010) !== 0,
    rcode: (extended << 4) | (flags & 0x0f),
    counts,
    question,
    answers: convert(decoded.answers, sections[0]),
    authorities: convert(decoded.authorities, sections[1]),
    additionals,
    opt,
  };
}

/**
 * Decodes a reply with dns-packet and with dns2 and checks that both read
 * the same message: the same counts, names and types. Throws with the reason
 * when either decoder fails or they disagree.
 */
export function crossCheck(input: Uint8Array): void {
  const bytes = Buffer.from(input);
  const ours = readReply(bytes);
  const viaDns2 = Packet.parse(bytes) as unknown as {
    header: { id: number; rcode: number; qr: number; aa: number; tc: number };
    questions: Array<{ name: string; type: number }>;
    answers: Array<{ name: string; type: number }>;
    authorities: Array<{ name: string; type: number }>;
    additionals: Array<{ name: string; type: number }>;
    errors?: Error[];
  };
  // dns2 3.1 reads an IPv6 ECS address in 16-bit groups, so an odd number of
  // address octets (a /56, say) makes it read past the option: a gap in dns2,
  // not in the reply. Only then are its additional-section errors let through.
  const dns2EcsGap = hasOddIpv6Ecs(ours);
  const dns2Errors = (viaDns2.errors ?? []).filter((e) => !(dns2EcsGap && /^additionals\[/.test(e.message)));
  if (dns2Errors.length > 0) throw new Error(`dns2 could not decode the reply: ${dns2Errors.map((e) => e.message).join('; ')}`);
  const same = (what: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`dns-packet and dns2 disagree on ${what}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  };
  same('id', ours.id, viaDns2.header.id);
  same('QR/AA/TC', [ours.qr, ours.aa, ours.tc], [viaDns2.header.qr === 1, viaDns2.header.aa === 1, viaDns2.header.tc === 1]);
  same('question count', ours.counts.qd, viaDns2.questions.length);
  // The two render non-ASCII label bytes differently (UTF-8 against one char
  // per byte), so such names are compared by type alone.
  const printable = /^[\x21-\x7e]*$/;
  const records = (list: Array<{ name: string; type: number }>): string[] =>
    list.map((r) => { const n = r.name.replace(/\\/g, ''); return `${printable.test(n) ? n.toLowerCase().replace(/\.$/, '') : '<binary>'}/${r.type}`; });
  same('answers', records(ours.answers), records(viaDns2.answers));
  same('authorities', records(ours.authorities), records(viaDns2.authorities));
  if (!dns2EcsGap) same('additional count', ours.counts.ar, viaDns2.additionals.length);
}

function hasOddIpv6Ecs(reply: Reply): boolean {
  const ecs = reply.opt?.options.find((o) => o.code === 8);
  return ecs !== undefined && ecs.data.length >= 4 && ecs.data.readUInt16BE(0) === 2 && (ecs.data.length - 4) % 2 === 1;
}
