// The two text layouts of an ASN source (asn-source.ts):
//   ranges    ip_range_start,ip_range_end,asn[,org]   (@ip-location-db/asn)
//   prefixes  CIDR,ASN  or  CIDR ASN                  (exported from BIRD, ExaBGP …)
// told apart by the first data line (a "/" in its first field means prefixes).
// Blank lines, # comments and one header line are skipped. A range becomes
// the fewest CIDRs that cover it exactly. Every mistake names the file and line.

import { ConfigError } from '../config/errors.ts';
import { maskAddress, parseAddressInto } from '../lib/address.ts';
import type { AsnFileContent, AsnNetworkList } from './asn-networks.ts';

const MAX_ASN = 4294967295;

export function readAsnText(path: string, text: string, networks: AsnNetworkList): AsnFileContent {
  const first = networks.count;
  const organizations = new Map<number, string>();
  let layout: 'ranges' | 'prefixes' | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const fail = (what: string): never => {
      throw new ConfigError('POPSTEER_ERR_ASN_SOURCE', path, { line: i + 1, column: 1 }, '', `${what}; expected ip_range_start,ip_range_end,asn[,org] or CIDR,ASN per line`);
    };
    const fields = splitFields(line);
    if (layout === null) {
      if (!/^[0-9a-fA-F:.]+(\/\d+)?$/.test(fields[0])) {
        if (networks.count === first && /[a-z]/i.test(fields[0])) continue; // a header line
        fail(`"${fields[0]}" is not an address or a network`);
      }
      layout = fields[0].includes('/') ? 'prefixes' : 'ranges';
    }
    if (layout === 'prefixes') {
      if (fields.length < 2) fail('a network without an AS number');
      const asn = parseAsn(fields[1]) ?? fail(`"${fields[1]}" is not an AS number (1 to ${MAX_ASN}, "AS" prefix allowed)`);
      const prefix = parsePrefix(fields[0]) ?? fail(`"${fields[0]}" is not a network address/prefix with its host bits zero`);
      networks.add(prefix.family, prefix.address, prefix.prefixLength, asn);
    } else {
      if (fields.length < 3) fail('a range needs a start, an end and an AS number');
      const start = new Uint8Array(16);
      const end = new Uint8Array(16);
      const family = parseAddressInto(fields[0], start);
      if (family === 0) fail(`"${fields[0]}" is not an address`);
      if (parseAddressInto(fields[1], end) !== family) fail(`"${fields[1]}" is not an address of the same family as "${fields[0]}"`);
      const asn = fields[2] === '0' ? 0 : parseAsn(fields[2]) ?? fail(`"${fields[2]}" is not an AS number (1 to ${MAX_ASN})`);
      if (asn === 0) continue; // "not announced": no AS to steer by
      if (compareBytes(end, start) < 0) fail(`the range ends (${fields[1]}) before it starts (${fields[0]})`);
      if (family === 4) {
        // Numbers are exact to 2^53: no BigInt for the 400,000 IPv4 ranges of a full file.
        const from = ((start[0] << 24) | (start[1] << 16) | (start[2] << 8) | start[3]) >>> 0;
        const to = ((end[0] << 24) | (end[1] << 16) | (end[2] << 8) | end[3]) >>> 0;
        for (const [base, prefixLength] of ipv4RangeToCidrs(from, to)) {
          start[0] = base >>> 24; start[1] = (base >>> 16) & 0xff; start[2] = (base >>> 8) & 0xff; start[3] = base & 0xff;
          networks.add(4, start, prefixLength, asn);
        }
      } else {
        for (const [base, prefixLength] of rangeToCidrs(toBigInt(start, 6), toBigInt(end, 6), 128)) {
          networks.add(6, fromBigInt(base, 6), prefixLength, asn);
        }
      }
      if (fields[3] && !organizations.has(asn)) organizations.set(asn, fields[3]);
    }
  }
  return { layout: layout ?? 'ranges', organizations };
}

/** Comma-separated fields with "quoted, values" (CSV), or whitespace-separated when there is no comma. */
function splitFields(line: string): string[] {
  if (!line.includes(',')) return line.split(/\s+/);
  const fields: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') { value += '"'; i += 2; } else if (line[i] === '"') { i++; break; } else value += line[i++];
      }
      fields.push(value);
      const comma = line.indexOf(',', i);
      i = comma < 0 ? line.length + 1 : comma + 1;
    } else {
      const comma = line.indexOf(',', i);
      fields.push(line.slice(i, comma < 0 ? line.length : comma).trim());
      i = comma < 0 ? line.length + 1 : comma + 1;
    }
  }
  return fields;
}

export function parseAsn(text: string): number | null {
  const m = /^(?:AS)?(\d{1,10})$/i.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 1 && n <= MAX_ASN ? n : null;
}

function parsePrefix(text: string): { family: 4 | 6; address: Uint8Array; prefixLength: number } | null {
  const slash = text.indexOf('/');
  const address = new Uint8Array(16);
  const family = parseAddressInto(text.slice(0, slash), address);
  const prefixLength = Number(text.slice(slash + 1));
  if (family === 0 || !Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > (family === 4 ? 32 : 128)) return null;
  const masked = address.slice();
  maskAddress(masked, prefixLength);
  if (!masked.every((b, k) => b === address[k])) return null;
  return { family, address, prefixLength };
}

function toBigInt(bytes: Uint8Array, family: 4 | 6): bigint {
  let v = 0n;
  for (let i = 0; i < (family === 4 ? 4 : 16); i++) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

function fromBigInt(value: bigint, family: 4 | 6): Uint8Array {
  const bytes = new Uint8Array(16);
  for (let i = (family === 4 ? 4 : 16) - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** rangeToCidrs for IPv4, in plain numbers. */
export function ipv4RangeToCidrs(from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = from;
  while (start <= to) {
    let size = 0;
    while (size < 32 && start % 2 ** (size + 1) === 0) size++;
    while (size > 0 && start + 2 ** size - 1 > to) size--;
    out.push([start, 32 - size]);
    start += 2 ** size;
  }
  return out;
}

/** The fewest aligned blocks covering [from, to] exactly, as (base, prefix length). */
export function rangeToCidrs(from: bigint, to: bigint, bits: number): Array<[bigint, number]> {
  const out: Array<[bigint, number]> = [];
  let start = from;
  while (start <= to) {
    let size = 0;
    while (size < bits && ((start >> BigInt(size)) & 1n) === 0n) size++;
    while (size > 0 && start + (1n << BigInt(size)) - 1n > to) size--;
    out.push([start, bits - size]);
    start += 1n << BigInt(size);
  }
  return out;
}
