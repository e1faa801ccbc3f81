// Domain names in wire form. The slow path (loading zones) converts text to
// wire; the fast path only hashes and compares lower-cased wire bytes.

import { fnv1a, FNV_OFFSET } from '../lib/hash.ts';
import { MAX_LABEL_LENGTH, MAX_NAME_WIRE_LENGTH } from './constants.ts';

export class NameSyntaxError extends Error {}

/**
 * "www.Cdn.Example." → wire bytes, letter case kept. Accepts names with or
 * without the trailing dot and `\DDD` / `\.` escapes (RFC 1035 §5.1).
 */
export function nameToWire(text: string): Uint8Array {
  const bytes: number[] = [];
  if (text === '.' || text === '') return Uint8Array.of(0);
  let label: number[] = [];
  const flush = (atEnd: boolean): void => {
    if (label.length === 0) {
      if (atEnd) return;
      throw new NameSyntaxError(`empty label in "${text}"`);
    }
    if (label.length > MAX_LABEL_LENGTH) throw new NameSyntaxError(`label longer than 63 octets in "${text}"`);
    bytes.push(label.length, ...label);
    label = [];
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x5c /* \ */) {
      const rest = text.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(rest)) {
        const value = Number(rest);
        if (value > 255) throw new NameSyntaxError(`escape \\${rest} out of range in "${text}"`);
        label.push(value);
        i += 3;
      } else if (i + 1 < text.length) {
        label.push(text.charCodeAt(i + 1) & 0xff);
        i += 1;
      } else {
        throw new NameSyntaxError(`dangling backslash in "${text}"`);
      }
    } else if (ch === 0x2e /* . */) {
      flush(i === text.length - 1);
    } else {
      // Only ASCII is written as itself; other octets need punycode or a \DDD escape.
      if (ch > 0x7e) throw new NameSyntaxError(`non-ASCII character in "${text}" (use punycode or \\DDD)`);
      label.push(ch);
    }
  }
  flush(true);
  bytes.push(0);
  if (bytes.length > MAX_NAME_WIRE_LENGTH) throw new NameSyntaxError(`name longer than 255 octets: "${text}"`);
  return Uint8Array.from(bytes);
}

/** Wire name (uncompressed, starting at `offset`) → presentation text with a trailing dot. */
export function wireToName(wire: Uint8Array, offset = 0): string {
  let out = '';
  let i = offset;
  while (i < wire.length) {
    const len = wire[i];
    if (len === 0) break;
    if ((len & 0xc0) !== 0) return out + '<compressed>';
    for (let j = i + 1; j <= i + len && j < wire.length; j++) {
      const c = wire[j];
      if (c === 0x2e || c === 0x5c) out += '\\' + String.fromCharCode(c);
      else if (c > 0x20 && c < 0x7f) out += String.fromCharCode(c);
      else out += '\\' + String(c).padStart(3, '0');
    }
    out += '.';
    i += len + 1;
  }
  return out === '' ? '.' : out;
}

export function lowerWire(wire: Uint8Array): Uint8Array {
  const out = new Uint8Array(wire.length);
  for (let i = 0; i < wire.length; i++) {
    const c = wire[i];
    out[i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  return out;
}

/** Byte offsets of each label in an uncompressed wire name (the root label excluded). */
export function labelOffsetsOf(wire: Uint8Array): number[] {
  const offsets: number[] = [];
  let i = 0;
  while (wire[i] !== 0) {
    offsets.push(i);
    i += wire[i] + 1;
  }
  return offsets;
}

/**
 * Hashes of every suffix of a lower-cased wire name, computed right to left so
 * one pass gives all of them: `out[i]` is the hash of the name from label i on;
 * `out[labelCount]` is the root's. The same function serves the table builder
 * and the query parser, so their hashes always agree.
 */
export function hashSuffixes(key: Uint8Array, labelOffsets: ArrayLike<number>, labelCount: number, out: Int32Array | number[]): void {
  let h = FNV_OFFSET;
  out[labelCount] = h | 0;
  for (let l = labelCount - 1; l >= 0; l--) {
    const start = labelOffsets[l];
    h = fnv1a(key, start, start + key[start] + 1, h);
    out[l] = h | 0;
  }
}

export function hashName(lowerKey: Uint8Array): number {
  const offsets = labelOffsetsOf(lowerKey);
  const hashes = new Array<number>(offsets.length + 1);
  hashSuffixes(lowerKey, offsets, offsets.length, hashes);
  return hashes[0];
}

/** True when `a[aStart..]` and `b[bStart..]` hold the same `length` bytes. */
export function bytesEqual(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** Is `name` equal to or below `ancestor`? Both lower-cased wire names. */
export function isSubdomain(name: Uint8Array, ancestor: Uint8Array): boolean {
  if (ancestor.length > name.length) return false;
  const start = name.length - ancestor.length;
  if (!bytesEqual(name, start, ancestor, 0, ancestor.length)) return false;
  // The suffix must start on a label boundary.
  for (const off of labelOffsetsOf(name)) if (off === start) return true;
  return start === name.length - 1; // ancestor is the root
}
