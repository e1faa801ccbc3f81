// Signatures that travel inside a published policy revision (issue 21): the
// publisher, which holds the zone's private keys, compiles the set, signs
// it as serve would, and stores every signature in one file per zone,
// <keys dir>/<zone>.signatures. An instance whose keys directory holds that
// file and no private key compiles the same set and, instead of signing,
// takes each RRset's signature from the file, verifying it with the
// published DNSKEY before keeping it (sign.ts ZoneSigner); nothing is
// signed on a PoP server. Such an instance cannot re-sign: its signatures
// expire with the file's window, and refresh.ts reports it unfit before.
//
// The file, gzip-compressed: "POPSTEER-RRSIG 1\n", a 4-octet length and a
// JSON header (zone, algorithm, window, active key tag, published DNSKEYs,
// the tags the CDS set lists, the entry count), then per RRset the 16-octet
// digest of its canonical form (sign.ts rrsetDigest: owner, type, class,
// original TTL, RDATAs), a count, and each RRSIG RDATA with a 2-octet length.

import { existsSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { lowerWire, nameToWire } from '../dns/name.ts';
import { KeyError, keyFileOf, publicZoneKey, zoneFileStem, type PublishedSignatures, type ZoneKey } from './keys.ts';
import { signingClock } from './refresh.ts';
import { baseRrsetKey, rrsetDigest } from './sign.ts';

const MAGIC = Buffer.from('POPSTEER-RRSIG 1\n', 'latin1');

/** The zone's keys as a published signature set gives them (rollover.ts KeySet's shape). */
interface PublishedKeySet {
  active: ZoneKey;
  published: ZoneKey[];
  parentKeys: ZoneKey[];
}

interface Header {
  zone: string;
  algorithm: number;
  inception: number;
  expiration: number;
  active: number;
  dnskeys: string[];
  parents: number[];
  entries: number;
}

/** The published signature file of a zone in its keys directory. */
function signaturesFileOf(keysDir: string, zone: string): string {
  return join(keysDir, `${zoneFileStem(zone)}.signatures`);
}

const apexWire = (zone: string): Uint8Array => lowerWire(nameToWire(zone.endsWith('.') ? zone : `${zone}.`));

/** Whether an RRSIG RDATA names `signer` (lower-cased wire) as its signer. */
function signedBy(rrsig: Uint8Array, signer: Uint8Array): boolean {
  if (rrsig.length < 18 + signer.length) return false;
  for (let i = 0; i < signer.length; i++) if (rrsig[18 + i] !== signer[i]) return false;
  return true;
}

/**
 * The signature file of one zone from a compile's signatures (DnssecTables
 * .signatures, every zone's): those whose signer is the zone's apex, filed
 * by RRset digest, with the keys a PoP needs to verify and publish them.
 */
export function encodeSignatureSet(zone: string, keys: PublishedKeySet, signatures: ReadonlyMap<string, Uint8Array>): { bytes: Buffer; count: number; expiration: number } {
  const apex = apexWire(zone);
  const byDigest = new Map<string, Uint8Array[]>();
  let window: [number, number] | null = null;
  let count = 0;
  for (const [key, rrsig] of signatures) {
    if (!signedBy(rrsig, apex)) continue;
    const view = Buffer.from(rrsig.buffer, rrsig.byteOffset, rrsig.byteLength);
    const w: [number, number] = [view.readUInt32BE(12), view.readUInt32BE(8)];
    if (window === null) window = w;
    else if (window[0] !== w[0] || window[1] !== w[1]) throw new KeyError(`zone ${zone}: signatures of two windows in one compile`);
    const digest = rrsetDigest(baseRrsetKey(key));
    const list = byDigest.get(digest) ?? [];
    list.push(rrsig);
    byDigest.set(digest, list);
    count++;
  }
  if (window === null) throw new KeyError(`zone ${zone}: the compile made no signatures for it`);
  const header: Header = {
    zone: zone.replace(/\.$/, '').toLowerCase(), algorithm: keys.active.algorithm, inception: window[0], expiration: window[1], active: keys.active.keyTag,
    dnskeys: keys.published.map((k) => Buffer.from(k.dnskey).toString('base64')), parents: keys.parentKeys.map((k) => k.keyTag), entries: byDigest.size,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const parts: Buffer[] = [MAGIC, u32(json.length), json];
  for (const [digest, list] of byDigest) {
    parts.push(Buffer.from(digest, 'latin1'), Buffer.of(list.length));
    for (const rrsig of list) parts.push(u16(rrsig.length), Buffer.from(rrsig));
  }
  return { bytes: gzipSync(Buffer.concat(parts), { level: 9 }), count, expiration: window[1] * 1000 };
}

const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };

/** Parses a signature file; throws KeyError saying what is wrong with it. */
function decodeSignatureSet(file: string, bytes: Buffer): { header: Header; byDigest: Map<string, Uint8Array[]> } {
  const damaged = (why: string): KeyError => new KeyError(`${file} is not a signature set popsteer can read (${why}); publish the policy set again where the keys are`);
  let raw: Buffer;
  try {
    raw = gunzipSync(bytes);
  } catch (e) {
    throw damaged((e as Error).message);
  }
  if (raw.length < MAGIC.length + 4 || !raw.subarray(0, MAGIC.length).equals(MAGIC)) throw damaged('no POPSTEER-RRSIG 1 header');
  let at = MAGIC.length;
  const jsonLength = raw.readUInt32BE(at);
  at += 4;
  let header: Header;
  try {
    header = JSON.parse(raw.subarray(at, at + jsonLength).toString('utf8')) as Header;
  } catch (e) {
    throw damaged((e as Error).message);
  }
  const fields = typeof header.zone === 'string' && [header.algorithm, header.inception, header.expiration, header.active, header.entries].every(Number.isInteger)
    && Array.isArray(header.dnskeys) && header.dnskeys.every((k) => typeof k === 'string') && Array.isArray(header.parents) && header.parents.every(Number.isInteger);
  if (!fields) throw damaged('header fields');
  at += jsonLength;
  const byDigest = new Map<string, Uint8Array[]>();
  for (let i = 0; i < header.entries; i++) {
    if (at + 17 > raw.length) throw damaged('truncated');
    const digest = raw.subarray(at, at + 16).toString('latin1');
    const n = raw[at + 16];
    at += 17;
    const list: Uint8Array[] = [];
    for (let j = 0; j < n; j++) {
      if (at + 2 > raw.length) throw damaged('truncated');
      const length = raw.readUInt16BE(at);
      if (at + 2 + length > raw.length) throw damaged('truncated');
      list.push(Uint8Array.from(raw.subarray(at + 2, at + 2 + length)));
      at += 2 + length;
    }
    byDigest.set(digest, list);
  }
  if (at !== raw.length) throw damaged('trailing octets');
  return { header, byDigest };
}

/**
 * The zone's keys from its published signature file, or null when it has
 * none or holds its own private key (which then signs, as without a file).
 * Refused (KeyError): a damaged file, another zone's or algorithm's, or one
 * whose window has already ended on the signing clock (refresh.ts): the
 * policy set it came with does not serve, the previous one keeps serving.
 */
export function loadPublishedKeySet(keysDir: string, zone: string, algorithm: number | null, ownKeyFiles: string[]): PublishedKeySet | null {
  const file = signaturesFileOf(keysDir, zone);
  if (!existsSync(file) || existsSync(keyFileOf(keysDir, zone)) || ownKeyFiles.some((f) => existsSync(f))) return null;
  const { header, byDigest } = decodeSignatureSet(file, readFileSync(file));
  const want = zone.replace(/\.$/, '').toLowerCase();
  if (header.zone !== want) throw new KeyError(`${file} holds the signatures of zone ${header.zone}, not ${want}`);
  if (algorithm !== null && header.algorithm !== algorithm) {
    throw new KeyError(`${file} holds algorithm ${header.algorithm} signatures but the zone asks for algorithm ${algorithm}: publish the set again`);
  }
  const ends = header.expiration * 1000;
  if (ends <= signingClock()()) {
    throw new KeyError(`${file}: the signatures published with this policy set expired at ${new Date(ends).toISOString()}; publish the set again where the keys are (popsteer publish)`);
  }
  const published = header.dnskeys.map((k) => publicZoneKey(Buffer.from(k, 'base64')));
  const active = published.find((k) => k.keyTag === header.active);
  if (active === undefined) throw new KeyError(`${file}: the signing key ${header.active} is not among its published DNSKEYs`);
  const presigned: PublishedSignatures = { file, inception: header.inception, expiration: header.expiration, byDigest };
  const withSet = { ...active, presigned };
  return {
    active: withSet,
    published: published.map((k) => (k === active ? withSet : k)),
    parentKeys: header.parents.map((tag) => published.find((k) => k.keyTag === tag)).filter((k): k is ZoneKey => k !== undefined),
  };
}

/**
 * The keys directory relative to the configuration directory, '/'-separated,
 * or null when it lies outside it (a published revision carries only files
 * under the configuration directory).
 */
export function keysDirInConfig(configDir: string, keysDir: string): string | null {
  const rel = relative(configDir, keysDir);
  if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) return null;
  return rel.split(sep).join('/');
}
