// Checks shared by the in-process, socket and fuzz runs: the rules every
// reply must keep whatever the query was, then the row's own expectation.

import assert from 'node:assert/strict';
import { describeRecord, type CaseContext, type ConformanceCase, type Expectation } from './cases.ts';
import { crossCheck, readReply, type Reply } from './reply.ts';
import { TYPE } from './wire.ts';

export interface RequestFacts {
  /** Offset after the first question, or -1 when it cannot be read. */
  questionEnd: number;
  /** An OPT record sits in the additional section (however broken the rest is). */
  hasOpt: boolean;
  /** Largest UDP reply the sender allows: 512, or min(advertised, 1232) with EDNS. */
  udpLimit: number;
}

/** Skips a name (pointers end it); -1 when it runs past `end`. Written apart from the server's parser on purpose. */
function skipName(buf: Uint8Array, offset: number, end: number): number {
  for (let guard = 0; guard < 128 && offset < end; guard++) {
    const len = buf[offset];
    if (len === 0) return offset + 1;
    if ((len & 0xc0) === 0xc0) return offset + 2 <= end ? offset + 2 : -1;
    offset += len + 1;
  }
  return -1;
}

/** What a query asked for, read by a scanner independent of the server's parser. */
export function requestFacts(query: Uint8Array): RequestFacts {
  const facts: RequestFacts = { questionEnd: -1, hasOpt: false, udpLimit: 512 };
  if (query.length < 12) return facts;
  const view = Buffer.from(query.buffer, query.byteOffset, query.length);
  const qd = view.readUInt16BE(4);
  const an = view.readUInt16BE(6);
  const ns = view.readUInt16BE(8);
  const ar = view.readUInt16BE(10);
  let offset = 12;
  for (let q = 0; q < Math.min(qd, 64); q++) {
    offset = skipName(query, offset, query.length);
    if (offset < 0 || offset + 4 > query.length) return facts;
    offset += 4;
    if (q === 0) facts.questionEnd = offset;
  }
  for (let r = 0; r < Math.min(an + ns + ar, 256); r++) {
    offset = skipName(query, offset, query.length);
    if (offset < 0 || offset + 10 > query.length) return facts;
    const type = view.readUInt16BE(offset);
    if (type === TYPE.OPT && r >= an + ns) {
      facts.hasOpt = true;
      const advertised = Math.max(512, view.readUInt16BE(offset + 2));
      facts.udpLimit = Math.min(advertised, 1232);
    }
    offset += 10 + view.readUInt16BE(offset + 8);
  }
  return facts;
}

/** Rules for every reply to every query. Returns the decoded reply. */
export function checkInvariants(query: Uint8Array, replyBytes: Uint8Array, transport: 'udp' | 'tcp'): Reply {
  crossCheck(replyBytes);
  const reply = readReply(replyBytes);
  const facts = requestFacts(query);
  assert.equal(reply.qr, true, 'QR=1 in every reply');
  assert.equal(reply.ra, false, 'RA=0: never recursion');
  assert.equal(reply.id, (query[0] << 8) | query[1], 'ID echoed');
  assert.equal(reply.opcode, (query[2] >> 3) & 0x0f, 'opcode echoed');
  assert.equal(reply.rd, (query[2] & 0x01) !== 0, 'RD copied');
  if (reply.opt) assert.ok(facts.hasOpt, 'an OPT in the reply only when the query had one');
  const limit = transport === 'udp' ? facts.udpLimit : 65535;
  assert.ok(replyBytes.length <= limit, `reply of ${replyBytes.length} octets within the requestor's ${limit}`);
  if (reply.counts.qd === 1) {
    assert.ok(facts.questionEnd > 0, 'a question echoed only when the query had one');
    assert.deepEqual(reply.question, Buffer.from(query.subarray(12, facts.questionEnd)), 'question echoed byte for byte');
  }
  return reply;
}

export function checkExpectation(c: ConformanceCase, reply: Reply, context: CaseContext): void {
  const e = c.expect as Expectation;
  const facts = requestFacts(c.packet);
  assert.equal(reply.rcode, e.rcode, `RCODE ${reply.rcode}, expected ${e.rcode}`);
  if (e.aa !== undefined) assert.equal(reply.aa, e.aa, 'AA');
  if (e.tc !== undefined) assert.equal(reply.tc, e.tc, 'TC');
  if (e.question === 'echo') assert.deepEqual(reply.question, Buffer.from(c.packet.subarray(12, facts.questionEnd)), 'question echoed byte for byte');
  if (e.question === 'none') assert.equal(reply.counts.qd, 0, 'no question section');
  if (e.opt !== undefined) assert.equal(reply.opt !== null, e.opt, e.opt ? 'OPT in the reply' : 'no OPT in the reply');
  if (e.answer) assert.deepEqual(reply.answers.map(describeRecord), e.answer, 'answer section');
  if (e.authority) assert.deepEqual(reply.authorities.map(describeRecord), e.authority, 'authority section');
  if (e.additional) assert.deepEqual(reply.additionals.map(describeRecord), e.additional, 'additional section');
  e.check?.(reply, context);
}
