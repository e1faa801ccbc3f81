// Compact numeric forms of country and continent codes, and the packed string
// table, so location data stays in typed arrays.

import type { PackedStrings } from './types.ts';

/** Index 0 means "unknown"; the rest are the MaxMind / GeoNames continent codes. */
export const CONTINENT_CODES: readonly string[] = ['', 'AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'];

export function continentNumber(code: string | undefined): number {
  if (!code) return 0;
  const n = CONTINENT_CODES.indexOf(code);
  return n > 0 ? n : 0;
}

/** "GB" → 0x4742; anything that is not two ASCII letters → 0. */
export function countryNumber(code: string | undefined): number {
  if (!code || code.length !== 2) return 0;
  const a = code.charCodeAt(0);
  const b = code.charCodeAt(1);
  if (a > 127 || b > 127) return 0;
  return (a << 8) | b;
}

export function countryText(packed: number): string {
  return packed === 0 ? '' : String.fromCharCode(packed >> 8, packed & 0xff);
}

/** Builds a PackedStrings table; add() dedupes and returns the index (0 is ""). */
export class PackedStringsBuilder {
  private readonly indexOf = new Map<string, number>([['', 0]]);
  private readonly list: string[] = [''];

  add(text: string): number {
    let index = this.indexOf.get(text);
    if (index === undefined) {
      index = this.list.length;
      this.list.push(text);
      this.indexOf.set(text, index);
    }
    return index;
  }

  finish(): PackedStrings {
    const encoded = this.list.map((s) => Buffer.from(s, 'utf8'));
    let total = 0;
    for (const e of encoded) total += e.length;
    const bytes = new Uint8Array(new SharedArrayBuffer(Math.max(1, total)));
    const offsets = new Uint32Array(new SharedArrayBuffer(4 * (encoded.length + 1)));
    let at = 0;
    for (let i = 0; i < encoded.length; i++) {
      offsets[i] = at;
      bytes.set(encoded[i], at);
      at += encoded[i].length;
    }
    offsets[encoded.length] = at;
    return { bytes, offsets };
  }
}

/** Slow path (explain, logs): decodes string i. */
export function stringAt(table: PackedStrings, index: number): string {
  if (index <= 0 || index + 1 >= table.offsets.length) return '';
  // TextDecoder refuses views of shared memory; a Buffer view does not.
  const start = table.offsets[index];
  return Buffer.from(table.bytes.buffer, table.bytes.byteOffset + start, table.offsets[index + 1] - start).toString('utf8');
}
