// Zone signing keys: one CSK (combined signing key, flags 257) per zone,
// kept as a PKCS#8 PEM file in the zone's keys directory. Algorithm 13
// (ECDSA P-256 with SHA-256, RFC 6605) or 15 (Ed25519, RFC 8080). The
// private key is refused when its file is readable by group or others.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lowerWire, nameToWire } from '../dns/name.ts';
import { writeFileSafely } from '../fsutil/safe-files.ts';

export const ALG_ECDSAP256SHA256 = 13;
export const ALG_ED25519 = 15;
export const TYPE_DNSKEY = 48;
/** Zone key + secure entry point: a CSK that both signs the zone and is the parent's DS target. */
const CSK_FLAGS = 257;

export class KeyError extends Error {}

/**
 * Signatures made where the policy set was published (presigned.ts), for
 * keys whose private half is not here: the signer looks each RRset up.
 */
export interface PublishedSignatures {
  /** Where they came from, for errors. */
  file: string;
  /** The window every one of them was made with (s since the epoch). */
  inception: number;
  expiration: number;
  /** rrsetDigest (sign.ts) → the RRSIG RDATAs over that RRset, one per signing key. */
  byDigest: Map<string, Uint8Array[]>;
}

export interface ZoneKey {
  algorithm: number;
  /** null: a key known by its public half only, whose signatures were made where the policy set was published (presigned.ts). */
  privateKey: KeyObject | null;
  publicKey: KeyObject;
  /** DNSKEY RDATA (flags, protocol 3, algorithm, public key). */
  dnskey: Uint8Array;
  keyTag: number;
  /** Set on the active key of a zone served from published signatures. */
  presigned?: PublishedSignatures;
}

/** The key file of a zone: <keys dir>/<zone>.csk.pem (zone without its trailing dot). */
export function keyFileOf(keysDir: string, zone: string): string {
  return join(keysDir, `${zoneFileStem(zone)}.csk.pem`);
}

/** The zone's name as key and state files start with it: lower case, no trailing dot ("root" for the root). */
export function zoneFileStem(zone: string): string {
  return zone.replace(/\.$/, '').toLowerCase() || 'root';
}

/**
 * Creates a CSK file (mode 0600); refuses to overwrite one. `fileFor` names
 * the file from the new key's tag (a rollover's next key); by default the
 * zone's one key file. `avoidTag` is a tag the new key must not share (the
 * key it replaces: two keys with one tag confuse validators). Returns its path.
 */
export function generateKey(keysDir: string, zone: string, algorithm: number,
  fileFor: (keyTag: number) => string = () => keyFileOf(keysDir, zone), avoidTag = -1): string {
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  for (;;) {
    const pair = algorithm === ALG_ED25519 ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyTag = keyTagOf(dnskeyRdata(pair.publicKey, algorithm));
    if (keyTag === avoidTag) continue;
    const file = fileFor(keyTag);
    if (existsSync(file)) throw new KeyError(`${file} already exists; remove it first (a rollover replaces keys by pre-publication, not by overwriting)`);
    const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' });
    // The one file writer (temporary file, fsync, rename): never a half-written key.
    writeFileSafely(file, [pem], 0o600);
    return file;
  }
}

/** Loads a zone's CSK; throws KeyError saying what to do when it is missing, unsafe or (given `algorithm`) of another algorithm. */
export function loadKey(keysDir: string, zone: string, algorithm: number | null): ZoneKey {
  return loadKeyFile(keyFileOf(keysDir, zone), zone, algorithm);
}

/** Loads one key file (see loadKey). */
export function loadKeyFile(file: string, zone: string, algorithm: number | null): ZoneKey {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new KeyError(`no key ${file}: make it with "popsteer dnssec keygen --config <config dir> --zone ${zone.replace(/\.$/, '')}"`);
  }
  if ((mode & 0o077) !== 0) throw new KeyError(`${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`);
  const privateKey = createPrivateKey(readFileSync(file, 'utf8'));
  const fileAlgorithm = algorithmOf(privateKey);
  if (algorithm !== null && fileAlgorithm !== algorithm) {
    throw new KeyError(`${file} holds an algorithm ${fileAlgorithm} key but the zone asks for algorithm ${algorithm}: set dnssec.algorithm to ${fileAlgorithm} or make a new key`);
  }
  const publicKey = createPublicKey(privateKey);
  const dnskey = dnskeyRdata(publicKey, fileAlgorithm);
  return { algorithm: fileAlgorithm, privateKey, publicKey, dnskey, keyTag: keyTagOf(dnskey) };
}

/** A key known only by its DNSKEY RDATA (a published signature set carries it): it verifies, it cannot sign. */
export function publicZoneKey(dnskey: Uint8Array): ZoneKey {
  const algorithm = dnskey[3];
  const raw = Buffer.from(dnskey.subarray(4));
  let jwk: JsonWebKey;
  if (algorithm === ALG_ED25519 && raw.length === 32) jwk = { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') };
  else if (algorithm === ALG_ECDSAP256SHA256 && raw.length === 64) jwk = { kty: 'EC', crv: 'P-256', x: raw.subarray(0, 32).toString('base64url'), y: raw.subarray(32).toString('base64url') };
  else throw new KeyError(`a DNSKEY of algorithm ${algorithm} with a ${raw.length}-octet key: not one popsteer makes (13 or 15)`);
  return { algorithm, privateKey: null, publicKey: createPublicKey({ key: jwk, format: 'jwk' }), dnskey: Uint8Array.from(dnskey), keyTag: keyTagOf(dnskey) };
}

function algorithmOf(key: KeyObject): number {
  if (key.asymmetricKeyType === 'ed25519') return ALG_ED25519;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return ALG_ECDSAP256SHA256;
  throw new KeyError(`unsupported key type ${key.asymmetricKeyType ?? '?'} (use algorithm 13 or 15)`);
}

/** DNSKEY RDATA: the public key as RFC 6605 (x‖y) or RFC 8080 (32 octets) lays it out. */
function dnskeyRdata(publicKey: KeyObject, algorithm: number): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  const raw = algorithm === ALG_ED25519
    ? Buffer.from(jwk.x!, 'base64url')
    : Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const out = new Uint8Array(4 + raw.length);
  out[0] = CSK_FLAGS >> 8; out[1] = CSK_FLAGS & 0xff; out[2] = 3; out[3] = algorithm;
  out.set(raw, 4);
  return out;
}

/** RFC 4034 Appendix B key tag. */
function keyTagOf(dnskey: Uint8Array): number {
  let ac = 0;
  for (let i = 0; i < dnskey.length; i++) ac += (i & 1) ? dnskey[i] : dnskey[i] << 8;
  ac += (ac >> 16) & 0xffff;
  return ac & 0xffff;
}

export const TYPE_CDS = 59;
export const TYPE_CDNSKEY = 60;

/** DS RDATA (digest type 2, SHA-256 over owner and DNSKEY RDATA, RFC 4509): also the CDS the zone publishes (RFC 7344). */
export function dsRdata(zone: string, key: ZoneKey): Uint8Array {
  const owner = lowerWire(nameToWire(zone.endsWith('.') ? zone : `${zone}.`));
  const digest = createHash('sha256').update(owner).update(key.dnskey).digest();
  const out = new Uint8Array(4 + digest.length);
  out[0] = key.keyTag >> 8; out[1] = key.keyTag & 0xff; out[2] = key.algorithm; out[3] = 2;
  out.set(digest, 4);
  return out;
}

/** The DS record for the parent, in presentation form. */
export function dsRecord(zone: string, key: ZoneKey, ttl = 3600): string {
  const digest = Buffer.from(dsRdata(zone, key).subarray(4)).toString('hex').toUpperCase();
  return `${zone.endsWith('.') ? zone : `${zone}.`} ${ttl} IN DS ${key.keyTag} ${key.algorithm} 2 ${digest}`;
}

/** The DNSKEY record in presentation form (for trust anchors and checks). */
export function dnskeyRecord(zone: string, key: ZoneKey, ttl = 3600): string {
  const b64 = Buffer.from(key.dnskey.subarray(4)).toString('base64');
  return `${zone.endsWith('.') ? zone : `${zone}.`} ${ttl} IN DNSKEY ${CSK_FLAGS} 3 ${key.algorithm} ${b64}`;
}
