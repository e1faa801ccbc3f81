// DNSSEC building blocks (issue 21): canonical order and type bitmaps against
// RFC 4034's own examples, RRSIGs checked against signed data assembled here
// byte by byte, quantized windows, key files, and a compiled zone answered by
// the engine with and without DO.

import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameToWire } from '../../../server/dns/name.ts';
import { ALG_ECDSAP256SHA256, ALG_ED25519, generateKey, KeyError, loadKey } from '../../../server/dnssec/keys.ts';
import { compareNames, nsecTypeBitmap } from '../../../server/dnssec/nsec.ts';
import { rrsetKey, validityAt, verifyRrsig, ZoneSigner, type CanonicalRRset } from '../../../server/dnssec/sign.ts';
import { Engine, TRANSPORT_UDP } from '../../../server/engine/engine.ts';
import { compileZones } from '../../../server/policy/zones.ts';
import type { DnsSnapshot } from '../../../server/snapshot/types.ts';
import { CLASS_IN, message } from '../../conformance/wire.ts';
import { REPO_ROOT } from '../../helpers/server.ts';

const wire = (text: string): Uint8Array => nameToWire(text);
const NOW = Date.UTC(2026, 11, 6, 2, 30);

test('canonical name order is RFC 4034 §6.1\'s example order', () => {
  const ordered = ['example.', 'a.example.', 'yljkjljk.a.example.', 'z.a.example.', 'zabc.a.example.', 'z.example.', '\\001.z.example.', '*.z.example.', '\\200.z.example.'];
  const names = ordered.map((t) => {
    const labels = t.slice(0, -1).split('.').map((l) => (l === '\\001' ? Uint8Array.of(1) : l === '\\200' ? Uint8Array.of(0x80) : Buffer.from(l)));
    return Uint8Array.from([...labels.flatMap((l) => [l.length, ...l]), 0]);
  });
  const shuffled = [...names].reverse();
  shuffled.sort(compareNames);
  assert.deepEqual(shuffled, names);
});

test('the type bitmap is RFC 4034 §4.3\'s example (A MX RRSIG NSEC TYPE1234)', () => {
  const expected = [0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, ...new Array(26).fill(0), 0x20];
  assert.deepEqual([...nsecTypeBitmap([1, 15, 46, 47, 1234])], expected);
});

test('signature windows are quantized to the UTC day and cover the signing time', () => {
  const a = validityAt(NOW);
  const b = validityAt(NOW + 3 * 3600 * 1000);
  assert.deepEqual(a, b, 'two compiles on one day sign with one window');
  assert.ok(a.inception * 1000 < NOW && a.expiration * 1000 > NOW + 13 * 86400 * 1000);
  assert.notDeepEqual(validityAt(NOW + 86400 * 1000), a, 'the next day moves the window');
});

function keysDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-unit-')), 'keys');
}

test('key files are written 0600, never overwritten, and refused when group or others can read them', () => {
  const dir = keysDir();
  const file = generateKey(dir, 'example.', ALG_ECDSAP256SHA256);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.throws(() => generateKey(dir, 'example.', ALG_ECDSAP256SHA256), /already exists/);
  assert.throws(() => loadKey(dir, 'example.', ALG_ED25519), /algorithm 13 key but the zone asks for algorithm 15/);
  chmodSync(file, 0o640);
  assert.throws(() => loadKey(dir, 'example.', ALG_ECDSAP256SHA256), (e: Error) => e instanceof KeyError && /chmod 600/.test(e.message));
  assert.throws(() => loadKey(keysDir(), 'example.', ALG_ECDSAP256SHA256), /popsteer dnssec keygen/);
});

/** The octets RFC 4034 §3.1.8.1 says an RRSIG covers, for an A RRset, assembled by hand. */
function signedDataByHand(rrsig: Uint8Array, owner: Uint8Array, ttl: number, addresses: number[][]): Buffer {
  const signerEnd = 18 + wire('example.').length;
  const sorted = [...addresses].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const rrs = sorted.map((a) => Buffer.concat([owner, Buffer.from([0, 1, 0, 1, ttl >>> 24, (ttl >> 16) & 0xff, (ttl >> 8) & 0xff, ttl & 0xff, 0, 4, ...a])]));
  return Buffer.concat([rrsig.subarray(0, signerEnd), ...rrs]);
}

for (const algorithm of [ALG_ECDSAP256SHA256, ALG_ED25519]) {
  test(`algorithm ${algorithm}: an RRSIG verifies over the canonical RRset built independently, and not once an octet changes`, () => {
    const dir = keysDir();
    generateKey(dir, 'example.', algorithm);
    const key = loadKey(dir, 'example.', algorithm);
    const signer = new ZoneSigner(key, wire('example.'), validityAt(NOW));
    const owner = wire('www.example.');
    const rrset: CanonicalRRset = { owner, type: 1, klass: CLASS_IN, ttl: 300, rdatas: [Uint8Array.of(192, 0, 2, 2), Uint8Array.of(192, 0, 2, 1)] };
    const rrsig = signer.sign(rrset);
    assert.equal(rrsig[2], algorithm);
    assert.equal(rrsig[3], 2, 'labels of www.example');
    const signature = rrsig.subarray(18 + wire('example.').length);
    const data = signedDataByHand(rrsig, owner, 300, [[192, 0, 2, 2], [192, 0, 2, 1]]);
    const ok = algorithm === ALG_ED25519
      ? verify(null, data, key.publicKey, signature)
      : verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
    assert.ok(ok, 'node:crypto verifies the signature over the hand-built data');
    const reordered = { ...rrset, rdatas: [...rrset.rdatas].reverse() };
    assert.equal(rrsetKey(reordered), rrsetKey(rrset), 'the order of RDATAs does not matter');
    assert.equal(signer.sign(reordered), rrsig, 'one signature per distinct RRset');
    const bad = Uint8Array.from(rrsig);
    bad[bad.length - 1] ^= 1;
    assert.equal(verifyRrsig(bad, rrset, key), false);
    assert.equal(verifyRrsig(rrsig, { ...rrset, ttl: 301 }, key), false, 'the original TTL is signed');
  });
}

test('Ed25519: two compiles the same day make the same signatures (caches stay warm across instances)', () => {
  const dir = keysDir();
  generateKey(dir, 'example.', ALG_ED25519);
  const key = loadKey(dir, 'example.', ALG_ED25519);
  const rrset: CanonicalRRset = { owner: wire('www.example.'), type: 1, klass: CLASS_IN, ttl: 60, rdatas: [Uint8Array.of(192, 0, 2, 1)] };
  const one = new ZoneSigner(key, wire('example.'), validityAt(NOW)).sign(rrset);
  const two = new ZoneSigner(key, wire('example.'), validityAt(NOW + 3600_000)).sign(rrset);
  assert.deepEqual(one, two);
});

// ---- A compiled zone through the engine ----

const ZONE = `zone: example
ttl: 300
soa: { mname: ns1, rname: hostmaster, serial: 1, minimum: 60, ttl: 3600 }
records:
  "@": { NS: [ns1] }
  ns1: { A: 192.0.2.53 }
  a: { A: [192.0.2.1, 192.0.2.2] }
  big: { TXT: ["${'x'.repeat(200)}", "${'y'.repeat(200)}"] }
  x.m: { TXT: "deep" }
  "*.w": { TXT: "any" }
  lab: { NS: ns.lab }
  ns.lab: { A: 192.0.2.99 }
`;

function compiled(signed: boolean): DnsSnapshot {
  const config = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-zone-'));
  mkdirSync(join(config, 'zones'));
  if (signed) generateKey(join(config, 'keys'), 'example.', ALG_ECDSAP256SHA256);
  const text = signed ? ZONE.replace('ttl: 300\n', 'ttl: 300\ndnssec: { keys: keys }\n') : ZONE;
  writeFileSync(join(config, 'zones', 'example.yaml'), text);
  const { result, errors } = compileZones([join(config, 'zones', 'example.yaml')], [], { signingNow: () => NOW });
  assert.ok(result, errors.map((e) => e.format()).join('\n'));
  return { names: result.names, zones: result.zones, steering: null, hash: 'h', loadedAt: 0, ...(result.dnssec ? { dnssec: result.dnssec } : {}) };
}

interface Record { section: number; owner: string; type: number; rdata: Buffer; canonical: Uint8Array }

/** Reads a response's records (owner names decompressed). */
function records(buf: Buffer): { rcode: number; records: Record[] } {
  const readName = (at: number): { name: string; end: number } => {
    const labels: string[] = [];
    let end = -1;
    for (;;) {
      const len = buf[at];
      if (len >= 0xc0) {
        if (end < 0) end = at + 2;
        at = ((len & 0x3f) << 8) | buf[at + 1];
        continue;
      }
      if (len === 0) return { name: `${labels.join('.')}.`, end: end < 0 ? at + 1 : end };
      labels.push(buf.subarray(at + 1, at + 1 + len).toString('latin1'));
      at += len + 1;
    }
  };
  // Names inside NS, CNAME, SOA, MX and SRV RDATA, whole and lower-cased (RFC 4034 §6.2).
  const canonicalOf = (type: number, start: number, rdata: Buffer): Uint8Array => {
    const prefix = type === 15 ? 2 : type === 33 ? 6 : 0;
    const count = type === 6 ? 2 : type === 2 || type === 5 || type === 15 || type === 33 ? 1 : 0;
    if (count === 0) return Uint8Array.from(rdata);
    const parts: Uint8Array[] = [rdata.subarray(0, prefix)];
    let p = start + prefix;
    for (let n = 0; n < count; n++) {
      const { name, end } = readName(p);
      parts.push(wire(name.toLowerCase()));
      p = end;
    }
    parts.push(buf.subarray(p, start + rdata.length));
    return Uint8Array.from(Buffer.concat(parts));
  };
  let at = readName(12).end + 4;
  const out: Record[] = [];
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  counts.forEach((n, section) => {
    for (let i = 0; i < n; i++) {
      const { name, end } = readName(at);
      const type = buf.readUInt16BE(end);
      const rdlen = buf.readUInt16BE(end + 8);
      const rdata = buf.subarray(end + 10, end + 10 + rdlen);
      out.push({ section, owner: name, type, rdata, canonical: canonicalOf(type, end + 10, rdata) });
      at = end + 10 + rdlen;
    }
  });
  return { rcode: buf[3] & 0x0f, records: out };
}

function ask(engine: Engine, qname: string, qtype: number, dnssecOk: boolean): Buffer {
  const query = message({ questions: [{ name: wire(qname), type: qtype }], edns: { dnssecOk } });
  const length = engine.handle(query, query.length, TRANSPORT_UDP, { address: '192.0.2.200', family: 0 });
  return Buffer.from(engine.writer.buf.subarray(0, length));
}

const signedSnapshot = compiled(true);
const plainSnapshot = compiled(false);

test('without DO a signed zone answers byte for byte as the same zone unsigned', () => {
  const signed = new Engine(signedSnapshot, { popId: 'ams', versionBind: null, cookieSecret: 1 });
  const plain = new Engine(plainSnapshot, { popId: 'ams', versionBind: null, cookieSecret: 1 });
  for (const [name, type] of [['a.example.', 1], ['a.example.', 16], ['nope.example.', 1], ['m.example.', 1], ['x.lab.example.', 1], ['example.', 6]] as const) {
    assert.deepEqual(ask(signed, name, type, false), ask(plain, name, type, false), `${name} ${type}`);
  }
});

test('with DO: each RRset is followed by its RRSIG, and the RRSIG verifies', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const { records: rrs } = records(ask(engine, 'a.example.', 1, true));
  const answers = rrs.filter((r) => r.section === 0);
  assert.deepEqual(answers.map((r) => r.type), [1, 1, 46]);
  const key = loadKeyOfSnapshot();
  const rrset: CanonicalRRset = { owner: wire('a.example.'), type: 1, klass: CLASS_IN, ttl: 300, rdatas: answers.slice(0, 2).map((r) => r.rdata) };
  assert.ok(verifyRrsig(answers[2].rdata, rrset, key));
});

let snapshotKey: ReturnType<typeof loadKey> | null = null;
function loadKeyOfSnapshot(): ReturnType<typeof loadKey> {
  // The DNSKEY the zone publishes is the key that verifies.
  if (snapshotKey) return snapshotKey;
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const dnskey = records(ask(engine, 'example.', 48, true)).records.find((r) => r.type === 48)!;
  const raw = dnskey.rdata.subarray(4);
  const publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: raw.subarray(0, 32).toString('base64url'), y: raw.subarray(32).toString('base64url') }, format: 'jwk' });
  snapshotKey = { algorithm: ALG_ECDSAP256SHA256, publicKey, privateKey: publicKey, dnskey: Uint8Array.from(dnskey.rdata), keyTag: 0 };
  return snapshotKey;
}

/** The NSEC records of a response as "owner → next". */
function nsecs(buf: Buffer): string[] {
  return records(buf).records.filter((r) => r.type === 47).map((r) => {
    const labels: string[] = [];
    for (let at = 0; r.rdata[at] !== 0; at += r.rdata[at] + 1) labels.push(r.rdata.subarray(at + 1, at + 1 + r.rdata[at]).toString('latin1'));
    return `${r.owner} → ${labels.join('.')}.`;
  });
}

test('NXDOMAIN with DO: the NSEC covering the name and the one covering the closest encloser\'s wildcard, each signed', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const b = ask(engine, 'b.example.', 1, true);
  assert.equal(records(b).rcode, 3);
  // Chain: example, a, big, lab, m (empty non-terminal: no NSEC), x.m, ns1.
  assert.deepEqual(nsecs(b), ['a.example. → big.example.', 'example. → a.example.']);
  assert.equal(records(b).records.filter((r) => r.type === 46).length, 3, 'SOA and two NSECs signed');
  const deep = ask(engine, 'y.m.example.', 1, true);
  assert.deepEqual(nsecs(deep), ['x.m.example. → ns1.example.', 'lab.example. → x.m.example.']);
  const last = ask(engine, 'zzz.example.', 1, true);
  assert.deepEqual(nsecs(last), ['*.w.example. → example.', 'example. → a.example.'], 'the last name of the chain points back to the apex');
});

test('NODATA with DO: the name\'s own NSEC; an empty non-terminal: the NSEC covering it', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const nodata = ask(engine, 'a.example.', 16, true);
  assert.equal(records(nodata).rcode, 0);
  assert.deepEqual(nsecs(nodata), ['a.example. → big.example.']);
  const bitmap = records(nodata).records.find((r) => r.type === 47)!.rdata;
  assert.deepEqual([...bitmap.subarray(-8)], [0, 6, 0x40, 0, 0, 0, 0, 0x03], 'a has A, RRSIG and NSEC');
  const ent = ask(engine, 'm.example.', 1, true);
  assert.deepEqual(nsecs(ent), ['lab.example. → x.m.example.']);
});

test('a referral with DO: the delegation\'s NSEC (no DS) signed, its NS and glue not', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const { records: rrs } = records(ask(engine, 'www.lab.example.', 1, true));
  const authority = rrs.filter((r) => r.section === 1).map((r) => `${r.owner} ${r.type}`);
  assert.deepEqual(authority, ['lab.example. 2', 'lab.example. 47', 'lab.example. 46']);
  const sig = rrs.find((r) => r.type === 46)!;
  assert.equal(sig.rdata.readUInt16BE(0), 47, 'the only RRSIG covers the NSEC');
  assert.ok(!rrs.some((r) => r.section === 2 && r.type === 46), 'glue is not signed');
});

test('an answer that fits 512 octets unsigned but not signed: TC=1 with DO, whole without', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const at512 = (dnssecOk: boolean): { length: number; tc: boolean } => {
    const query = message({ questions: [{ name: wire('big.example.'), type: 16 }], edns: { dnssecOk, udpSize: 512 } });
    const length = engine.handle(query, query.length, TRANSPORT_UDP, { address: '192.0.2.200', family: 0 });
    return { length, tc: (engine.writer.buf[2] & 0x02) !== 0 };
  };
  assert.ok(ask(engine, 'big.example.', 16, true).length > 512, 'signed, it needs more than 512 octets');
  assert.deepEqual(at512(false).tc, false);
  const signed = at512(true);
  assert.ok(signed.tc && signed.length <= 512, 'TC set, within the requestor\'s size');
});

test('a wildcard answer with DO: signed with the wildcard\'s label count, with the NSEC that proves the query name does not exist', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const { rcode, records: rrs } = records(ask(engine, 'q.w.example.', 16, true));
  assert.equal(rcode, 0);
  const answers = rrs.filter((r) => r.section === 0);
  assert.deepEqual(answers.map((r) => `${r.owner} ${r.type}`), ['q.w.example. 16', 'q.w.example. 46']);
  assert.equal(answers[1].rdata[3], 2, 'labels: w.example, the wildcard\'s owner without "*"');
  // "*" sorts before "q": the wildcard's own NSEC (the last of the chain) covers q.w.
  assert.deepEqual(nsecs(ask(engine, 'q.w.example.', 16, true)), ['*.w.example. → example.']);
  const before = ask(engine, '!.w.example.', 16, true);
  assert.deepEqual(nsecs(before), ['ns1.example. → *.w.example.'], 'a label sorting before "*" is covered by the NSEC before the wildcard');
  const nodata = ask(engine, 'q.w.example.', 1, true);
  assert.deepEqual(nsecs(nodata), ['*.w.example. → example.'], 'NODATA: the same NSEC also shows the wildcard has no A');
  const plain = ask(engine, 'q.w.example.', 16, false);
  assert.ok(!records(plain).records.some((r) => r.type === 46 || r.type === 47), 'without DO: no DNSSEC records');
});

test('the apex publishes DNSKEY, CDNSKEY (the same key) and CDS (the DS `popsteer dnssec ds` prints), each signed', () => {
  const engine = new Engine(signedSnapshot, { popId: 'ams', versionBind: null });
  const first = (type: number): Record[] => records(ask(engine, 'example.', type, true)).records.filter((r) => r.section === 0);
  const dnskey = first(48);
  const cdnskey = first(60);
  const cds = first(59);
  assert.deepEqual(dnskey.map((r) => r.type), [48, 46]);
  assert.deepEqual(cdnskey.map((r) => r.type), [60, 46]);
  assert.deepEqual(cdnskey[0].rdata, dnskey[0].rdata);
    const digest = createHash('sha256').update(wire('example.')).update(dnskey[0].rdata).digest();
  assert.deepEqual(cds[0].rdata.subarray(4), digest, 'CDS digest: SHA-256 over owner and DNSKEY RDATA');
  assert.equal(cds[0].rdata[3], 2, 'digest type 2');
  assert.equal(cds[1].type, 46);
});

test('the signed example zone: every RRSIG in every DO=1 answer verifies over the RRset it follows (every name, ten types, a missing name below each)', () => {
  const config = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-example-'));
  cpSync(join(REPO_ROOT, 'policies', 'zones'), join(config, 'zones'), { recursive: true });
  generateKey(join(config, 'keys'), 'cdn.example', ALG_ECDSAP256SHA256);
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, 'zone: cdn.example\ndnssec: { keys: keys }'));
  const { result, errors } = compileZones([zoneFile], [], { signingNow: () => NOW });
  assert.ok(result, errors.map((e) => e.format()).join('\n'));
  const key = loadKey(join(config, 'keys'), 'cdn.example', ALG_ECDSAP256SHA256);
  const engine = new Engine({ names: result.names, zones: result.zones, steering: null, hash: 'h', loadedAt: 0, dnssec: result.dnssec! }, { popId: 'ams', versionBind: null });
  const names: string[] = [];
  for (let node of result.names.buckets) for (; node !== null; node = node.next) names.push(node.text.toLowerCase());
  let verified = 0;
  for (const name of names) {
    for (const qname of [name, `zz-missing.${name}`]) {
      for (const type of [1, 2, 5, 6, 15, 16, 28, 33, 43, 48, 65]) {
        const { records: rrs } = records(ask(engine, qname, type, true));
        for (const [i, sig] of rrs.entries()) {
          if (sig.type !== 46) continue;
          const covered = rrs.slice(0, i).filter((r) => r.section === sig.section && r.owner === sig.owner && r.type === sig.rdata.readUInt16BE(0));
          assert.ok(covered.length > 0, `${qname} ${type}: an RRSIG follows its RRset`);
          const rrset: CanonicalRRset = {
            owner: wire(sig.rdata[3] < covered[0].owner.split('.').length - 1 ? `*.${covered[0].owner.split('.').slice(-1 - sig.rdata[3]).join('.')}` : covered[0].owner.toLowerCase()),
            type: covered[0].type, klass: CLASS_IN, ttl: sig.rdata.readUInt32BE(4), rdatas: covered.map((r) => r.canonical),
          };
          assert.ok(verifyRrsig(sig.rdata, rrset, key), `${qname} ${type}: RRSIG over ${covered[0].owner} ${covered[0].type} verifies`);
          verified++;
        }
      }
    }
  }
  assert.ok(verified > 500, `${verified} signatures checked`);
});
