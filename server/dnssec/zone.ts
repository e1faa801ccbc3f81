// Signing one compiled zone: every template of every name gets its signed
// twin, the NSEC chain over the zone's names gives each name its NODATA
// proof and each closest encloser its NXDOMAIN proofs, and every RRset a
// steered name can answer is signed ahead (steered.ts). Runs once per
// compile; the query path only picks among what this made.

import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_DS, TYPE_NS } from '../dns/constants.ts';
import { isSubdomain } from '../dns/name.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import type { DenialHashes, DenialTable, NameNode, WildcardAnswers } from '../snapshot/types.ts';
import { compareLabels, compareNames, nsecRdata, nsecTypeBitmap, predecessorIndex } from './nsec.ts';
import { coveringIndex, nsec3Hash, nsec3Owner, nsec3Rdata, TYPE_NSEC3, type Nsec3Params } from './nsec3.ts';
import { TYPE_NSEC, TYPE_RRSIG, type CanonicalRRset, type ZoneSigner } from './sign.ts';
import { negativeCnameTarget, signTemplate, type ExtraRecord, type SignatureFor } from './template.ts';

/** What signing needs to know of one name beyond its NameNode. */
export interface NameFacts {
  node: NameNode;
  /** Types with data at this name (static RRsets, DNSKEY at the apex, the steered types). */
  types: Set<number>;
  /** Below a zone cut (glue only): not in the NSEC chain, never signed. */
  occluded: boolean;
}

interface ZoneToSign {
  apex: Uint8Array;
  signer: ZoneSigner;
  negativeTtl: number;
  names: NameFacts[];
  /** NSEC3 parameters, or null for NSEC. */
  nsec3: Nsec3Params | null;
}

const keyOf = (name: Uint8Array): string => Buffer.from(name).toString('latin1');

/**
 * The zone's denial chain, NSEC (names in canonical order) or NSEC3 (every
 * name, empty non-terminals too, in hash order), and what signs and proves
 * with it. Every record it hands out is signed when made.
 */
class Chain {
  readonly cuts: Uint8Array[];
  readonly facts: NameFacts[];
  readonly names: Uint8Array[];
  readonly signatureFor: SignatureFor;
  /** NSEC3: the chain's hashes in order, and the facts of the name behind each. */
  readonly nsec3: DenialHashes | null = null;
  private readonly hashed: NameFacts[] = [];
  private readonly records = new Map<number | string, ExtraRecord>();
  private readonly zone: ZoneToSign;

  constructor(zone: ZoneToSign) {
    this.zone = zone;
    const apex = zone.apex;
    this.cuts = zone.names.filter((f) => f.types.has(TYPE_NS) && f.node.key.length !== apex.length).map((f) => f.node.key);
    this.facts = zone.names.filter((f) => !f.occluded && f.types.size > 0).sort((a, b) => compareNames(a.node.key, b.node.key));
    this.names = this.facts.map((f) => f.node.key);
    this.signatureFor = (rrset) => (authoritative(rrset, apex, this.cuts) ? zone.signer.signAll(rrset) : null);
    if (zone.nsec3 !== null) {
      const params = zone.nsec3;
      const all = zone.names.filter((f) => !f.occluded).map((f) => ({ f, h: nsec3Hash(f.node.key, params) }))
        .sort((x, y) => Buffer.compare(x.h, y.h));
      this.hashed = all.map((x) => x.f);
      this.nsec3 = { hashes: all.map((x) => x.h), iterations: params.iterations, salt: params.salt };
    }
  }

  isCut(key: Uint8Array): boolean {
    return this.cuts.some((c) => keyOf(c) === keyOf(key));
  }

  /** Number of gaps NSEC3 proofs choose among (one per chain record). */
  get hashGaps(): number {
    return this.hashed.length;
  }

  /**
   * The record whose owner is `name`, or that covers it, signed. `drop`
   * leaves types out of its bitmap: the NODATA proofs of a steered name,
   * which answers A, AAAA or CNAME only for some clients (nodataDrop).
   */
  recordFor(name: Uint8Array, drop: readonly number[] = []): ExtraRecord {
    if (this.nsec3 !== null) return this.recordAt(coveringIndex(this.nsec3.hashes, nsec3Hash(name, this.zone.nsec3!)), drop);
    return this.recordAt(predecessorIndex(this.names, name), drop);
  }

  /** The chain's record at index `i` (canonical order for NSEC, hash order for NSEC3). */
  recordAt(i: number, drop: readonly number[] = []): ExtraRecord {
    const k = drop.length === 0 ? i : `${i}|${drop.join(',')}`;
    let record = this.records.get(k);
    if (!record) {
      record = this.nsec3 !== null ? this.makeNsec3(i, drop) : this.makeNsec(i, drop);
      this.signatureFor({ owner: record.owner, type: record.type, klass: CLASS_IN, ttl: record.ttl, rdatas: [record.rdata] }, 1);
      this.records.set(k, record);
    }
    return record;
  }

  /** The types a denial record lists for a name: at a delegation only NS and DS are the parent's (RFC 4035 §2.3). */
  private typesOf(f: NameFacts, drop: readonly number[]): Set<number> {
    const types = new Set(this.isCut(f.node.key) ? [...f.types].filter((t) => t === TYPE_NS || t === TYPE_DS) : [...f.types]);
    if (types.size > 0 && !this.isCut(f.node.key)) types.add(TYPE_RRSIG);
    for (const t of drop) types.delete(t);
    return types;
  }

  private makeNsec(i: number, drop: readonly number[]): ExtraRecord {
    const f = this.facts[i];
    const types = this.typesOf(f, drop);
    types.add(TYPE_NSEC);
    const next = this.names[(i + 1) % this.names.length];
    return { owner: f.node.key, type: TYPE_NSEC, ttl: this.zone.negativeTtl, rdata: nsecRdata(next, types) };
  }

  private makeNsec3(i: number, drop: readonly number[]): ExtraRecord {
    const hashes = this.nsec3!.hashes;
    const next = hashes[(i + 1) % hashes.length];
    const rdata = nsec3Rdata(this.zone.nsec3!, next, nsecTypeBitmap(this.typesOf(this.hashed[i], drop)));
    return { owner: nsec3Owner(hashes[i], this.zone.apex), type: TYPE_NSEC3, ttl: this.zone.negativeTtl, rdata };
  }

  /** NODATA at `name`: its own record (NSEC3 has one for empty non-terminals too; NSEC the covering one). */
  nodata(name: Uint8Array, drop: readonly number[] = []): ExtraRecord[] {
    return [this.recordFor(name, drop)];
  }

  /**
   * NXDOMAIN below `encloser` given the record covering the next closer name:
   * with the one covering (or owning) the wildcard, and for NSEC3 the
   * closest encloser's own (RFC 4035 §3.1.3.2, RFC 5155 §7.2.2).
   */
  nxdomain(encloser: Uint8Array, cover: ExtraRecord, wildcardDrop: readonly number[] = []): ExtraRecord[] {
    const wildcard = this.recordFor(Uint8Array.from([1, 0x2a, ...encloser]), wildcardDrop);
    return [...new Set(this.nsec3 !== null ? [this.recordFor(encloser), cover, wildcard] : [cover, wildcard])];
  }

  /** Per gap a next closer name below `encloser` can fall in: the record covering it (label gaps for NSEC, hash gaps for NSEC3). */
  gapCovers(encloser: Uint8Array, labels: Uint8Array[]): ExtraRecord[] {
    if (this.nsec3 !== null) return this.hashed.map((_, i) => this.recordAt(i));
    const covers: ExtraRecord[] = [];
    for (let i = 0; i <= labels.length; i++) covers.push(this.recordFor(nameInGap(encloser, i === 0 ? null : labels[i - 1])));
    return covers;
  }
}

/**
 * What a NODATA proof at `node` leaves out of the NSEC bitmap. A validator
 * refuses a NODATA whose NSEC lists the asked type or CNAME (RFC 4035
 * §5.4), and checks nothing else of the bitmap; a steered name answers CNAME
 * only when steering picks a CNAME endpoint, so its NODATA proofs never list
 * CNAME. The A and AAAA bits stay: other clients do get those answers.
 */
const nodataDrop = (node: NameNode): number[] => (node.steeredIndex >= 0 ? [TYPE_CNAME] : []);

/**
 * Signs every template of the zone's nodes in place (their `signed` twins)
 * and gives each possible closest encloser its NXDOMAIN proofs. Returns the
 * number of distinct signatures made.
 */
export function signZone(zone: ZoneToSign, nxdomain: AnswerTemplate, allNodes: NameNode[]): number {
  const chain = new Chain(zone);
  const exists = new Set(allNodes.map((n) => keyOf(n.key)));
  for (const facts of zone.names) if (!facts.occluded) signNode(facts.node, zone.apex, chain, exists);
  buildDenials(zone, chain, nxdomain, allNodes);
  return zone.signer.count;
}

/** Whether an RRset is the zone's to sign: in the zone, not a delegation's NS, not glue below a cut. */
function authoritative(rrset: CanonicalRRset, apex: Uint8Array, cuts: Uint8Array[]): boolean {
  if (!isSubdomain(rrset.owner, apex)) return false;
  const cut = cuts.find((c) => isSubdomain(rrset.owner, c));
  if (!cut) return true;
  return rrset.owner.length === cut.length && (rrset.type === TYPE_NSEC || rrset.type === TYPE_DS);
}

function signNode(node: NameNode, apex: Uint8Array, chain: Chain, exists: Set<string>): void {
  const key = node.key;
  const twin = (t: AnswerTemplate, extra: ExtraRecord[]): AnswerTemplate => signTemplate(t, key, apex, chain.signatureFor, { extraAuthority: extra });
  // "No such type here": the name's own NSEC, or for an empty non-terminal the one covering it.
  const proof = chain.nodata(key, nodataDrop(node));
  const nodata = (t: AnswerTemplate): ExtraRecord[] => (t.answerCount === 0 && t.rcode === 0 ? proof : cnameTargetProof(t, key, apex, chain, exists));
  for (const t of node.templates) t.signed = twin(t, nodata(t));
  if (node.any.signed === undefined) node.any = { ...node.any, signed: twin(node.any, nodata(node.any)) };
  // otherTypes and parentSideDs may be the zone's shared NODATA: each name gets its own copy.
  const unsignedNodata = node.otherTypes;
  node.otherTypes = { ...unsignedNodata, signed: twin(unsignedNodata, nodata(unsignedNodata)) };
  if (node.steeredIndex >= 0) {
    // The chosen endpoints have no address of this family (others may): the bitmap leaves it out too.
    const family = (type: number): AnswerTemplate => ({ ...unsignedNodata, signed: twin(unsignedNodata, chain.nodata(key, [type, TYPE_CNAME])) });
    node.steeredNodata = { a: family(TYPE_A), aaaa: family(TYPE_AAAA) };
  }
  if (node.referral !== null) node.referral.signed = twin(node.referral, proof);
  if (node.parentSideDs !== null && chain.isCut(key)) node.parentSideDs = { ...node.parentSideDs, signed: twin(node.parentSideDs, proof) };
}

/**
 * For an answer whose CNAME chain ends at an in-zone name without the asked
 * data (an SOA follows the CNAMEs): the proof for that target. Its own NSEC
 * when it exists (NODATA), else the NSEC covering it and the one covering or
 * owning the wildcard at its closest encloser (NXDOMAIN, RFC 4035 §3.1.3.2).
 */
function cnameTargetProof(t: AnswerTemplate, qname: Uint8Array, apex: Uint8Array, chain: Chain, exists: Set<string>): ExtraRecord[] {
  const target = negativeCnameTarget(t, qname, apex);
  if (target === null) return [];
  if (exists.has(keyOf(target))) return chain.nodata(target);
  let nextCloser = target;
  let encloser = target.subarray(target[0] + 1);
  while (!exists.has(keyOf(encloser)) && encloser.length > apex.length) {
    nextCloser = encloser;
    encloser = encloser.subarray(encloser[0] + 1);
  }
  return chain.nxdomain(encloser, chain.recordFor(nextCloser));
}

/**
 * NXDOMAIN proofs below every name that can be a closest encloser: one per
 * gap a next closer name can fall in (between its children for NSEC, between
 * chain hashes for NSEC3), each with the record covering that name and the
 * one covering the encloser's wildcard (Chain.nxdomain).
 */
function buildDenials(zone: ZoneToSign, chain: Chain, nxdomain: AnswerTemplate, allNodes: NameNode[]): void {
  const apex = zone.apex;
  const children = new Map<string, Uint8Array[]>();
  for (const n of allNodes) {
    if (n.key.length <= apex.length) continue;
    const parent = keyOf(n.key.subarray(n.key[0] + 1));
    const list = children.get(parent) ?? [];
    list.push(n.key.subarray(1, 1 + n.key[0]));
    children.set(parent, list);
  }
  for (const facts of zone.names) {
    const node = facts.node;
    if (facts.occluded || node.delegation !== null) continue;
    const labels = (children.get(keyOf(node.key)) ?? []).slice().sort(compareLabels);
    const covers = chain.gapCovers(node.key, labels);
    const nsec3 = chain.nsec3 ?? undefined;
    if (node.wildcard !== null) {
      const covering = covers.map((c) => [c]);
      node.wildcardProofs = { labels, nsec3, answers: wildcardAnswers(node.wildcard, node.key, covers, apex, chain), covering };
      continue;
    }
    const templates = covers.map((cover) => signTemplate(nxdomain, node.key, apex, chain.signatureFor, { extraAuthority: chain.nxdomain(node.key, cover) }));
    node.denial = { labels, nsec3, templates } satisfies DenialTable;
  }
}

/** A name in the gap after child label `after` of `encloser` (before every child when null): that label followed by a zero octet. */
function nameInGap(encloser: Uint8Array, after: Uint8Array | null): Uint8Array {
  const label = after === null ? Uint8Array.of(0) : Uint8Array.from([...after, 0]);
  return Uint8Array.from([label.length, ...label, ...encloser]);
}

/**
 * Per gap below the wildcard's encloser: the wildcard's answers with the NSEC
 * covering the query name (and, for NODATA, the wildcard's own). A steered
 * wildcard's own answers are built per endpoint set at query time and take
 * `covering` then (engine.ts); its NODATA are here.
 */
function wildcardAnswers(wildcard: NameNode, encloser: Uint8Array, covers: ExtraRecord[], apex: Uint8Array, chain: Chain): WildcardAnswers[] {
  const out: WildcardAnswers[] = [];
  // NSEC3 NODATA on a wildcard: the closest encloser proof and the wildcard's own record (RFC 5155 §7.2.5).
  const encloserProof = chain.nsec3 !== null ? chain.nodata(encloser) : [];
  for (const cover of covers) {
    const proof = (drop: number[]): ExtraRecord[] => [...new Set([...encloserProof, cover, chain.recordFor(wildcard.key, drop)])];
    const sign = (t: AnswerTemplate, extra: ExtraRecord[]): AnswerTemplate => signTemplate(t, wildcard.key, apex, chain.signatureFor, { extraAuthority: extra });
    const twin = (t: AnswerTemplate): AnswerTemplate => sign(t, t.answerCount === 0 && t.rcode === 0 ? proof(nodataDrop(wildcard)) : [cover]);
    const answers: WildcardAnswers = { templates: wildcard.templates.map(twin), otherTypes: twin(wildcard.otherTypes), any: twin(wildcard.any) };
    if (wildcard.steeredIndex >= 0) {
      answers.steeredNodata = { a: sign(wildcard.otherTypes, proof([TYPE_A, TYPE_CNAME])), aaaa: sign(wildcard.otherTypes, proof([TYPE_AAAA, TYPE_CNAME])) };
    }
    out.push(answers);
  }
  return out;
}

/** Types a steered name can answer, for its NSEC bitmap. */
export function steeredTypes(hasIpv4: boolean, hasIpv6: boolean, hasCname: boolean): number[] {
  const types: number[] = [];
  if (hasIpv4) types.push(TYPE_A);
  if (hasIpv6) types.push(TYPE_AAAA);
  if (hasCname) types.push(TYPE_CNAME);
  return types;
}
