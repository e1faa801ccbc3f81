// NSEC3 (RFC 5155, RFC 9276 parameters): the hash against RFC 5155
// Appendix A's own values, base32hex, the covering search with its wrap, and
// a compiled `nsec: nsec3` zone through the engine, each denial checked
// record by record against hashes computed here: NXDOMAIN (closest encloser
// matched, next closer and wildcard covered), NODATA (matched, type absent),
// the insecure delegation (NS without DS), a wildcard expansion (next closer
// covered), and NSEC3PARAM published and signed.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameToWire } from '../../../server/dns/name.ts';
import { ALG_ECDSAP256SHA256, generateKey } from '../../../server/dnssec/keys.ts';
import { base32hex, coveringIndex, nsec3Hash, RFC9276_PARAMS } from '../../../server/dnssec/nsec3.ts';
import { Engine, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import { compileZones } from '../../../server/policy/zones.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { message } from '../../conformance/wire.ts';

const wire = (text: string): Uint8Array => nameToWire(text);
const NOW = Date.UTC(2026, 11, 6, 2, 30);
const hashText = (name: string): string => base32hex(nsec3Hash(wire(name), RFC9276_PARAMS));

test('the NSEC3 hash is RFC 5155 Appendix A\'s (salt aabbccdd, 12 iterations)', () => {
  const params = { iterations: 12, salt: Uint8Array.from([0xaa, 0xbb, 0xcc, 0xdd]) };
  const expected: Array<[string, string]> = [
    ['example.', '0p9mhaveqvm6t7vbl5lop2u3t2rp3tom'],
    ['a.example.', '35mthgpgcu1qg68fab165klnsnk3dpvl'],
    ['*.w.example.', 'r53bq7cc2uvmubfu5ocmm6pers9tk9en'],
    ['x.w.example.', 'b4um86eghhds6nea196smvmlo4ors995'],
    ['ns1.example.', '2t7b4g4vsa5smi47k61mv5bv1a22bojr'],
  ];
  for (const [name, hash] of expected) assert.equal(base32hex(nsec3Hash(wire(name), params)), hash, name);
});

test('base32hex is RFC 4648 §10\'s extended-hex vectors (lower case, no padding)', () => {
  for (const [input, output] of [['f', 'co'], ['fo', 'cpng'], ['foo', 'cpnmu'], ['foob', 'cpnmuog'], ['fooba', 'cpnmuoj1'], ['foobar', 'cpnmuoj1e8']]) {
    assert.equal(base32hex(Buffer.from(input)), output);
  }
});

test('the covering record is the last hash at or before, wrapping to the last for a hash before the first', () => {
  const chain = [Uint8Array.of(2), Uint8Array.of(5), Uint8Array.of(9)];
  assert.deepEqual([1, 2, 5, 6, 9, 200].map((b) => coveringIndex(chain, Uint8Array.of(b))), [2, 0, 1, 1, 2, 2]);
});

// ---- An NSEC3 zone through the engine ----

const ZONE = `zone: example
ttl: 300
dnssec: { keys: keys, nsec: nsec3 }
soa: { mname: ns1, rname: hostmaster, serial: 1, minimum: 60, ttl: 3600 }
records:
  "@": { NS: [ns1] }
  ns1: { A: 192.0.2.53 }
  a: { A: 192.0.2.1 }
  x.m: { TXT: "deep" }
  "*.w": { TXT: "any" }
  lab: { NS: ns.lab }
  ns.lab: { A: 192.0.2.99 }
`;

function compiled(): DnsSnapshot {
  const config = mkdtempSync(join(tmpdir(), 'popsteer-nsec3-zone-'));
  mkdirSync(join(config, 'zones'));
  generateKey(join(config, 'keys'), 'example.', ALG_ECDSAP256SHA256);
  writeFileSync(join(config, 'zones', 'example.yaml'), ZONE);
  const { result, errors } = compileZones([join(config, 'zones', 'example.yaml')], [], { signingNow: () => NOW });
  assert.ok(result, errors.map((e) => e.format()).join('\n'));
  return { names: result.names, zones: result.zones, steering: null, hash: 'h', loadedAt: 0, dnssec: result.dnssec! };
}

interface Nsec3 { owner: string; next: string; types: number[] }

/** The NSEC3 records of a response's authority section, and the types its RRSIGs cover there. */
function denial(buf: Buffer): { rcode: number; nsec3: Nsec3[]; signedTypes: number[]; answerTypes: number[] } {
  const skip = (at: number): number => {
    while (buf[at] !== 0 && buf[at] < 0xc0) at += buf[at] + 1;
    return buf[at] === 0 ? at + 1 : at + 2;
  };
  const firstLabel = (at: number): string => buf.subarray(at + 1, at + 1 + buf[at]).toString('latin1');
  let at = skip(12) + 4;
  const nsec3: Nsec3[] = [];
  const signedTypes: number[] = [];
  const answerTypes: number[] = [];
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8)];
  for (let section = 0; section < 2; section++) {
    for (let i = 0; i < counts[section]; i++) {
      const owner = at;
      const end = skip(at);
      const type = buf.readUInt16BE(end);
      const rdata = buf.subarray(end + 10, end + 10 + buf.readUInt16BE(end + 8));
      if (section === 0) answerTypes.push(type);
      if (section === 1 && type === 46) signedTypes.push(rdata.readUInt16BE(0));
      if (section === 1 && type === 50) {
        assert.deepEqual([...rdata.subarray(0, 5)], [1, 0, 0, 0, 0], 'SHA-1, no opt-out, 0 iterations, no salt');
        const next = base32hex(rdata.subarray(6, 6 + rdata[5]));
        const types: number[] = [];
        for (let p = 6 + rdata[5]; p < rdata.length; p += 2 + rdata[p + 1]) {
          for (let b = 0; b < rdata[p + 1] * 8; b++) if (rdata[p + 2 + (b >> 3)] & (0x80 >> (b & 7))) types.push(rdata[p] * 256 + b);
        }
        nsec3.push({ owner: firstLabel(owner), next, types });
      }
      at = end + 10 + rdata.length;
    }
  }
  return { rcode: buf[3] & 0x0f, nsec3, signedTypes, answerTypes };
}

const engine = new Engine(compiled(), { popId: 'ams', versionBind: null, cookieSecret: 1 });

function ask(qname: string, qtype: number): ReturnType<typeof denial> {
  const query = message({ questions: [{ name: wire(qname), type: qtype }], edns: { dnssecOk: true } });
  const length = engine.handle(query, query.length, TRANSPORT_UDP, { address: '192.0.2.200', family: 0 });
  return denial(Buffer.from(engine.writer.buf.subarray(0, length)));
}

const matches = (r: Nsec3, name: string): boolean => r.owner === hashText(name);
/** Whether `r` covers the hash of `name` (strictly between owner and next, or across the wrap). */
function covers(r: Nsec3, name: string): boolean {
  const h = hashText(name);
  return r.owner < r.next ? r.owner < h && h < r.next : h > r.owner || h < r.next;
}

test('NXDOMAIN: the closest encloser matched, the next closer name and the wildcard covered, each NSEC3 signed', () => {
  const r = ask('nope.m.example.', 1);
  assert.equal(r.rcode, 3);
  assert.ok(r.nsec3.some((n) => matches(n, 'm.example.')), 'closest encloser m.example (an empty non-terminal) matched');
  assert.ok(r.nsec3.some((n) => covers(n, 'nope.m.example.')), 'next closer covered');
  assert.ok(r.nsec3.some((n) => covers(n, '*.m.example.')), 'wildcard at the encloser covered');
  assert.equal(r.signedTypes.filter((t) => t === 50).length, r.nsec3.length);
  const deeper = ask('q.nope.example.', 1);
  assert.ok(deeper.nsec3.some((n) => matches(n, 'example.')) && deeper.nsec3.some((n) => covers(n, 'nope.example.')), 'next closer is nope.example');
});

test('NODATA: the name\'s own NSEC3 without the type; an empty non-terminal has one with an empty bitmap', () => {
  const r = ask('a.example.', 16);
  assert.equal(r.rcode, 0);
  const own = r.nsec3.find((n) => matches(n, 'a.example.'));
  assert.deepEqual(own?.types, [1, 46]);
  assert.deepEqual(ask('m.example.', 1).nsec3.find((n) => matches(n, 'm.example.'))?.types, []);
});

test('the insecure delegation: the NSEC3 of lab lists NS and not DS, with the referral and for DS', () => {
  for (const [name, type] of [['x.lab.example.', 1], ['lab.example.', 43]] as const) {
    const own = ask(name, type).nsec3.find((n) => matches(n, 'lab.example.'));
    assert.deepEqual(own?.types, [2], name);
  }
});

test('a wildcard expansion carries the NSEC3 covering the next closer name; its NODATA the encloser and the wildcard too', () => {
  const r = ask('q.w.example.', 16);
  assert.deepEqual(r.answerTypes, [16, 46]);
  assert.ok(r.nsec3.some((n) => covers(n, 'q.w.example.')), 'q.w.example covered');
  const nodata = ask('q.w.example.', 1);
  assert.ok(nodata.nsec3.some((n) => matches(n, 'w.example.')) && nodata.nsec3.some((n) => matches(n, '*.w.example.')));
});

test('NSEC3PARAM is at the apex, signed, and in the apex NSEC3 bitmap', () => {
  const r = ask('example.', 51);
  assert.deepEqual(r.answerTypes, [51, 46]);
  assert.ok(ask('example.', 16).nsec3.find((n) => matches(n, 'example.'))?.types.includes(51));
});
