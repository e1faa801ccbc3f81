// The query pipeline: bytes in → parse into the reused view → find the name in
// the current snapshot → answer from a pre-encoded template (or a steering
// decision) → bytes out. A function of (query bytes, client address) to
// response bytes, with no sockets, so most tests need none.
//
// Each answer also gets a response key for rate limiting (server/rrl): an
// integer naming which template answered, the way BIND and NSD classify
// responses — a wildcard answer by the wildcard, a referral by the
// delegation point, NODATA (and a CNAME answered for any type) by the name
// whatever the query type, NXDOMAIN by the zone — so that random labels,
// names or types cannot each claim a bucket of their own.

import {
  CLASS_CH, CLASS_IN, RCODE_FORMERR, RCODE_NOERROR, RCODE_NOTIMP, RCODE_REFUSED, TYPE_ANY, TYPE_CNAME, TYPE_AXFR, TYPE_DS, TYPE_IXFR,
  TYPE_MAILA, TYPE_MAILB, TYPE_OPT, TYPE_TKEY, TYPE_TSIG, TYPE_TXT,
} from '../dns/constants.ts';
import { TemplateBuilder, SECTION_ANSWER } from '../dns/builder.ts';
import { encodeTxt } from '../dns/rdata.ts';
import { lowerWire, nameToWire } from '../dns/name.ts';
import {
  PARSE_BADVERS, PARSE_DROP, PARSE_FORMERR, PARSE_NOTIMP, QueryView, parseQuery,
} from '../dns/query.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import { ResponseWriter, TCP_SIZE_LIMIT, udpSizeLimit } from '../dns/writer.ts';
import { fnv1a, fnv1aStep } from '../lib/hash.ts';
import { findName } from '../snapshot/name-table.ts';
import type { DnsSnapshot, NameNode, SignedRecord } from '../snapshot/types.ts';
import { Counters, OFF_DROPPED, OFF_TRUNCATED } from './counters.ts';
import { nxdomainProof, wildcardGap, wildcardProof } from '../dnssec/nsec.ts';
import { rrsetKey } from '../dnssec/sign.ts';
import { signTemplate } from '../dnssec/template.ts';

export const TRANSPORT_UDP = 0;
export const TRANSPORT_TCP = 1;

/** Where the query came from: the resolver's socket address. */
export interface ClientAddress {
  address: string;
  /** 0 = IPv4, 1 = IPv6 (index into counters.FAMILIES). */
  family: number;
}

/**
 * The seam for steered names: given the steered name's index, the query and
 * the client, fill in the answer. Implemented by steering/ over its compiled
 * tables; the engine knows nothing of policies.
 */
export interface SteeringHook {
  /**
   * Returns the template to send (A/AAAA answers, CNAME, or SERVFAIL), or null
   * for NODATA. Sets `result.scope` (ECS scope) and `result.ttl` (−1: as encoded).
   */
  answer(steeredIndex: number, qtype: number, view: QueryView, client: ClientAddress, result: SteeringResult): AnswerTemplate | null;
  /** Whether the last answer() chose a CNAME endpoint first (its answer is that CNAME alone). */
  lastChoseCname(): boolean;
  /**
   * Whether the last answer() is the same for every query with the same
   * bytes from the same resolver until the health epoch or the snapshot
   * changes (engine/answer-cache.ts): false for answers that differ per
   * client network or carry a TTL derived from health.
   */
  lastReusable(): boolean;
}

export interface SteeringResult {
  scope: number;
  ttl: number;
}

interface EngineOptions {
  /** This instance's PoP id: NSID payload and CHAOS id.server / hostname.bind answer. */
  popId: string;
  /** Answer to CHAOS version.bind; null (the default) refuses it. */
  versionBind: string | null;
  counters?: Counters;
  /** Secret for server cookies (RFC 7873); random per process when omitted. */
  cookieSecret?: number;
}

const CHAOS_NAMES = ['id.server.', 'hostname.bind.', 'version.bind.'];

/** Which template of a name answered, for the response key; query types (0–65535) stand for their own templates. */
const ANSWERED_OTHER_TYPES = 0x10000; // NODATA, or the CNAME every other type gets
const ANSWERED_ANY = 0x10001;
const ANSWERED_REFERRAL = 0x10002;
const ANSWERED_NXDOMAIN = 0x10003;
const ANSWERED_CHAOS = 0x10004;

/** The response key of (name hash, which template): one 32-bit mix, nothing allocated. */
function responseKeyOf(nameHash: number, answered: number): number {
  let h = Math.imul(nameHash ^ Math.imul(answered + 1, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  return Math.imul(h, 0xc2b2ae35) ^ (h >>> 16);
}


export class Engine {
  snapshot: DnsSnapshot;
  steering: SteeringHook | null = null;
  /** Steered index (policy) that answered the last query, or -1 when it was not a steered answer. */
  lastSteered = -1;
  /** The name node of the last steered answer (its owner, for attaching signatures). */
  private lastSteeredNode: NameNode | null = null;
  /** For a signed wildcard expansion: 1 + the gap the query name falls in, and that gap's covering NSEC; else 0. */
  private wildcardSlot = 0;
  private wildcardCovering: SignedRecord[] | undefined = undefined;
  /**
   * Identity of the last answer for response rate limiting: equal keys mean
   * the same answer template (see the file header). Meaningful for NOERROR
   * and NXDOMAIN replies; errors are limited per client network.
   */
  responseKey = 0;
  /**
   * Whether the last reply may be sent again, with another ID, to the same
   * query bytes from the same resolver until the snapshot or the health
   * epoch changes (engine/answer-cache.ts): a UDP answer, not truncated,
   * without a cookie, and not a per-network steering decision.
   */
  reusable = false;
  readonly view = new QueryView();
  readonly writer = new ResponseWriter();
  readonly counters: Counters;
  private readonly chaos: Array<{ key: Uint8Array; template: AnswerTemplate | null }>;
  private readonly steeringResult: SteeringResult = { scope: 0, ttl: -1 };
  private readonly cookieSecret: number;

  constructor(snapshot: DnsSnapshot, options: EngineOptions) {
    this.snapshot = snapshot;
    this.counters = options.counters ?? new Counters(null, 0);
    this.writer.nsid = Buffer.from(options.popId, 'utf8');
    this.cookieSecret = options.cookieSecret ?? (Math.random() * 0x100000000) >>> 0;
    this.chaos = CHAOS_NAMES.map((name) => {
      const text = name === 'version.bind.' ? options.versionBind : options.popId;
      const template = text === null ? null
        : new TemplateBuilder(null).add(SECTION_ANSWER, 'qname', TYPE_TXT, 0, encodeTxt(text), { klass: CLASS_CH }).build(0, true);
      return { key: lowerWire(nameToWire(name)), template };
    });
  }

  /**
   * Answers one message. Returns the response length in `this.writer.buf`, or
   * 0 when nothing must be sent (too short, or a response).
   */
  handle(query: Uint8Array, length: number, transport: number, client: ClientAddress): number {
    const view = this.view;
    const writer = this.writer;
    const counters = this.counters;
    this.lastSteered = -1;
    this.wildcardSlot = 0;
    this.responseKey = 0;
    this.reusable = false;
    const status = parseQuery(query, length, view);
    if (status === PARSE_DROP) {
      counters.values[OFF_DROPPED]++;
      return 0;
    }
    counters.request(transport, client.family, view.qtype);
    writer.ecsScope = 0;
    if (view.cookiePresent) this.makeServerCookie(client);
    let rcode: number;
    let size: number;
    if (status === PARSE_FORMERR) {
      rcode = RCODE_FORMERR;
      size = writer.writeError(view, query, RCODE_FORMERR, true, true);
    } else if (status === PARSE_NOTIMP) {
      rcode = RCODE_NOTIMP;
      size = writer.writeError(view, query, RCODE_NOTIMP, false, true);
    } else if (status === PARSE_BADVERS) {
      rcode = PARSE_BADVERS;
      size = writer.writeError(view, query, PARSE_BADVERS, true, true);
    } else if (!view.hasQuestion) {
      // QDCOUNT 0 with a COOKIE: a cookie refresh (RFC 7873 §5.4).
      rcode = 0;
      size = writer.writeError(view, query, 0, false, true);
    } else {
      const maxSize = transport === TRANSPORT_UDP ? udpSizeLimit(view) : TCP_SIZE_LIMIT;
      let template = this.resolve(transport, client);
      if (view.dnssecOk) template = this.signedOf(template);
      rcode = template.rcode;
      size = writer.writeAnswer(view, query, template, maxSize, this.steeringResult.ttl);
      if (writer.truncated) counters.values[OFF_TRUNCATED]++;
      this.reusable = transport === TRANSPORT_UDP && !writer.truncated && !view.cookiePresent
        && (this.lastSteered < 0 || this.steering!.lastReusable());
    }
    counters.response(rcode);
    return size;
  }

  /** Picks the template for a well-formed query. */
  private resolve(transport: number, client: ClientAddress): AnswerTemplate {
    const view = this.view;
    this.steeringResult.ttl = -1;
    const qtype = view.qtype;
    if (view.qclass === CLASS_CH) return this.chaosAnswer();
    if (view.qclass !== CLASS_IN) return REFUSED;
    if (qtype === TYPE_AXFR || qtype === TYPE_IXFR) return transport === TRANSPORT_TCP ? REFUSED : NOTIMP;
    if (qtype === TYPE_OPT || qtype === TYPE_TSIG || qtype === TYPE_TKEY || qtype === TYPE_MAILA || qtype === TYPE_MAILB) return NOTIMP;

    const snapshot = this.snapshot;
    const names = snapshot.names;
    const key = view.key;
    const keyLength = view.keyLength;
    let node = findName(names, view.suffixHashes[0], key, 0, keyLength);
    if (node !== null) {
      if (qtype === TYPE_DS && node.parentSideDs !== null) {
        this.responseKey = responseKeyOf(node.hash, ANSWERED_OTHER_TYPES); // the parent's NODATA
        return node.parentSideDs;
      }
      if (node.delegation !== null) return this.referral(node.delegation);
      return this.answerAt(node, qtype, client);
    }
    // Walk up to the closest encloser.
    const labels = view.labelCount;
    for (let i = 1; i <= labels; i++) {
      const start = i < labels ? view.labelOffsets[i] : keyLength - 1;
      node = findName(names, view.suffixHashes[i], key, start, keyLength - start);
      if (node === null) continue;
      if (node.delegation !== null) return this.referral(node.delegation);
      if (node.wildcard !== null) {
        const answer = this.answerAt(node.wildcard, qtype, client);
        if (!view.dnssecOk || node.wildcardProofs === undefined) return answer;
        // Signed zone, DO=1: the wildcard's answer with the NSEC proving the query name does not exist;
        // a steered answer gets that NSEC when signedOf() builds its twin.
        const gap = wildcardGap(node, key, view.labelOffsets[i - 1], keyLength);
        this.wildcardSlot = 1 + gap;
        this.wildcardCovering = node.wildcardProofs.covering[gap];
        return wildcardProof(node, node.wildcard, answer, gap) ?? answer;
      }
      this.responseKey = responseKeyOf(fnv1a(node.zone.apex), ANSWERED_NXDOMAIN);
      // Signed zone, DO=1: the precomputed NSEC proof for the gap the missing label falls in.
      if (view.dnssecOk && node.denial !== undefined) return nxdomainProof(node.denial, key, view.labelOffsets[i - 1], keyLength);
      return node.zone.nxdomain;
    }
    return REFUSED; // in no zone we serve: never recurse
  }

  /** Every name at or below a delegation point gets its referral, counted against the delegation point. */
  private referral(delegation: NameNode): AnswerTemplate {
    this.responseKey = responseKeyOf(delegation.hash, ANSWERED_REFERRAL);
    return delegation.referral!;
  }

  /** The answer of `node` (the wildcard's own node for a synthesized answer), with its response key. */
  private answerAt(node: NameNode, qtype: number, client: ClientAddress): AnswerTemplate {
    if (node.steeredIndex >= 0 && this.steering !== null && (qtype === 1 || qtype === 28 || qtype === TYPE_ANY || qtype === TYPE_CNAME)) {
      const result = this.steeringResult;
      result.scope = 0;
      this.lastSteered = node.steeredIndex;
      this.lastSteeredNode = node;
      const steeredType = qtype === 28 ? 28 : 1;
      const template = this.steering.answer(node.steeredIndex, steeredType, this.view, client, result);
      this.writer.ecsScope = result.scope;
      // A CNAME query gets the CNAME this client was steered to (RFC 1034 §3.6.2), and NODATA when it was steered to addresses.
      const answers = template !== null && (qtype !== TYPE_CNAME || template.rcode !== RCODE_NOERROR || this.steering.lastChoseCname());
      if (answers) {
        this.responseKey = responseKeyOf(node.hash, steeredType);
        return template;
      }
      this.responseKey = responseKeyOf(node.hash, ANSWERED_OTHER_TYPES);
      // No address of this family among the chosen endpoints: in a signed zone, a NODATA whose NSEC says so.
      const nodata = node.steeredNodata;
      if (nodata !== undefined) return steeredType === 28 ? nodata.aaaa : nodata.a;
      return node.otherTypes;
    }
    if (qtype === TYPE_ANY) {
      this.responseKey = responseKeyOf(node.hash, ANSWERED_ANY);
      return node.any;
    }
    const types = node.types;
    for (let i = 0; i < types.length; i++) {
      if (types[i] === qtype) {
        this.responseKey = responseKeyOf(node.hash, qtype);
        return node.templates[i];
      }
    }
    this.responseKey = responseKeyOf(node.hash, ANSWERED_OTHER_TYPES);
    return node.otherTypes;
  }

  /**
   * The DO=1 form of an answer: the template's signed twin. A steered answer
   * is built per endpoint set on first use (steering-hook.ts), so its twin is
   * made then too, from signatures the compile made for every set the policy
   * can answer, and kept on the template per steered name (and wildcard gap):
   * nothing is signed here.
   */
  private signedOf(template: AnswerTemplate): AnswerTemplate {
    if (template.signed !== undefined) return template.signed;
    const steered = this.lastSteered >= 0 ? this.snapshot.dnssec?.steered[this.lastSteered] : undefined;
    const node = this.lastSteeredNode;
    if (steered === undefined || steered === null || template.answerCount === 0 || node === null) return template;
    template.signedAt ??= new Map();
    let twins = template.signedAt.get(node);
    if (twins === undefined) template.signedAt.set(node, twins = []);
    const slot = this.wildcardSlot;
    const known = twins[slot];
    if (known !== undefined) return known;
    const signatures = this.snapshot.dnssec!.signatures;
    return twins[slot] = signTemplate(template, node.key, steered.apex, (rrset) => signatures.get(rrsetKey(rrset)) ?? null,
      { originalTtl: steered.originalTtl, extraAuthority: slot > 0 ? this.wildcardCovering : [] });
  }

  private chaosAnswer(): AnswerTemplate {
    const view = this.view;
    if (view.qtype !== TYPE_TXT && view.qtype !== TYPE_ANY) return REFUSED;
    for (let n = 0; n < this.chaos.length; n++) {
      const entry = this.chaos[n];
      if (entry.key.length !== view.keyLength) continue;
      let same = true;
      for (let i = 0; i < entry.key.length; i++) if (entry.key[i] !== view.key[i]) { same = false; break; }
      if (same) {
        this.responseKey = responseKeyOf(n, ANSWERED_CHAOS);
        return entry.template ?? REFUSED;
      }
    }
    return REFUSED;
  }

  /**
   * Server cookie in the RFC 9018 layout (version 1, reserved, timestamp,
   * 8-byte hash of client cookie, time and client address under a process
   * secret). popsteer echoes cookies safely but does not require them.
   */
  private makeServerCookie(client: ClientAddress): void {
    const out = this.writer.serverCookie;
    const now = (Date.now() / 1000) >>> 0;
    out[0] = 1; out[1] = 0; out[2] = 0; out[3] = 0;
    out[4] = now >>> 24; out[5] = (now >>> 16) & 0xff; out[6] = (now >>> 8) & 0xff; out[7] = now & 0xff;
    let h1 = this.cookieSecret ^ now;
    let h2 = Math.imul(this.cookieSecret, 0x9e3779b1) ^ 0x85ebca6b;
    const cc = this.view.clientCookie;
    for (let i = 0; i < 8; i++) {
      h1 = fnv1aStep(h1, cc[i]);
      h2 = Math.imul(h2 ^ cc[7 - i], 0x5bd1e995);
    }
    const address = client.address;
    for (let i = 0; i < address.length; i++) {
      h1 = fnv1aStep(h1, address.charCodeAt(i));
      h2 = Math.imul(h2 ^ address.charCodeAt(i), 0x5bd1e995);
    }
    h1 ^= h1 >>> 15; h2 ^= h2 >>> 13;
    out[8] = h1 >>> 24; out[9] = (h1 >>> 16) & 0xff; out[10] = (h1 >>> 8) & 0xff; out[11] = h1 & 0xff;
    out[12] = h2 >>> 24; out[13] = (h2 >>> 16) & 0xff; out[14] = (h2 >>> 8) & 0xff; out[15] = h2 & 0xff;
  }
}

const REFUSED: AnswerTemplate = new TemplateBuilder(null).build(RCODE_REFUSED, false);
const NOTIMP: AnswerTemplate = new TemplateBuilder(null).build(RCODE_NOTIMP, false);
