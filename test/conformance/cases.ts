// The conformance table: one raw query per row and what the server must do
// with it. The same rows run against the Engine in-process
// (engine.test.ts) and, where the row says so, over real UDP and TCP sockets
// against the real server (sockets.test.ts). Zones: test/fixtures/zones/conformance.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Reply, ReplyRecord } from './reply.ts';
import {
  CLASS_CH, FLAG_AA, FLAG_AD, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, OPTION, TYPE, concat, cookie, ecs, message, name,
  nsid, option, pointer, query, rr, u16,
} from './wire.ts';

/** The zones every conformance row is written against. */
export const CONFORMANCE_CONFIG = fileURLToPath(new URL('../fixtures/zones/conformance/', import.meta.url));

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

export interface CaseContext {
  popId: string;
}

export interface Expectation {
  rcode: number;
  aa?: boolean;
  tc?: boolean;
  /** 'echo': the query's question, byte for byte; 'none': no question section. */
  question?: 'echo' | 'none';
  /** Is there an OPT record in the reply? */
  opt?: boolean;
  /** Records as `name ttl TYPE data` (see describeRecord), in order. */
  answer?: string[];
  authority?: string[];
  additional?: string[];
  check?: (reply: Reply, context: CaseContext) => void;
}

export interface ConformanceCase {
  /** The behaviour, as a sentence. */
  name: string;
  /** Where the rule comes from. */
  ref: string;
  packet: Uint8Array;
  transport?: 'udp' | 'tcp';
  /** 'drop': no reply at all. */
  expect: Expectation | 'drop';
  /** Also run over real sockets against the real server (default true). */
  sockets?: boolean;
}

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));

/** `www.cdn.example 30 A 192.0.2.10`: enough of a record to compare in a table. */
export function describeRecord(r: ReplyRecord): string {
  const type = TYPE_NAMES.get(r.type) ?? `TYPE${r.type}`;
  const d = r.data as Record<string, unknown> | string | Buffer[] | Buffer;
  let data: string;
  if (typeof d === 'string') data = d;
  else if (r.type === TYPE.SOA) data = `${String((d as Record<string, unknown>).mname)} ${String((d as Record<string, unknown>).serial)}`;
  else if (r.type === TYPE.TXT) data = (d as Buffer[]).map((s) => JSON.stringify(s.toString('latin1'))).join(' ');
  else if (r.type === TYPE.MX) data = `${String((d as Record<string, unknown>).preference)} ${String((d as Record<string, unknown>).exchange)}`;
  else if (r.type === TYPE.SRV) {
    const srv = d as Record<string, unknown>;
    data = `${String(srv.priority)} ${String(srv.weight)} ${String(srv.port)} ${String(srv.target)}`;
  } else data = r.rdata.toString('hex');
  return `${r.name} ${r.ttl} ${type} ${data}`;
}

// Common pieces.
const WWW = 'www.cdn.example';
const SOA_CDN = 'cdn.example 60 SOA ns1.cdn.example 2026112201';
const SOA_CHILD = 'child.example.test 45 SOA ns1.child.example.test 7';
const SOA_PARENT = 'example.test 120 SOA ns1.example.test 1';
const LONG_TXT_STRINGS = 4;
const CLIENT_COOKIE = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);

const echoed = { question: 'echo' as const };
const formerr = (extra: Partial<Expectation> = {}): Expectation => ({ rcode: RCODE.FORMERR, aa: false, ...extra });
const notimpEmpty: Expectation = { rcode: RCODE.NOTIMP, aa: false, question: 'none', opt: false, answer: [], authority: [] };
/** NOTIMP keeps the OPT of an EDNS query (RFC 6891 §7), so clients do not take it for a server without EDNS. */
const notimpEmptyWithOpt: Expectation = { ...notimpEmpty, opt: true };
const refused: Expectation = { rcode: RCODE.REFUSED, aa: false, ...echoed, answer: [], authority: [] };
const wwwA: Expectation = { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [`${WWW} 30 A 192.0.2.10`] };

function optionOf(reply: Reply, code: number): Buffer | undefined {
  return reply.opt?.options.find((o) => o.code === code)?.data;
}

/** A well-formed www A query with EDNS options, for the ECS/COOKIE rows. */
const withOptions = (...options: ReturnType<typeof option>[]): Uint8Array => query(WWW, TYPE.A, { edns: { options } });
/** A name of `total` wire octets (root included) ending in cdn.example. */
function longName(total: number): Uint8Array {
  const tail = name('cdn.example');
  const labels: Uint8Array[] = [];
  let room = total - tail.length;
  while (room > 0) {
    const len = Math.min(63, room - 1);
    labels.push(new Uint8Array(len).fill(0x61));
    room -= len + 1;
  }
  const head = concat(...labels.map((l) => concat(Uint8Array.of(l.length), l)));
  return concat(head, tail);
}

export const CASES: ConformanceCase[] = [
  // ── Header ───────────────────────────────────────────────────────────────
  { name: 'an empty datagram is dropped', ref: 'issue 9', packet: new Uint8Array(0), expect: 'drop', sockets: false },
  { name: 'a message shorter than the 12-octet header is dropped', ref: 'RFC 1035 §4.1.1', packet: Uint8Array.of(0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0), expect: 'drop' },
  { name: 'a response (QR=1) is never answered', ref: 'RFC 1035 §4.1.1, no reply loops', packet: query(WWW, TYPE.A, { flags: FLAG_QR | FLAG_AA }), expect: 'drop' },
  { name: 'a response (QR=1) with garbage is dropped', ref: 'issue 9', packet: concat(u16(1), u16(FLAG_QR), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3)), expect: 'drop' },
  { name: 'QDCOUNT 0 without a COOKIE is FORMERR', ref: 'RFC 9619, RFC 7873 §5.4', packet: message({ flags: FLAG_RD }), expect: formerr({ question: 'none', opt: false }) },
  {
    name: 'QDCOUNT 0 with a COOKIE is a cookie refresh: NOERROR, OPT with the cookies',
    ref: 'RFC 7873 §5.4', packet: message({ edns: { options: [cookie(CLIENT_COOKIE)] } }),
    expect: {
      rcode: RCODE.NOERROR, question: 'none', opt: true, answer: [],
      check: (r) => assert.deepEqual([...optionOf(r, OPTION.COOKIE)!.subarray(0, 8)], [...CLIENT_COOKIE]),
    },
  },
  {
    name: 'QDCOUNT 2 is FORMERR', ref: 'RFC 9619',
    packet: message({ flags: FLAG_RD, questions: [{ name: name(WWW), type: TYPE.A }, { name: name(WWW), type: TYPE.AAAA }] }),
    expect: formerr({ question: 'none' }),
  },
  { name: 'QDCOUNT 1 with no question bytes is FORMERR', ref: 'RFC 1035 §4.1.2', packet: message({ counts: { qd: 1 } }), expect: formerr({ question: 'none' }) },
  { name: 'a question name cut short is FORMERR', ref: 'RFC 1035 §4.1.2', packet: query(WWW, TYPE.A).subarray(0, 12 + 6), expect: formerr({ question: 'none' }) },
  { name: 'a question without QTYPE/QCLASS is FORMERR', ref: 'RFC 1035 §4.1.2', packet: query(WWW, TYPE.A).subarray(0, 12 + name(WWW).length + 2), expect: formerr({ question: 'none' }) },
  { name: 'trailing garbage after the last record is FORMERR', ref: 'issue 9', packet: query(WWW, TYPE.A, { trailing: Uint8Array.of(0xde, 0xad) }), expect: formerr(echoed) },
  { name: 'ANCOUNT 1 with garbage where the record should be is FORMERR', ref: 'issue 9', packet: query(WWW, TYPE.A, { counts: { an: 1 }, trailing: Uint8Array.of(0x07, 0x01, 0x02) }), expect: formerr(echoed) },
  { name: 'ANCOUNT 1 with no record at all is FORMERR', ref: 'RFC 1035 §4.1', packet: query(WWW, TYPE.A, { counts: { an: 1 } }), expect: formerr(echoed) },
  { name: 'ARCOUNT 65535 with nothing after the question is FORMERR in bounded work', ref: 'issue 9', packet: query(WWW, TYPE.A, { counts: { ar: 65535 } }), expect: formerr(echoed) },
  {
    name: 'a well-formed extra record in the additional section is ignored', ref: 'RFC 1035 §4.1',
    packet: query(WWW, TYPE.A, { additionals: [rr(pointer(12), TYPE.A, 1, 60, Uint8Array.of(192, 0, 2, 1))] }), expect: wwwA,
  },

  // ── Names ────────────────────────────────────────────────────────────────
  { name: 'label type bits 01 (extended label) are FORMERR', ref: 'RFC 6891 §5', packet: query(concat(Uint8Array.of(0x41), new Uint8Array(1), name('cdn.example')), TYPE.A), expect: formerr({ question: 'none' }) },
  { name: 'label type bits 10 (reserved) are FORMERR', ref: 'RFC 1035 §4.1.4', packet: query(concat(Uint8Array.of(0x83, 0x61, 0x62, 0x63), name('cdn.example')), TYPE.A), expect: formerr({ question: 'none' }) },
  { name: 'a label longer than 63 octets is FORMERR', ref: 'RFC 1035 §2.3.4', packet: query(concat(Uint8Array.of(64), new Uint8Array(64).fill(0x61), name('cdn.example')), TYPE.A), expect: formerr({ question: 'none' }) },
  { name: 'a name of 256 octets is FORMERR', ref: 'RFC 1035 §2.3.4', packet: query(longName(256), TYPE.A), expect: formerr({ question: 'none' }) },
  {
    name: 'a name of exactly 255 octets is answered (NXDOMAIN) and echoed', ref: 'RFC 1035 §2.3.4', packet: query(longName(255), TYPE.A),
    expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, authority: [SOA_CDN] },
  },
  { name: 'a compression pointer to itself in the question is FORMERR', ref: 'RFC 1035 §4.1.4', packet: query(pointer(12), TYPE.A), expect: formerr({ question: 'none' }) },
  { name: 'a compression pointer into the header is FORMERR', ref: 'RFC 1035 §4.1.4', packet: query(pointer(2), TYPE.A), expect: formerr({ question: 'none' }) },
  { name: 'a compression pointer past the end is FORMERR', ref: 'RFC 1035 §4.1.4', packet: query(concat(Uint8Array.of(3, 0x77, 0x77, 0x77), pointer(0x3fff)), TYPE.A), expect: formerr({ question: 'none' }) },
  {
    name: 'a pointer loop in an additional record is FORMERR', ref: 'RFC 1035 §4.1.4',
    // Owner at offset 12+q: a pointer to itself.
    packet: query(WWW, TYPE.A, { additionals: [rr(pointer(12 + name(WWW).length + 4), TYPE.A, 1, 0, Uint8Array.of(1, 2, 3, 4))] }), expect: formerr(echoed),
  },
  {
    name: 'a forward pointer in an additional record is FORMERR', ref: 'RFC 1035 §4.1.4',
    packet: query(WWW, TYPE.A, { additionals: [rr(pointer(12 + name(WWW).length + 4 + 20), TYPE.A, 1, 0, Uint8Array.of(1, 2, 3, 4))] }), expect: formerr(echoed),
  },
  {
    name: 'a pointer to the header in an additional record is FORMERR', ref: 'RFC 1035 §4.1.4',
    packet: query(WWW, TYPE.A, { additionals: [rr(pointer(4), TYPE.A, 1, 0, Uint8Array.of(1, 2, 3, 4))] }), expect: formerr(echoed),
  },
  {
    name: 'a label with a dot inside is compared byte-exact (no match for www.cdn.example) and echoed', ref: 'RFC 4343 §2.1',
    packet: query(name(Buffer.from('www.cdn'), 'cdn.example'), TYPE.A),
    expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, answer: [], authority: [SOA_CDN] },
  },
  {
    name: 'labels with NUL, 0xFF and a space are answered normally and echoed byte-exact', ref: 'RFC 2181 §11',
    packet: query(concat(Uint8Array.of(5, 0x77, 0x00, 0xff, 0x20, 0x77), name('cdn.example')), TYPE.A),
    expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, authority: [SOA_CDN] },
  },
  {
    name: '"www\\000" is not "www": a NUL octet is part of the label', ref: 'RFC 2181 §11',
    packet: query(concat(Uint8Array.of(4, 0x77, 0x77, 0x77, 0x00), name('cdn.example')), TYPE.A),
    expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, answer: [] },
  },
  {
    name: 'only ASCII letters fold case: 0xD7 is not 0xF7', ref: 'RFC 4343 §3',
    packet: query(concat(Uint8Array.of(3, 0xd7, 0x57, 0x57), name('cdn.example')), TYPE.A),
    expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed },
  },
  { name: 'the root name is outside every zone: REFUSED', ref: 'issue 2', packet: query(Uint8Array.of(0), TYPE.NS), expect: refused },

  // ── Opcodes, types, classes ──────────────────────────────────────────────
  ...[1, 2, 3, 6, 15].map((opcode): ConformanceCase => ({
    name: `opcode ${opcode} is NOTIMP with an empty body and the OPT`, ref: 'RFC 1035 §4.1.1, RFC 6891 §7, RFC 8490 (DSO = 6)',
    packet: query(WWW, TYPE.A, { opcode, edns: { options: [nsid()] } }), expect: { ...notimpEmptyWithOpt, check: (r) => assert.equal(r.opcode, opcode) },
  })),
  { name: 'NOTIFY (opcode 4) is NOTIMP', ref: 'RFC 1996', packet: query('cdn.example', TYPE.SOA, { opcode: 4, flags: FLAG_AA }), expect: notimpEmpty },
  { name: 'UPDATE (opcode 5) is NOTIMP', ref: 'RFC 2136', packet: message({ opcode: 5, questions: [{ name: name('cdn.example'), type: TYPE.SOA }] }), expect: notimpEmpty },
  { name: 'a malformed message with an unknown opcode is still NOTIMP', ref: 'RFC 1035 §4.1.1', packet: message({ opcode: 3, counts: { qd: 3 }, trailing: Uint8Array.of(0xc0) }), expect: notimpEmpty },
  { name: 'AXFR over TCP is REFUSED (no transfers)', ref: 'RFC 5936 §2.2.1', transport: 'tcp', packet: query('cdn.example', TYPE.AXFR, { flags: 0 }), expect: refused },
  { name: 'IXFR over TCP is REFUSED (no transfers)', ref: 'RFC 1995', transport: 'tcp', packet: query('cdn.example', TYPE.IXFR, { flags: 0 }), expect: refused },
  { name: 'AXFR over UDP is NOTIMP', ref: 'RFC 5936 §4.2', packet: query('cdn.example', TYPE.AXFR, { flags: 0 }), expect: { rcode: RCODE.NOTIMP, aa: false, ...echoed, answer: [] } },
  { name: 'IXFR over UDP is NOTIMP', ref: 'RFC 1995', packet: query('cdn.example', TYPE.IXFR, { flags: 0 }), expect: { rcode: RCODE.NOTIMP, aa: false, ...echoed, answer: [] } },
  ...(['OPT', 'TSIG', 'TKEY', 'MAILB', 'MAILA'] as const).map((t): ConformanceCase => ({
    name: `meta type ${t} in the question is NOTIMP`, ref: 'RFC 6895 §3.1', packet: query(WWW, TYPE[t]),
    expect: { rcode: RCODE.NOTIMP, aa: false, ...echoed, answer: [] },
  })),
  ...[2, 4, 254, 255, 42].map((klass): ConformanceCase => ({
    name: `class ${klass} (not IN or CH) is REFUSED`, ref: 'issue 2', packet: query(WWW, TYPE.A, { klass }), expect: refused,
  })),

  // ── EDNS ─────────────────────────────────────────────────────────────────
  { name: 'two OPT records are FORMERR', ref: 'RFC 6891 §6.1.1', packet: query(WWW, TYPE.A, { additionals: [concat(Uint8Array.of(0), u16(TYPE.OPT), u16(1232), new Uint8Array(4), u16(0))], edns: {} }), expect: formerr(echoed) },
  { name: 'an OPT record in the answer section is FORMERR', ref: 'RFC 6891 §6.1.1', packet: query(WWW, TYPE.A, { edns: {}, ednsSection: 'answer' }), expect: formerr({ ...echoed, opt: false }) },
  { name: 'an OPT record in the authority section is FORMERR', ref: 'RFC 6891 §6.1.1', packet: query(WWW, TYPE.A, { edns: {}, ednsSection: 'authority' }), expect: formerr({ ...echoed, opt: false }) },
  { name: 'an OPT record whose owner is not the root is FORMERR', ref: 'RFC 6891 §6.1.2', packet: query(WWW, TYPE.A, { edns: { owner: name('x') } }), expect: formerr(echoed) },
  { name: 'OPT RDLENGTH past the end of the message is FORMERR', ref: 'RFC 6891 §6.1.2', packet: query(WWW, TYPE.A, { edns: { options: [nsid()], rdlengthDelta: 10 } }), expect: formerr(echoed) },
  { name: 'an option length overrunning the OPT RDATA is FORMERR', ref: 'RFC 6891 §6.1.2', packet: query(WWW, TYPE.A, { edns: { options: [option(65001, Uint8Array.of(1, 2), 9)] } }), expect: formerr(echoed) },
  { name: 'a 3-octet option fragment is FORMERR', ref: 'RFC 6891 §6.1.2', packet: query(WWW, TYPE.A, { edns: { options: [nsid()], rdataTail: Uint8Array.of(0, 8, 0) } }), expect: formerr(echoed) },
  {
    name: '100 unknown options are ignored', ref: 'RFC 6891 §6.1.2',
    packet: withOptions(...Array.from({ length: 100 }, (_, i) => option(65001 + (i % 10), Uint8Array.of(i)))),
    expect: { ...wwwA, opt: true, check: (r) => assert.deepEqual(r.opt!.options, []) },
  },
  {
    name: 'EDNS version 1 is BADVERS, with an OPT of version 0', ref: 'RFC 6891 §6.1.3',
    packet: query(WWW, TYPE.A, { edns: { version: 1 } }),
    expect: { rcode: RCODE.BADVERS, aa: false, ...echoed, opt: true, answer: [], check: (r) => assert.equal(r.opt!.version, 0) },
  },
  {
    name: 'EDNS version 1 with unknown options is still BADVERS', ref: 'RFC 6891 §6.1.3',
    packet: query(WWW, TYPE.A, { edns: { version: 1, options: [option(65000, Uint8Array.of(1))] } }),
    expect: { rcode: RCODE.BADVERS, opt: true, ...echoed },
  },
  {
    name: 'the reply advertises 1232 octets and echoes DO', ref: 'DNS Flag Day 2020, RFC 3225',
    packet: query(WWW, TYPE.A, { edns: { udpSize: 4096, dnssecOk: true } }),
    expect: { ...wwwA, opt: true, check: (r) => { assert.equal(r.opt!.udpSize, 1232); assert.equal(r.opt!.dnssecOk, true); } },
  },
  { name: 'no OPT in the query, no OPT in the reply', ref: 'RFC 6891 §7', packet: query(WWW, TYPE.A), expect: { ...wwwA, opt: false } },
  { name: 'an advertised size below 512 is treated as 512', ref: 'RFC 6891 §6.2.5', packet: query(WWW, TYPE.A, { edns: { udpSize: 100 } }), expect: { ...wwwA, opt: true } },
  { name: 'ECS source prefix 33 for IPv4 is FORMERR', ref: 'RFC 7871 §7.1.1', packet: withOptions(ecs(1, 33, 0, [192, 0, 2, 0, 0])), expect: formerr(echoed) },
  { name: 'ECS source prefix 129 for IPv6 is FORMERR', ref: 'RFC 7871 §7.1.1', packet: withOptions(ecs(2, 129, 0, new Array<number>(17).fill(0))), expect: formerr(echoed) },
  { name: 'ECS with more address octets than the prefix needs is FORMERR', ref: 'RFC 7871 §6', packet: withOptions(ecs(1, 24, 0, [192, 0, 2, 0])), expect: formerr(echoed) },
  { name: 'ECS with fewer address octets than the prefix needs is FORMERR', ref: 'RFC 7871 §6', packet: withOptions(ecs(1, 24, 0, [192, 0])), expect: formerr(echoed) },
  { name: 'ECS family 3 is FORMERR', ref: 'RFC 7871 §6', packet: withOptions(ecs(3, 8, 0, [1])), expect: formerr(echoed) },
  { name: 'ECS with a non-zero SCOPE PREFIX-LENGTH in a query is FORMERR', ref: 'RFC 7871 §7.1.1', packet: withOptions(ecs(1, 24, 24, [192, 0, 2])), expect: formerr(echoed) },
  { name: 'ECS address bits beyond the source prefix are FORMERR', ref: 'RFC 7871 §7.1.1', packet: withOptions(ecs(1, 23, 0, [192, 0, 3])), expect: formerr(echoed) },
  { name: 'ECS shorter than its 4-octet fixed part is FORMERR', ref: 'RFC 7871 §6', packet: withOptions(option(OPTION.ECS, Uint8Array.of(0, 1, 24))), expect: formerr(echoed) },
  {
    name: 'a valid ECS is echoed with family, source prefix and address, scope 0 for a static answer', ref: 'RFC 7871 §7.2.1',
    packet: withOptions(ecs(1, 23, 0, [192, 0, 2])),
    expect: { ...wwwA, opt: true, check: (r) => assert.deepEqual([...optionOf(r, OPTION.ECS)!], [0, 1, 23, 0, 192, 0, 2]) },
  },
  {
    name: 'ECS with source prefix 0 is valid and echoed', ref: 'RFC 7871 §7.1.2',
    packet: withOptions(ecs(2, 0, 0, [])), expect: { ...wwwA, opt: true, check: (r) => assert.deepEqual([...optionOf(r, OPTION.ECS)!], [0, 2, 0, 0]) },
  },
  { name: 'two ECS options are FORMERR', ref: 'RFC 7871 §6', packet: withOptions(ecs(1, 24, 0, [192, 0, 2]), ecs(1, 24, 0, [192, 0, 2])), expect: formerr(echoed) },
  {
    name: 'NSID asked: the reply carries the PoP id', ref: 'RFC 5001 §2.3',
    packet: withOptions(nsid()), expect: { ...wwwA, opt: true, check: (r, c) => assert.equal(optionOf(r, OPTION.NSID)?.toString(), c.popId) },
  },
  {
    name: 'NSID not asked: no NSID in the reply', ref: 'RFC 5001 §2.3',
    packet: withOptions(), expect: { ...wwwA, opt: true, check: (r) => assert.equal(optionOf(r, OPTION.NSID), undefined) },
  },
  {
    name: 'a client COOKIE is echoed with a 16-octet server cookie', ref: 'RFC 7873 §5.2.3, RFC 9018',
    packet: withOptions(cookie(CLIENT_COOKIE)),
    expect: {
      ...wwwA, opt: true,
      check: (r) => {
        const c = optionOf(r, OPTION.COOKIE)!;
        assert.equal(c.length, 24);
        assert.deepEqual([...c.subarray(0, 8)], [...CLIENT_COOKIE]);
        assert.equal(c[8], 1, 'server cookie version 1 (RFC 9018)');
      },
    },
  },
  {
    name: 'a client COOKIE with a stale server cookie still gets an answer and a fresh cookie', ref: 'RFC 7873 §5.2.4',
    packet: withOptions(cookie(CLIENT_COOKIE, new Uint8Array(16).fill(9))),
    expect: { ...wwwA, opt: true, check: (r) => assert.equal(optionOf(r, OPTION.COOKIE)!.length, 24) },
  },
  ...[7, 9, 15, 41].map((length): ConformanceCase => ({
    name: `a COOKIE of ${length} octets is FORMERR`, ref: 'RFC 7873 §5.2.2',
    packet: withOptions(option(OPTION.COOKIE, new Uint8Array(length).fill(1))), expect: formerr(echoed),
  })),

  // ── Header bits and echo (issue 2) ───────────────────────────────────────
  {
    name: 'AA=1, RA=0, RD copied (1), ID echoed, question echoed with its letter case', ref: 'RFC 1035 §4.1.1, RFC 4343 §4.1',
    packet: query('WwW.cDn.ExAmPlE', TYPE.A, { id: 0xbeef, flags: FLAG_RD }),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['WwW.cDn.ExAmPlE 30 A 192.0.2.10'], check: (r) => { assert.equal(r.id, 0xbeef); assert.equal(r.rd, true); assert.equal(r.ra, false); } },
  },
  {
    name: 'RD=0 is copied as 0; ID 0 echoed', ref: 'RFC 1035 §4.1.1', packet: query(WWW, TYPE.A, { id: 0, flags: 0 }),
    expect: { ...wwwA, check: (r) => { assert.equal(r.id, 0); assert.equal(r.rd, false); } },
  },
  {
    name: 'CD is copied, AD is cleared, AA/TC in a query are ignored', ref: 'RFC 6840 §5.7, RFC 4035 §3.1.6',
    packet: query(WWW, TYPE.A, { id: 0xffff, flags: FLAG_CD | FLAG_AD | FLAG_AA | FLAG_TC }),
    expect: { ...wwwA, tc: false, check: (r) => { assert.equal(r.cd, true); assert.equal(r.ad, false); assert.equal(r.id, 0xffff); } },
  },

  // ── Answers, negative answers, refusals ──────────────────────────────────
  { name: 'NOERROR with the A record', ref: 'RFC 1034 §4.3.2', packet: query(WWW, TYPE.A), expect: wwwA },
  { name: 'NOERROR with the AAAA record', ref: 'RFC 3596', packet: query(WWW, TYPE.AAAA), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [`${WWW} 30 AAAA 2001:db8:10::1`] } },
  {
    name: 'NXDOMAIN with the SOA, negative TTL = min(SOA TTL 3600, minimum 60)', ref: 'RFC 2308 §3, §5',
    packet: query('nope.cdn.example', TYPE.A), expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, answer: [], authority: [SOA_CDN], additional: [] },
  },
  {
    name: 'NODATA: NOERROR, no answer, the SOA with the negative TTL', ref: 'RFC 2308 §2.2',
    packet: query(WWW, TYPE.MX), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_CDN] },
  },
  {
    name: 'negative TTL = min(SOA TTL 45, minimum 7200) in the child zone', ref: 'RFC 2308 §5',
    packet: query('nope.child.example.test', TYPE.A), expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, authority: [SOA_CHILD] },
  },
  { name: 'a name outside every served zone is REFUSED, never recursed', ref: 'RFC 1034 §4.3.1', packet: query('www.example.com', TYPE.A), expect: refused },
  { name: 'the parent of a served zone is REFUSED', ref: 'RFC 1034 §4.3.2', packet: query('example', TYPE.SOA), expect: refused },
  { name: 'an empty non-terminal is NODATA, not NXDOMAIN', ref: 'RFC 8020, RFC 4592 §2.2.2', packet: query('origin.cdn.example', TYPE.A), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_CDN] } },
  { name: 'the apex SOA', ref: 'RFC 1035 §3.3.13', packet: query('cdn.example', TYPE.SOA), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['cdn.example 3600 SOA ns1.cdn.example 2026112201'] } },
  {
    name: 'the apex NS with in-zone addresses in the additional section', ref: 'RFC 1034 §4.3.2',
    packet: query('cdn.example', TYPE.NS),
    expect: {
      rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['cdn.example 300 NS ns1.cdn.example', 'cdn.example 300 NS ns2.cdn.example'],
      additional: ['ns1.cdn.example 300 A 192.0.2.53', 'ns1.cdn.example 300 AAAA 2001:db8::53', 'ns2.cdn.example 300 A 198.51.100.53', 'ns2.cdn.example 300 AAAA 2001:db8:1::53'],
    },
  },
  { name: 'MX with an out-of-zone exchange', ref: 'RFC 1035 §3.3.9', packet: query('cdn.example', TYPE.MX), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['cdn.example 300 MX 10 mail.example.net'], additional: [] } },
  {
    name: 'SRV with target addresses in the additional section', ref: 'RFC 2782', packet: query('_https._tcp.origin.cdn.example', TYPE.SRV),
    expect: {
      rcode: RCODE.NOERROR, aa: true, ...echoed,
      answer: ['_https._tcp.origin.cdn.example 300 SRV 10 60 443 origin-a.cdn.example', '_https._tcp.origin.cdn.example 300 SRV 10 40 443 origin-b.cdn.example'],
      additional: ['origin-a.cdn.example 300 A 203.0.113.10', 'origin-b.cdn.example 300 A 203.0.113.11'],
    },
  },
  { name: 'CAA', ref: 'RFC 8659', packet: query('cdn.example', TYPE.CAA), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [`cdn.example 300 CAA ${Buffer.concat([Buffer.of(0, 5), Buffer.from('issueletsencrypt.org')]).toString('hex')}`] } },
  {
    name: 'HTTPS at the apex (AliasMode-free ServiceMode, alpn h3,h2)', ref: 'RFC 9460 §2.2', packet: query('cdn.example', TYPE.HTTPS),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [`cdn.example 300 HTTPS ${Buffer.from([0, 1, 0, 0, 1, 0, 6, 2, 0x68, 0x33, 2, 0x68, 0x32]).toString('hex')}`] },
  },
  { name: 'TXT', ref: 'RFC 1035 §3.3.14', packet: query('cdn.example', TYPE.TXT), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['cdn.example 300 TXT "v=spf1 -all"'] } },

  // ── Wildcards (RFC 4592) ─────────────────────────────────────────────────
  {
    name: 'a wildcard synthesises the CNAME with the query name as owner, then chases it', ref: 'RFC 4592 §3.3.1',
    packet: query('Pic.Assets.cdn.example', TYPE.A),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['Pic.Assets.cdn.example 300 CNAME www.cdn.example', `${WWW} 30 A 192.0.2.10`] },
  },
  {
    name: 'a wildcard matches several labels deep', ref: 'RFC 4592 §2.1.1',
    packet: query('a.b.c.assets.cdn.example', TYPE.AAAA),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['a.b.c.assets.cdn.example 300 CNAME www.cdn.example', `${WWW} 30 AAAA 2001:db8:10::1`] },
  },
  {
    name: 'the wildcard owner queried literally answers itself', ref: 'RFC 4592 §2.2.1',
    packet: query('*.assets.cdn.example', TYPE.CNAME), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['*.assets.cdn.example 300 CNAME www.cdn.example'] },
  },
  {
    name: 'the wildcard\'s parent (an empty non-terminal) is NODATA, not matched by the wildcard', ref: 'RFC 4592 §2.2.2',
    packet: query('assets.cdn.example', TYPE.A), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_CDN] },
  },
  {
    name: 'no wildcard applies below an existing name without one: NXDOMAIN', ref: 'RFC 4592 §3.3.1',
    packet: query('x.www.cdn.example', TYPE.A), expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, authority: [SOA_CDN] },
  },

  // ── CNAME ────────────────────────────────────────────────────────────────
  {
    name: 'a CNAME chain is chased inside the zone (img → static → www)', ref: 'RFC 1034 §4.3.2 step 3.a',
    packet: query('img.cdn.example', TYPE.A),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['img.cdn.example 300 CNAME static.cdn.example', 'static.cdn.example 300 CNAME www.cdn.example', `${WWW} 30 A 192.0.2.10`] },
  },
  {
    name: 'a CNAME chain ending in NODATA carries the SOA', ref: 'RFC 2308 §2.2',
    packet: query('img.cdn.example', TYPE.MX),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['img.cdn.example 300 CNAME static.cdn.example', 'static.cdn.example 300 CNAME www.cdn.example'], authority: [SOA_CDN] },
  },
  { name: 'a query for the CNAME type returns the CNAME alone', ref: 'RFC 1034 §3.6.2', packet: query('img.cdn.example', TYPE.CNAME), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['img.cdn.example 300 CNAME static.cdn.example'] } },
  { name: 'a CNAME out of the zone is not chased', ref: 'RFC 1034 §4.3.2', packet: query('partner.cdn.example', TYPE.A), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['partner.cdn.example 300 CNAME edge.partner-cdn.example.net'], authority: [] } },

  // ── Delegation and several zones ─────────────────────────────────────────
  {
    name: 'below a delegation: a referral, AA=0, NS in authority, glue in additional', ref: 'RFC 1034 §4.3.2 step 3.b',
    packet: query('host.lab.cdn.example', TYPE.A),
    expect: {
      rcode: RCODE.NOERROR, aa: false, ...echoed, answer: [],
      authority: ['lab.cdn.example 300 NS ns1.lab.cdn.example', 'lab.cdn.example 300 NS ns.other-provider.example'], additional: ['ns1.lab.cdn.example 300 A 192.0.2.200'],
    },
  },
  {
    name: 'NS at the delegation point is a referral too', ref: 'RFC 1034 §4.3.2',
    packet: query('lab.cdn.example', TYPE.NS), expect: { rcode: RCODE.NOERROR, aa: false, ...echoed, answer: [], authority: ['lab.cdn.example 300 NS ns1.lab.cdn.example', 'lab.cdn.example 300 NS ns.other-provider.example'] },
  },
  {
    name: 'DS at the delegation point is the parent\'s to answer: authoritative NODATA with the SOA, not a referral', ref: 'RFC 4035 §3.1.4.1, RFC 4034 §5',
    packet: query('lab.cdn.example', TYPE.DS), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_CDN] },
  },
  {
    name: 'DS below the delegation point is the child\'s: a referral', ref: 'RFC 4035 §3.1.4.1',
    packet: query('host.lab.cdn.example', TYPE.DS), expect: { rcode: RCODE.NOERROR, aa: false, ...echoed, answer: [], authority: ['lab.cdn.example 300 NS ns1.lab.cdn.example', 'lab.cdn.example 300 NS ns.other-provider.example'] },
  },
  {
    name: 'DS at a served child\'s apex is still answered from the parent, with the parent\'s SOA', ref: 'RFC 4035 §3.1.4.1',
    packet: query('child.example.test', TYPE.DS), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_PARENT] },
  },
  {
    name: 'any other type at a served child\'s apex is the child\'s', ref: 'RFC 1034 §4.3.2 step 2',
    packet: query('child.example.test', TYPE.TXT), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: [], authority: [SOA_CHILD] },
  },
  {
    name: 'a child zone served alongside its parent answers for itself (longest zone match)', ref: 'RFC 1034 §4.3.2 step 2',
    packet: query('www.child.example.test', TYPE.A), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['www.child.example.test 300 A 192.0.2.20'] },
  },
  {
    name: 'the child zone\'s apex NS is authoritative, not a referral from the parent', ref: 'RFC 1034 §4.3.2 step 2',
    packet: query('child.example.test', TYPE.NS), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['child.example.test 300 NS ns1.child.example.test'] },
  },
  {
    name: 'a name the parent holds below the cut but the child lacks is the child\'s NXDOMAIN', ref: 'RFC 1034 §4.3.2 step 2',
    packet: query('only-in-parent.child.example.test', TYPE.A), expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, answer: [], authority: [SOA_CHILD] },
  },
  { name: 'the parent zone answers its own names', ref: 'RFC 1034 §4.3.2', packet: query('host.example.test', TYPE.A), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, answer: ['host.example.test 600 A 192.0.2.7'] } },

  // ── Size, truncation, TCP ────────────────────────────────────────────────
  {
    name: 'without EDNS a reply over 512 octets is truncated: TC=1, within 512', ref: 'RFC 1035 §4.2.1, RFC 2181 §9',
    packet: query('long-txt.cdn.example', TYPE.TXT), expect: { rcode: RCODE.NOERROR, aa: true, tc: true, ...echoed, opt: false },
  },
  {
    name: 'with EDNS 1232 the long TXT set fits whole', ref: 'RFC 6891 §6.2.5',
    packet: query('long-txt.cdn.example', TYPE.TXT, { edns: { udpSize: 1232 } }),
    expect: { rcode: RCODE.NOERROR, aa: true, tc: false, opt: true, ...echoed, check: (r) => assert.equal(r.answers.length, LONG_TXT_STRINGS) },
  },
  {
    name: 'EDNS with 512 octets advertised still truncates, and keeps the OPT', ref: 'RFC 6891 §7',
    packet: query('long-txt.cdn.example', TYPE.TXT, { edns: { udpSize: 512 } }), expect: { rcode: RCODE.NOERROR, tc: true, opt: true, ...echoed },
  },
  {
    name: 'over TCP the long TXT set comes whole without EDNS', ref: 'RFC 7766 §5', transport: 'tcp',
    packet: query('long-txt.cdn.example', TYPE.TXT), expect: { rcode: RCODE.NOERROR, aa: true, tc: false, ...echoed, check: (r) => assert.equal(r.answers.length, LONG_TXT_STRINGS) },
  },
  {
    name: 'optional additional records are left out rather than truncating', ref: 'RFC 2181 §9',
    packet: query('mx-many.cdn.example', TYPE.MX),
    expect: { rcode: RCODE.NOERROR, aa: true, tc: false, ...echoed, additional: [], check: (r) => assert.equal(r.answers.length, 8) },
  },
  {
    name: 'the same MX set with EDNS carries its additional addresses', ref: 'RFC 1035 §3.3.9',
    packet: query('mx-many.cdn.example', TYPE.MX, { edns: {} }),
    expect: { rcode: RCODE.NOERROR, aa: true, tc: false, ...echoed, opt: true, check: (r) => { assert.equal(r.answers.length, 8); assert.equal(r.additionals.length, 16); } },
  },

  // ── ANY (RFC 8482) ───────────────────────────────────────────────────────
  {
    name: 'ANY at the apex is answered minimally: one RRset', ref: 'RFC 8482 §4.2',
    packet: query('cdn.example', TYPE.ANY),
    expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, check: (r) => { assert.ok(r.answers.length >= 1); assert.equal(new Set(r.answers.map((a) => a.type)).size, 1); } },
  },
  {
    name: 'ANY at a name with A and AAAA is answered with one RRset', ref: 'RFC 8482 §4.2',
    packet: query(WWW, TYPE.ANY), expect: { rcode: RCODE.NOERROR, aa: true, ...echoed, check: (r) => assert.equal(new Set(r.answers.map((a) => a.type)).size, 1) },
  },
  { name: 'ANY at a missing name is NXDOMAIN', ref: 'RFC 8482', packet: query('nope.cdn.example', TYPE.ANY), expect: { rcode: RCODE.NXDOMAIN, aa: true, ...echoed, authority: [SOA_CDN] } },

  // ── CHAOS ────────────────────────────────────────────────────────────────
  ...['id.server', 'hostname.bind', 'ID.Server'].map((qname): ConformanceCase => ({
    name: `CHAOS TXT ${qname} answers the PoP id`, ref: 'RFC 4892 §2.1',
    packet: query(qname, TYPE.TXT, { klass: CLASS_CH }),
    expect: { rcode: RCODE.NOERROR, ...echoed, check: (r, c) => assert.deepEqual(r.answers.map(describeRecord), [`${qname} 0 TXT ${JSON.stringify(c.popId)}`]) },
  })),
  { name: 'CHAOS TXT version.bind is REFUSED by default', ref: 'issue 2', packet: query('version.bind', TYPE.TXT, { klass: CLASS_CH }), expect: refused },
  { name: 'an unknown CHAOS name is REFUSED', ref: 'issue 2', packet: query('authors.bind', TYPE.TXT, { klass: CLASS_CH }), expect: refused },
  { name: 'CHAOS A id.server is REFUSED (only TXT)', ref: 'RFC 4892', packet: query('id.server', TYPE.A, { klass: CLASS_CH }), expect: refused },
];
