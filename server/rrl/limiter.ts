// Response Rate Limiting (RRL) in the style of BIND, Knot and NSD: a UDP
// reply to an address nobody proved to own may be a reflection attack, so
// identical replies to one client network (/24 IPv4, /56 IPv6) are capped.
//
// Each (network, response kind) pair owns a token bucket that refills at the
// configured rate and holds at most one second's worth. A reply spends one
// token; with none left the reply is limited: dropped, or every `slip`-th one
// is sent truncated (TC=1, no records) so that a real resolver behind the
// address retries over TCP, where the handshake proves the address. Limited
// replies still spend, down to −rate × window, so a flood stays limited until
// it has slowed down for up to `window` seconds (BIND's meaning of window).
//
// Response kinds, as BIND and NSD classify them:
// - NOERROR and NXDOMAIN: keyed by the response key the engine gives each
//   answer (engine.ts), naming the template that answered — a name and type,
//   a wildcard (whatever label was asked), a delegation point (whatever
//   name below it), a name's NODATA (whatever type), a zone's NXDOMAIN
//   (whatever name) — so random labels, names or types share one bucket;
// - every error rcode: one bucket per network, at errors-per-second.
//
// Memory is fixed: an open-addressing table of typed arrays whose size is set
// at construction. Entries hold 32-bit hashes, not names; when the probe
// window is full the least recently used entry is recycled. Nothing on the
// per-reply path allocates.

import { RCODE_NOERROR, RCODE_NXDOMAIN } from '../dns/constants.ts';
import type { QueryView } from '../dns/query.ts';
import { fnv1a } from '../lib/hash.ts';
import { formatAddress, maskAddress, parseAddressInto } from '../lib/address.ts';
import { isCidrProblem, networkContains, parseCidr, type CidrNetwork } from '../lib/cidr.ts';

/** Send the reply as it is. */
export const RRL_SEND = 0;
/** Send nothing. */
export const RRL_DROP = 1;
/** Send the truncated form (see slipReply). */
export const RRL_SLIP = 2;
export type RrlAction = typeof RRL_SEND | typeof RRL_DROP | typeof RRL_SLIP;

/** Client networks are /24 (IPv4) and /56 (IPv6), as in BIND and Knot. */
const IPV4_NETWORK_BITS = 24;
const IPV6_NETWORK_BITS = 56;
/** Table entries per limiter (one per DNS worker): 65,536 × 33 bytes ≈ 2.2 MB. */
const DEFAULT_TABLE_SIZE = 65536;
/** Slots examined per lookup before the least recently used one is recycled. */
const PROBE_LIMIT = 16;
const EMPTY = -Infinity;

export interface RrlConfig {
  /** Identical (NOERROR, NXDOMAIN) replies per second per client network. */
  responsesPerSecond: number;
  /** Error replies per second per client network. */
  errorsPerSecond: number;
  /** Seconds a limited flood must slow down before its bucket is full again; also the log period. */
  windowSeconds: number;
  /** Every slip-th limited reply is sent truncated; 0 drops them all. */
  slip: number;
  /** Networks never limited, in CIDR notation. */
  exempt: string[];
  /** Table entries (rounded up to a power of two); DEFAULT_TABLE_SIZE when absent. */
  tableSize?: number;
}

/** Reported once per limited network per window (never per packet). */
export interface LimitedNetworkEvent {
  /** The client network, e.g. "198.51.100.0/24". */
  network: string;
  /** Replies to this network limited since the previous event for it (1 for the first). */
  limited: number;
  windowSeconds: number;
}

/** Response keys of the per-network pseudo entries: the error bucket and the log record. */
const ERROR_KEY = 0x5e77e770;
const LOG_KEY = 0x10661060;

function finish(hash: number): number {
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash | 0;
}

export class ResponseRateLimiter {
  private readonly responseRate: number;
  private readonly errorRate: number;
  private readonly windowMs: number;
  private readonly windowSeconds: number;
  private readonly slip: number;
  private readonly exempt: CidrNetwork[];
  private readonly mask: number;
  private readonly onLimited: (event: LimitedNetworkEvent) => void;

  private readonly networkKeys: Int32Array;
  private readonly responseKeys: Int32Array;
  /** Last time the entry was used (ms); EMPTY for a free slot. */
  private readonly lastUsed: Float64Array;
  private readonly balance: Float64Array;
  /** Limited replies of the entry (slip counts them); for the log record, since its last line. */
  private readonly limitedCount: Float64Array;

  /** The client address of the current reply, parsed and masked to its network. */
  private readonly address = new Uint8Array(16);
  private family: 0 | 4 | 6 = 0;
  /** The last client address text parsed, and its parse: queries come from few resolvers, so each is parsed once per run of its queries. */
  private parsedText = '';
  private readonly parsed = new Uint8Array(16);
  private parsedFamily: 0 | 4 | 6 = 0;

  constructor(config: RrlConfig, onLimited: (event: LimitedNetworkEvent) => void = () => {}) {
    if (!(config.responsesPerSecond > 0)) throw new Error('RRL needs responses per second above 0');
    this.responseRate = config.responsesPerSecond;
    this.errorRate = config.errorsPerSecond > 0 ? config.errorsPerSecond : config.responsesPerSecond;
    this.windowSeconds = Math.max(1, config.windowSeconds);
    this.windowMs = this.windowSeconds * 1000;
    this.slip = config.slip;
    this.onLimited = onLimited;
    this.exempt = config.exempt.map((text) => {
      const parsed = parseCidr(text, 'match');
      if (isCidrProblem(parsed)) throw new Error(`RRL exempt network: ${parsed.message}`);
      return parsed;
    });
    let size = 1;
    while (size < (config.tableSize ?? DEFAULT_TABLE_SIZE)) size <<= 1;
    size = Math.max(size, PROBE_LIMIT);
    this.mask = size - 1;
    this.networkKeys = new Int32Array(size);
    this.responseKeys = new Int32Array(size);
    this.lastUsed = new Float64Array(size).fill(EMPTY);
    this.balance = new Float64Array(size);
    this.limitedCount = new Float64Array(size);
  }

  /** Entries the table holds at most (fixed at construction). */
  get capacity(): number {
    return this.mask + 1;
  }

  /**
   * Decides the fate of one UDP reply with `rcode` to `clientAddress`, whose
   * answer the engine keyed `responseKey`, at time `nowMs` (any monotonic
   * millisecond clock).
   */
  check(clientAddress: string, responseKey: number, rcode: number, nowMs: number): RrlAction {
    if (clientAddress !== this.parsedText) {
      this.parsedFamily = parseAddressInto(clientAddress, this.parsed);
      this.parsedText = clientAddress;
    }
    this.family = this.parsedFamily;
    this.address.set(this.parsed);
    if (this.family === 0) return RRL_SEND; // not an address: nothing to key on
    if (this.isExempt()) return RRL_SEND;
    const network = this.networkKey();
    let rate = this.responseRate;
    if (rcode !== RCODE_NOERROR && rcode !== RCODE_NXDOMAIN) {
      responseKey = ERROR_KEY;
      rate = this.errorRate;
    }
    const slot = this.slotFor(network, responseKey, nowMs);
    if (this.spend(slot, rate, nowMs)) return RRL_SEND;
    const limited = ++this.limitedCount[slot];
    this.noteLimited(network, nowMs);
    return this.slip > 0 && limited % this.slip === 0 ? RRL_SLIP : RRL_DROP;
  }

  /** Masks the parsed client address to its network (/24, /56) and hashes that. */
  private networkKey(): number {
    const bits = this.family === 4 ? IPV4_NETWORK_BITS : IPV6_NETWORK_BITS;
    maskAddress(this.address, bits);
    return finish(fnv1a(this.address, 0, bits >> 3, this.family));
  }

  private isExempt(): boolean {
    const exempt = this.exempt;
    for (let i = 0; i < exempt.length; i++) if (networkContains(exempt[i], this.family, this.address)) return true;
    return false;
  }

  /** The slot of (network, response); a new entry starts with a full bucket. */
  private slotFor(network: number, response: number, nowMs: number): number {
    const lastUsed = this.lastUsed;
    const mask = this.mask;
    const home = finish(network ^ Math.imul(response, 0x27d4eb2d)) & mask;
    let victim = home;
    let victimTime = Infinity;
    for (let i = 0; i < PROBE_LIMIT; i++) {
      const slot = (home + i) & mask;
      const used = lastUsed[slot];
      if (used !== EMPTY && this.networkKeys[slot] === network && this.responseKeys[slot] === response) return slot;
      if (used < victimTime) {
        victim = slot;
        victimTime = used;
      }
    }
    this.networkKeys[victim] = network;
    this.responseKeys[victim] = response;
    this.lastUsed[victim] = nowMs;
    this.balance[victim] = response === LOG_KEY ? EMPTY : response === ERROR_KEY ? this.errorRate : this.responseRate;
    this.limitedCount[victim] = 0;
    return victim;
  }

  /** Refills the bucket for the time since its last use and spends one token; false when none was left. */
  private spend(slot: number, rate: number, nowMs: number): boolean {
    const elapsedSeconds = (nowMs - this.lastUsed[slot]) / 1000;
    let balance = this.balance[slot] + (elapsedSeconds > 0 ? elapsedSeconds * rate : 0);
    if (balance > rate) balance = rate;
    this.lastUsed[slot] = nowMs;
    balance -= 1;
    if (balance >= 0) {
      this.balance[slot] = balance;
      return true;
    }
    const floor = -rate * this.windowSeconds;
    this.balance[slot] = balance < floor ? floor : balance;
    return false;
  }

  /** Counts a limited reply against the network's log record; reports at most once per window. */
  private noteLimited(network: number, nowMs: number): void {
    const slot = this.slotFor(network, LOG_KEY, nowMs);
    this.lastUsed[slot] = nowMs;
    const count = ++this.limitedCount[slot];
    const lastLine = this.balance[slot]; // the log record keeps the time of its last line here (EMPTY: none yet)
    if (nowMs - lastLine < this.windowMs) return;
    this.balance[slot] = nowMs;
    this.limitedCount[slot] = 0;
    const family = this.family === 6 ? 6 : 4;
    const bits = family === 4 ? IPV4_NETWORK_BITS : IPV6_NETWORK_BITS;
    this.onLimited({ network: `${formatAddress(family, this.address)}/${bits}`, limited: count, windowSeconds: this.windowSeconds });
  }
}

/**
 * Turns the reply in `reply` into its slipped form in place: header and
 * question only, TC=1, so a real resolver retries over TCP. Returns its length
 * (never more than the query's).
 */
export function slipReply(reply: Uint8Array, view: QueryView): number {
  return slipReplyTo(reply, view.hasQuestion ? view.questionEnd : 12);
}

/** slipReply() for a reply whose question ends at `questionEnd` (12 when it has none): a reply sent from the answer cache. */
export function slipReplyTo(reply: Uint8Array, questionEnd: number): number {
  reply[2] |= 0x02;
  for (let i = 6; i < 12; i++) reply[i] = 0;
  return questionEnd;
}
