// RDATA encoders for the record types popsteer serves (load time only).
// Each returns the parts a TemplateBuilder writes; names are already resolved
// to absolute wire form by the caller.

import { isIPv4, isIPv6 } from 'node:net';
import type { RdataPart } from './builder.ts';

export class RdataError extends Error {}

export function encodeIPv4(text: string): Uint8Array {
  if (!isIPv4(text)) throw new RdataError(`"${text}" is not an IPv4 address`);
  return Uint8Array.from(text.split('.').map(Number));
}

export function encodeIPv6(text: string): Uint8Array {
  if (!isIPv6(text)) throw new RdataError(`"${text}" is not an IPv6 address`);
  let input = text;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(input);
  if (v4) {
    const b = encodeIPv4(v4[1]);
    input = input.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = input.includes('::') ? input.split('::') : [input, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - headParts.length - tailParts.length;
  const groups = [...headParts, ...new Array<string>(fill).fill('0'), ...tailParts];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function u16(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}

export function u32(value: number): Uint8Array {
  return Uint8Array.of((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

/** A <character-string>: length byte + up to 255 bytes. */
export function characterString(text: string | Uint8Array): Uint8Array {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  if (bytes.length > 255) throw new RdataError('character-string longer than 255 octets');
  const out = new Uint8Array(bytes.length + 1);
  out[0] = bytes.length;
  out.set(bytes, 1);
  return out;
}

/** TXT RDATA: one string, split into 255-octet character-strings as needed. */
export function encodeTxt(text: string | string[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  const strings = Array.isArray(text) ? text : [text];
  for (const s of strings) {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length === 0) chunks.push(Uint8Array.of(0));
    for (let i = 0; i < bytes.length; i += 255) chunks.push(characterString(bytes.subarray(i, i + 255)));
  }
  return chunks;
}

export interface SoaValue {
  mname: Uint8Array;
  rname: Uint8Array;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export function encodeSoa(soa: SoaValue): RdataPart[] {
  return [
    { name: soa.mname, compress: true },
    { name: soa.rname, compress: true },
    u32(soa.serial), u32(soa.refresh), u32(soa.retry), u32(soa.expire), u32(soa.minimum),
  ];
}

export function encodeMx(preference: number, exchange: Uint8Array): RdataPart[] {
  return [u16(preference), { name: exchange, compress: true }];
}

/** SRV targets are never compressed (RFC 2782). */
export function encodeSrv(priority: number, weight: number, port: number, target: Uint8Array): RdataPart[] {
  return [u16(priority), u16(weight), u16(port), { name: target, compress: false }];
}

export function encodeCaa(flags: number, tag: string, value: string): Uint8Array {
  if (!/^[A-Za-z0-9]{1,15}$/.test(tag)) throw new RdataError(`CAA tag "${tag}" must be 1–15 letters or digits`);
  const tagBytes = Buffer.from(tag, 'ascii');
  const valueBytes = Buffer.from(value, 'utf8');
  const out = new Uint8Array(2 + tagBytes.length + valueBytes.length);
  out[0] = flags;
  out[1] = tagBytes.length;
  out.set(tagBytes, 2);
  out.set(valueBytes, 2 + tagBytes.length);
  return out;
}

const SVC_PARAM_KEYS: Record<string, number> = {
  mandatory: 0, alpn: 1, 'no-default-alpn': 2, port: 3, ipv4hint: 4, ech: 5, ipv6hint: 6,
};

export type SvcParamValue = string | number | boolean | Array<string | number>;

/** SVCB/HTTPS RDATA (RFC 9460 §2.2): priority, uncompressed target, params sorted by key. */
export function encodeSvcb(priority: number, target: Uint8Array, params: Record<string, SvcParamValue>): RdataPart[] {
  const encoded: Array<[number, Uint8Array]> = [];
  for (const [name, value] of Object.entries(params)) {
    const key = svcParamKey(name);
    encoded.push([key, encodeSvcParam(name, key, value)]);
  }
  encoded.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < encoded.length; i++) {
    if (encoded[i][0] === encoded[i - 1][0]) throw new RdataError(`SvcParam "${name(encoded[i][0])}" given twice`);
  }
  const parts: RdataPart[] = [u16(priority), { name: target, compress: false }];
  for (const [key, value] of encoded) parts.push(u16(key), u16(value.length), value);
  return parts;
}

function name(key: number): string {
  return Object.entries(SVC_PARAM_KEYS).find(([, v]) => v === key)?.[0] ?? `key${key}`;
}

function svcParamKey(text: string): number {
  if (text in SVC_PARAM_KEYS) return SVC_PARAM_KEYS[text];
  const m = /^key(\d{1,5})$/.exec(text);
  if (m && Number(m[1]) <= 65535) return Number(m[1]);
  throw new RdataError(`unknown SvcParam "${text}" (use one of ${Object.keys(SVC_PARAM_KEYS).join(', ')}, or keyNNNNN)`);
}

function asList(value: SvcParamValue): Array<string | number> {
  if (Array.isArray(value)) return value;
  if (typeof value === 'string') return value.split(',');
  return [value as number];
}

function encodeSvcParam(keyName: string, key: number, value: SvcParamValue): Uint8Array {
  switch (key) {
    case 0: // mandatory: list of keys
      return Buffer.concat(asList(value).map((k) => u16(svcParamKey(String(k)))));
    case 1: // alpn: list of character-strings
      return Buffer.concat(asList(value).map((id) => characterString(String(id))));
    case 2: // no-default-alpn: empty value
      if (value !== true && value !== '') throw new RdataError('no-default-alpn takes no value (write `no-default-alpn: true`)');
      return new Uint8Array(0);
    case 3: // port
      return u16(Number(value));
    case 4:
      return Buffer.concat(asList(value).map((a) => encodeIPv4(String(a))));
    case 5: // ech: base64 ECHConfigList
      return Buffer.from(String(value), 'base64');
    case 6:
      return Buffer.concat(asList(value).map((a) => encodeIPv6(String(a))));
    default:
      if (typeof value !== 'string') throw new RdataError(`${keyName} takes a string value`);
      return Buffer.from(value, 'utf8');
  }
}
