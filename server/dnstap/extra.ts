// The Dnstap `extra` field of AUTH_RESPONSE (of AUTH_QUERY when responses are
// not logged): the steering decision behind a steered answer, as one line of JSON, so a log can be replayed (`popsteer diff --clients-dnstap`)
// and read by people in any dnstap reader:
//
//   {"policy":"www.cdn.example","rule":"default","pop":"ams","class":17,"client":"81.2.68.0/24"}
//
// `client` is the network that decided: the ECS source (as far as popsteer
// uses it) or the resolver's address. The part up to "class" is the same for
// every (policy, rule, endpoint) and is encoded once; the class number and
// the network are written digit by digit, so a query allocates nothing.

/** What the DNS worker knows about a steered answer; reused, filled per query. */
export interface DnstapDecision {
  /** Policy index in the active set; -1 when the answer was not steered (no extra field). */
  policy: number;
  rule: number;
  /** First answered endpoint, -1 for none (SERVFAIL). */
  endpoint: number;
  class: number;
  /** Bits of the ECS address that decided, or -1 when the resolver's own address decided. */
  ecsBits: number;
  /** 4 or 6. */
  ecsFamily: number;
  /** 16 octets, IPv4 in the first 4. */
  ecsAddress: Uint8Array;
}

/** The names behind the indexes of a decision. */
export interface DecisionLabels {
  policy: string;
  rule: string;
  /** PoP or endpoint id, or "(none)". */
  endpoint: string;
}

/** Room after the prefix: the class number and an IPv6 network with its closing. */
const SUFFIX_MAX = 96;
const HEX = '0123456789abcdef';

export class DecisionExtra {
  /** Where write() puts the extra; replaced by a longer one when a prefix needs it. */
  bytes = new Uint8Array(512);
  private labels: (policy: number, rule: number, endpoint: number) => DecisionLabels;
  /** prefixes[policy][rule][endpoint + 1] */
  private prefixes: Buffer[][][] = [];

  constructor(labels: (policy: number, rule: number, endpoint: number) => DecisionLabels) {
    this.labels = labels;
  }

  relabel(labels: (policy: number, rule: number, endpoint: number) => DecisionLabels): void {
    this.labels = labels;
    this.prefixes = [];
  }

  /** Writes the extra for a steered answer; `family`/`address` are the resolver's. Returns its length. */
  write(decision: DnstapDecision, family: number, address: Uint8Array): number {
    const out = this.bytes;
    const prefix = this.prefixOf(decision.policy, decision.rule, decision.endpoint);
    let at = prefix.length;
    prefix.copy(out, 0);
    at = writeDecimal(out, at, decision.class);
    at = writeAscii(out, at, ',"client":"');
    if (decision.ecsBits >= 0) at = writeNetwork(out, at, decision.ecsFamily, decision.ecsAddress, decision.ecsBits);
    else at = writeNetwork(out, at, family, address, family === 4 ? 32 : 128);
    out[at++] = 0x22; // "
    out[at++] = 0x7d; // }
    return at;
  }

  private prefixOf(policy: number, rule: number, endpoint: number): Buffer {
    const byRule = this.prefixes[policy] ??= [];
    const byEndpoint = byRule[rule] ??= [];
    let prefix = byEndpoint[endpoint + 1];
    if (prefix === undefined) {
      const names = this.labels(policy, rule, endpoint);
      const text = `{"policy":${JSON.stringify(names.policy)},"rule":${JSON.stringify(names.rule)},"pop":${JSON.stringify(names.endpoint)},"class":`;
      prefix = Buffer.from(text, 'utf8');
      if (prefix.length + SUFFIX_MAX > this.bytes.length) this.bytes = new Uint8Array(prefix.length + SUFFIX_MAX);
      byEndpoint[endpoint + 1] = prefix;
    }
    return prefix;
  }
}

function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

function writeDecimal(out: Uint8Array, at: number, value: number): number {
  if (value >= 10) at = writeDecimal(out, at, Math.floor(value / 10));
  out[at++] = 0x30 + (value % 10);
  return at;
}

/**
 * address/bits with host bits cleared: dotted IPv4, or IPv6 as eight groups
 * without leading zeros (valid text, not shortened with "::").
 */
function writeNetwork(out: Uint8Array, at: number, family: number, address: Uint8Array, bits: number): number {
  if (family === 4) {
    for (let i = 0; i < 4; i++) {
      if (i > 0) out[at++] = 0x2e; // .
      at = writeDecimal(out, at, maskedByte(address, bits, i));
    }
  } else {
    for (let g = 0; g < 8; g++) {
      if (g > 0) out[at++] = 0x3a; // :
      at = writeHexGroup(out, at, (maskedByte(address, bits, g * 2) << 8) | maskedByte(address, bits, g * 2 + 1));
    }
  }
  out[at++] = 0x2f; // /
  return writeDecimal(out, at, bits);
}

/** Octet i of the address with the bits past the prefix cleared. */
function maskedByte(address: Uint8Array, bits: number, i: number): number {
  const keep = bits - i * 8;
  return keep >= 8 ? address[i] : keep <= 0 ? 0 : address[i] & (0xff00 >> keep);
}

function writeHexGroup(out: Uint8Array, at: number, value: number): number {
  let started = false;
  for (let shift = 12; shift >= 0; shift -= 4) {
    const digit = (value >> shift) & 0xf;
    if (digit === 0 && !started && shift > 0) continue;
    started = true;
    out[at++] = HEX.charCodeAt(digit);
  }
  return at;
}
