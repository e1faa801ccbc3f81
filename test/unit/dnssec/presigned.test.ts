// Signatures published with a policy revision (dnssec/presigned.ts): made
// where the keys are, filed by RRset digest, and served by a signer that has
// only the public keys — every signature verified before it is kept, the
// published window kept, a missing, damaged or expired one refused.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { lowerWire, nameToWire } from '../../../server/dns/name.ts';
import { ALG_ECDSAP256SHA256, generateKey, KeyError, loadKeyFile, TYPE_DNSKEY } from '../../../server/dnssec/keys.ts';
import { encodeSignatureSet } from '../../../server/dnssec/presigned.ts';
import { loadKeySet } from '../../../server/dnssec/rollover.ts';
import { validityAt, ZoneSigner, type CanonicalRRset } from '../../../server/dnssec/sign.ts';

const ZONE = 'example.';
const APEX = lowerWire(nameToWire(ZONE));
const NOW = Date.now();

/** Two CSKs of a rollover's published phase (old signs, both sign the key set), and the RRsets signed. */
function publisher(): { signer: ZoneSigner; keys: ReturnType<typeof loadKeySet>; dnskey: CanonicalRRset; a: CanonicalRRset } {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-presigned-pub-'));
  const old = loadKeyFile(generateKey(dir, ZONE, ALG_ECDSAP256SHA256, (t) => join(dir, `old.${t}.pem`)), ZONE, null);
  const next = loadKeyFile(generateKey(dir, ZONE, ALG_ECDSAP256SHA256, (t) => join(dir, `next.${t}.pem`), old.keyTag), ZONE, null);
  const keys = { active: old, published: [old, next], parentKeys: [old, next] };
  const signer = new ZoneSigner(old, APEX, validityAt(NOW), keys.published);
  const dnskey: CanonicalRRset = { owner: APEX, type: TYPE_DNSKEY, klass: 1, ttl: 3600, rdatas: [old.dnskey, next.dnskey] };
  // 192.0.2.1 and .2: octets 1 and 2 inside the RRset key, which once cut keys short.
  const a: CanonicalRRset = { owner: lowerWire(nameToWire('www.example.')), type: 1, klass: 1, ttl: 60, rdatas: [Uint8Array.of(192, 0, 2, 1), Uint8Array.of(192, 0, 2, 2)] };
  signer.signAll(dnskey);
  signer.sign(a);
  return { signer, keys, dnskey, a };
}

/** A keys directory as a revision leaves it on an instance: the signature file, no private key. */
function instanceDir(bytes: Buffer, stem = 'example'): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'popsteer-presigned-pop-')), 'keys');
  mkdirSync(dir);
  writeFileSync(join(dir, `${stem}.signatures`), bytes);
  return dir;
}

test('published signatures serve without the private key: the same RRSIGs (both keys on the key set), the published window', () => {
  const { signer, keys, dnskey, a } = publisher();
  const set = encodeSignatureSet(ZONE, keys, signer.signatures);
  assert.equal(set.count, 3);
  const loaded = loadKeySet(instanceDir(set.bytes), ZONE, ALG_ECDSAP256SHA256);
  assert.equal(loaded.active.privateKey, null);
  assert.deepEqual(loaded.published.map((k) => k.keyTag), keys.published.map((k) => k.keyTag));
  // Another day's window is asked for; the published one is kept.
  const pop = new ZoneSigner(loaded.active, APEX, validityAt(NOW + 5 * 86_400_000), loaded.published);
  assert.deepEqual(pop.validity, signer.validity);
  assert.deepEqual(pop.signAll(dnskey).map((s) => Buffer.from(s)), signer.signAll(dnskey).map((s) => Buffer.from(s)));
  assert.deepEqual(Buffer.from(pop.sign(a)), Buffer.from(signer.sign(a)));
  const other: CanonicalRRset = { ...a, rdatas: [Uint8Array.of(192, 0, 2, 3)] };
  assert.throws(() => pop.sign(other), /the published signature by key \d+ over www\.example\. type 1 \(ttl 60\) is missing; .*publish it again/);
});

test('a published signature that does not verify is refused before it is kept', () => {
  const { signer, keys, a } = publisher();
  const raw = gunzipSync(encodeSignatureSet(ZONE, keys, signer.signatures).bytes);
  raw[raw.length - 1] ^= 0x01;
  const loaded = loadKeySet(instanceDir(gzipSync(raw)), ZONE, null);
  const pop = new ZoneSigner(loaded.active, APEX, validityAt(NOW), loaded.published);
  // The last octet belongs to one of the three signatures: whichever RRset it covers fails.
  const dnskey: CanonicalRRset = { owner: APEX, type: TYPE_DNSKEY, klass: 1, ttl: 3600, rdatas: keys.published.map((k) => k.dnskey) };
  assert.throws(() => { pop.sign(a); pop.signAll(dnskey); }, /does not verify; publish the set again/);
});

test('damaged, expired, another zone\'s: refused with what to do; a private key present signs instead', () => {
  const { signer, keys } = publisher();
  const good = encodeSignatureSet(ZONE, keys, signer.signatures).bytes;
  assert.throws(() => loadKeySet(instanceDir(Buffer.from('not gzip')), ZONE, null), (e: Error) => e instanceof KeyError && /not a signature set popsteer can read/.test(e.message));
  assert.throws(() => loadKeySet(instanceDir(good, 'other'), 'other.', null), /holds the signatures of zone example, not other/);
  assert.throws(() => loadKeySet(instanceDir(good), ZONE, 15), /algorithm 13 signatures but the zone asks for algorithm 15/);
  const clock = join(mkdtempSync(join(tmpdir(), 'popsteer-presigned-clock-')), 'now');
  writeFileSync(clock, String(signer.validity.expiration * 1000));
  const saved = process.env.POPSTEER_CLOCK_FILE;
  process.env.POPSTEER_CLOCK_FILE = clock;
  try {
    assert.throws(() => loadKeySet(instanceDir(good), ZONE, null), /expired at .*publish the set again/);
  } finally {
    if (saved === undefined) delete process.env.POPSTEER_CLOCK_FILE;
    else process.env.POPSTEER_CLOCK_FILE = saved;
  }
  const withKey = instanceDir(good);
  generateKey(withKey, ZONE, ALG_ECDSAP256SHA256);
  assert.notEqual(loadKeySet(withKey, ZONE, null).active.privateKey, null);
});
