// Address text ⇄ the 16-byte form every geo lookup takes (IPv4 in the first
// 4 bytes). Parsing allocates nothing, so it can run per query on
// rinfo.address; formatting and masking are for the slow path.

const CHAR_0 = 48;
const CHAR_9 = 57;
const CHAR_A = 97;
const CHAR_F = 102;
const CHAR_UPPER_A = 65;
const CHAR_UPPER_F = 70;
const CHAR_DOT = 46;
const CHAR_COLON = 58;
const CHAR_PERCENT = 37;

function hexValue(c: number): number {
  if (c >= CHAR_0 && c <= CHAR_9) return c - CHAR_0;
  if (c >= CHAR_A && c <= CHAR_F) return c - CHAR_A + 10;
  if (c >= CHAR_UPPER_A && c <= CHAR_UPPER_F) return c - CHAR_UPPER_A + 10;
  return -1;
}

/** Parses dotted IPv4 text[start..end) into out[at..at+4); false when malformed. */
function parseIpv4Into(text: string, start: number, end: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : CHAR_DOT;
    if (c === CHAR_DOT) {
      if (digits === 0 || part > 3) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= CHAR_0 && c <= CHAR_9) {
      // No leading zeros (they would read as octal elsewhere).
      if (digits > 0 && value === 0) return false;
      value = value * 10 + (c - CHAR_0);
      if (value > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

/**
 * Parses an IPv4 or IPv6 address string into `out` (16 bytes, IPv4 in the
 * first 4, the rest zeroed) without allocating. IPv4-mapped IPv6
 * (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers) comes back as
 * IPv4. A zone suffix (%eth0) is ignored. Returns 4, 6, or 0 when malformed.
 */
export function parseAddressInto(text: string, out: Uint8Array): 0 | 4 | 6 {
  out.fill(0);
  let end = text.length;
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === CHAR_PERCENT) {
      end = i;
      break;
    }
  }
  let hasColon = false;
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === CHAR_COLON) {
      hasColon = true;
      break;
    }
  }
  if (!hasColon) return parseIpv4Into(text, 0, end, out, 0) ? 4 : 0;

  // IPv6: groups before "::" go left to right; groups after are shifted right at the end.
  let byte = 0;
  let gapAt = -1;
  let i = 0;
  if (end >= 2 && text.charCodeAt(0) === CHAR_COLON) {
    if (text.charCodeAt(1) !== CHAR_COLON) return 0;
    gapAt = 0;
    i = 2;
  }
  while (i < end) {
    let value = 0;
    let digits = 0;
    const groupStart = i;
    while (i < end) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      value = (value << 4) | h;
      i++;
      if (++digits > 4) return 0;
    }
    if (i < end && text.charCodeAt(i) === CHAR_DOT) {
      // Trailing dotted IPv4 takes the last 4 bytes.
      if (byte > 12 || !parseIpv4Into(text, groupStart, end, out, byte)) return 0;
      byte += 4;
      i = end;
      break;
    }
    if (digits === 0) return 0;
    if (byte > 14) return 0;
    out[byte++] = value >> 8;
    out[byte++] = value & 0xff;
    if (i === end) break;
    if (text.charCodeAt(i) !== CHAR_COLON) return 0;
    i++;
    if (i < end && text.charCodeAt(i) === CHAR_COLON) {
      if (gapAt >= 0) return 0;
      gapAt = byte;
      i++;
    } else if (i === end) {
      return 0;
    }
  }
  if (gapAt >= 0) {
    const tail = byte - gapAt;
    if (byte === 16) return 0;
    for (let k = tail - 1; k >= 0; k--) {
      out[16 - tail + k] = out[gapAt + k];
      out[gapAt + k] = 0;
    }
  } else if (byte !== 16) {
    return 0;
  }
  if (isIpv4Mapped(out)) {
    out[0] = out[12];
    out[1] = out[13];
    out[2] = out[14];
    out[3] = out[15];
    out.fill(0, 4);
    return 4;
  }
  return 6;
}

function isIpv4Mapped(a: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/** Do the first `bits` bits of two 16-byte addresses agree? */
export function prefixMatches(a: Uint8Array, network: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== network[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return (a[whole] & mask) === (network[whole] & mask);
}

/** Zeroes every bit at and after `prefixLength`. */
export function maskAddress(address: Uint8Array, prefixLength: number): void {
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - 8 * i));
    address[i] &= (0xff00 >> keep) & 0xff;
  }
}

/** Presentation form: dotted IPv4, or RFC 5952 IPv6 (lower case, longest zero run as "::"). */
export function formatAddress(family: 4 | 6, address: Uint8Array): string {
  if (family === 4) return `${address[0]}.${address[1]}.${address[2]}.${address[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i] << 8) | address[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
