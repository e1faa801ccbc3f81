// RRSIGs (RFC 4034 §3, §6): the canonical form of an RRset, a signature over
// it, and a check of that signature with the public key. A ZoneSigner makes
// each distinct RRset's signature once per compile and verifies it before
// keeping it: the same RRset in a hundred templates (the SOA of every
// negative answer) is signed once.

import { createHash, sign, verify } from 'node:crypto';
import { wireToName } from '../dns/name.ts';
import { ALG_ED25519, type PublishedSignatures, type ZoneKey } from './keys.ts';

export const TYPE_RRSIG = 46;
export const TYPE_NSEC = 47;
const DAY = 86400;

/** One RRset in canonical form: lower-cased owner, canonical RDATAs (names lower-cased, uncompressed). */
export interface CanonicalRRset {
  owner: Uint8Array;
  type: number;
  klass: number;
  /** The original TTL the signature covers (served TTLs may be lower, RFC 4035 §5.3.3). */
  ttl: number;
  rdatas: Uint8Array[];
}

/** Signature validity: inception and expiration in seconds since the epoch. */
interface Validity {
  inception: number;
  expiration: number;
}

/**
 * The window for signatures made at `nowMs`: from the start of the previous
 * UTC day (for clocks behind ours) to `days` days after the start of today.
 * Quantized to days, so instances compiling the same input on the same day
 * publish the same window.
 */
export function validityAt(nowMs: number, days = 14): Validity {
  const today = Math.floor(nowMs / 1000 / DAY) * DAY;
  return { inception: today - DAY, expiration: today + days * DAY };
}

/** Labels field: the owner's label count, not counting a leading "*" (RFC 4034 §3.1.3). */
function labelCount(owner: Uint8Array): number {
  let n = 0;
  for (let i = 0; owner[i] !== 0; i += owner[i] + 1) n++;
  if (owner[0] === 1 && owner[1] === 0x2a) n--;
  return n;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The RRSIG RDATA up to the signature (signer name uncompressed and lower-cased). */
function rrsigHead(rrset: CanonicalRRset, key: ZoneKey, signer: Uint8Array, validity: Validity): Uint8Array {
  const out = Buffer.alloc(18 + signer.length);
  out.writeUInt16BE(rrset.type, 0);
  out[2] = key.algorithm;
  out[3] = labelCount(rrset.owner);
  out.writeUInt32BE(rrset.ttl >>> 0, 4);
  out.writeUInt32BE(validity.expiration >>> 0, 8);
  out.writeUInt32BE(validity.inception >>> 0, 12);
  out.writeUInt16BE(key.keyTag, 16);
  out.set(signer, 18);
  return out;
}

/** The octets a signature covers: the RRSIG head, then each RR in canonical order, duplicates dropped. */
function signedData(head: Uint8Array, rrset: CanonicalRRset): Buffer {
  const sorted = [...rrset.rdatas].sort(compareBytes).filter((r, i, all) => i === 0 || compareBytes(r, all[i - 1]) !== 0);
  const parts: Uint8Array[] = [head];
  for (const rdata of sorted) {
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(rrset.type, 0);
    fixed.writeUInt16BE(rrset.klass, 2);
    fixed.writeUInt32BE(rrset.ttl >>> 0, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    parts.push(rrset.owner, fixed, rdata);
  }
  return Buffer.concat(parts);
}

function signBytes(key: ZoneKey, data: Buffer): Buffer {
  if (key.privateKey === null) throw new Error(`key ${key.keyTag} has no private half here`);
  return key.algorithm === ALG_ED25519 ? sign(null, data, key.privateKey) : sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

/** Whether an RRSIG RDATA (head + signature) verifies over `rrset` with `key`'s public half. */
export function verifyRrsig(rrsig: Uint8Array, rrset: CanonicalRRset, key: ZoneKey): boolean {
  const signerEnd = nameEnd(rrsig, 18);
  const head = rrsig.subarray(0, signerEnd);
  const signature = rrsig.subarray(signerEnd);
  const data = signedData(head, rrset);
  return key.algorithm === ALG_ED25519
    ? verify(null, data, key.publicKey, signature)
    : verify('sha256', data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

function nameEnd(buf: Uint8Array, at: number): number {
  while (buf[at] !== 0) at += buf[at] + 1;
  return at + 1;
}

/** A key for the signature cache: the whole canonical RRset (order of RDATAs ignored). */
export function rrsetKey(rrset: CanonicalRRset): string {
  const sorted = [...rrset.rdatas].map((r) => Buffer.from(r).toString('latin1')).sort();
  return `${Buffer.from(rrset.owner).toString('latin1')}|${rrset.type}|${rrset.klass}|${rrset.ttl}|${sorted.join('\u0001')}`;
}

/** The 16-octet digest a published signature set files an RRset's signatures under (presigned.ts), as a latin1 string. */
export function rrsetDigest(key: string): string {
  return createHash('sha256').update(key, 'latin1').digest().subarray(0, 16).toString('latin1');
}

/**
 * Separates a canonical RRset key from the tag of a key other than the
 * active one in ZoneSigner.signatures: above U+00FF, so never inside a key
 * (latin1 octets).
 */
const OTHER_KEY_MARK = '\u0100';

/** The canonical RRset key of a ZoneSigner.signatures entry (an other key's tag taken off). */
export const baseRrsetKey = (entry: string): string => {
  const mark = entry.indexOf(OTHER_KEY_MARK);
  return mark < 0 ? entry : entry.slice(0, mark);
};

/** The key tag an RRSIG RDATA names. */
const rrsigKeyTag = (rrsig: Uint8Array): number => (rrsig[16] << 8) | rrsig[17];

/** The apex RRsets every published key signs during a rollover (rollover.ts): DNSKEY, CDS, CDNSKEY. */
const KEY_SET_TYPES = new Set([48, 59, 60]);

/** Signs a zone's RRsets at compile time, each distinct RRset once, each signature verified once. */
export class ZoneSigner {
  readonly key: ZoneKey;
  readonly signer: Uint8Array;
  readonly validity: Validity;
  /**
   * Canonical RRset key → RRSIG RDATA; travels in the snapshot for the
   * steered answers built later. Other published keys' signatures over the
   * key sets are here too, under the key, OTHER_KEY_MARK and their tag (a
   * published signature set is made from this map).
   */
  readonly signatures = new Map<string, Uint8Array>();
  /** Published keys other than `key`: they sign the apex key sets too (a rollover's old or next key). */
  private readonly otherKeys: ZoneKey[];
  /** Signatures made where the policy set was published, when the keys here have no private half. */
  private readonly presigned: PublishedSignatures | null;

  /** `validity` is ignored for a key with published signatures: theirs is the window. */
  constructor(key: ZoneKey, apexLower: Uint8Array, validity: Validity, otherKeys: ZoneKey[] = []) {
    this.key = key;
    this.signer = apexLower;
    this.presigned = key.presigned ?? null;
    this.validity = this.presigned === null ? validity : { inception: this.presigned.inception, expiration: this.presigned.expiration };
    this.otherKeys = otherKeys.filter((k) => k !== key);
  }

  /** How many signatures were made (or taken from a published set), the key sets' extra ones included. */
  get count(): number {
    return this.signatures.size;
  }

  /** The RRSIG RDATA for `rrset`, made (and checked) on first use. */
  sign(rrset: CanonicalRRset): Uint8Array {
    const k = rrsetKey(rrset);
    const known = this.signatures.get(k);
    if (known) return known;
    const rrsig = this.signWith(this.key, rrset);
    this.signatures.set(k, rrsig);
    return rrsig;
  }

  /** Every RRSIG for `rrset`: the active key's, and at the apex key sets each other published key's. */
  signAll(rrset: CanonicalRRset): Uint8Array[] {
    const own = this.sign(rrset);
    if (this.otherKeys.length === 0 || !KEY_SET_TYPES.has(rrset.type) || compareBytes(rrset.owner, this.signer) !== 0) return [own];
    const k = rrsetKey(rrset);
    return [own, ...this.otherKeys.map((key) => {
      const tagged = `${k}${OTHER_KEY_MARK}${key.keyTag}`;
      let rrsig = this.signatures.get(tagged);
      if (!rrsig) this.signatures.set(tagged, rrsig = this.signWith(key, rrset));
      return rrsig;
    })];
  }

  private signWith(key: ZoneKey, rrset: CanonicalRRset): Uint8Array {
    if (this.presigned !== null) return this.takePublished(this.presigned, key, rrset);
    const head = rrsigHead(rrset, key, this.signer, this.validity);
    const rrsig = Buffer.concat([head, signBytes(key, signedData(head, rrset))]);
    if (!verifyRrsig(rrsig, rrset, key)) throw new Error(`a fresh signature over ${rrset.type} did not verify`);
    return rrsig;
  }

  /**
   * The published signature by `key` over `rrset`, verified before it is
   * kept. Missing or failing, the set does not serve: it compiles to other
   * answers here than where it was signed, or the file is damaged.
   */
  private takePublished(published: PublishedSignatures, key: ZoneKey, rrset: CanonicalRRset): Uint8Array {
    const rrsig = published.byDigest.get(rrsetDigest(rrsetKey(rrset)))?.find((r) => rrsigKeyTag(r) === key.keyTag);
    const what = (): string => `${published.file}: the published signature by key ${key.keyTag} over ${wireToName(rrset.owner)} type ${rrset.type} (ttl ${rrset.ttl})`;
    if (rrsig === undefined) {
      throw new Error(`${what()} is missing; this policy set compiles to other answers here than where it was published: publish it again (popsteer publish, where the keys are)`);
    }
    if (!verifyRrsig(rrsig, rrset, key)) throw new Error(`${what()} does not verify; publish the set again`);
    return rrsig;
  }
}
