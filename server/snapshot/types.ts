// The compiled, immutable form of zones and policies that the query path
// reads. Built by policy/ on the slow path, read by engine/ on the fast path;
// plain data only (objects, arrays, typed arrays), so a snapshot can be
// posted to worker threads with a structured clone and is never mutated after
// it is published.

import type { AnswerTemplate } from '../dns/template.ts';
import type { SteeringTables } from '../steering/types.ts';

export interface ZoneTables {
  /** Apex in lower-cased wire form. */
  apex: Uint8Array;
  apexText: string;
  /** NXDOMAIN with the SOA in the authority section (negative TTL per RFC 2308). */
  nxdomain: AnswerTemplate;
  /** NODATA with the SOA in the authority section. */
  nodata: AnswerTemplate;
  sourceFile: string;
}

export interface NameNode {
  /** Lower-cased wire name. */
  key: Uint8Array;
  hash: number;
  /** Next node in the same hash bucket. */
  next: NameNode | null;
  zone: ZoneTables;
  /** Presentation form, for logs and explain. */
  text: string;
  /** The delegation (zone cut) at or above this node, inside its zone; null when authoritative. */
  delegation: NameNode | null;
  /** Referral answer, set on delegation points only. */
  referral: AnswerTemplate | null;
  /**
   * The answer to DS at a zone cut, from the parent's side (RFC 4035 §3.1.4.1):
   * set on delegation points, and on a served child zone's apex when its
   * parent is served too. Zones hold no DS records, so it is the parent's NODATA.
   */
  parentSideDs: AnswerTemplate | null;
  /** The node "*.<this name>", when the zone has one. */
  wildcard: NameNode | null;
  /** Query types with their own answer; templates[i] answers types[i]. */
  types: Int32Array;
  templates: AnswerTemplate[];
  /** Answer for every other type: NODATA, or the CNAME (chased inside the zone). */
  otherTypes: AnswerTemplate;
  /** RFC 8482 minimal answer to ANY. */
  any: AnswerTemplate;
  /** Index into DnsSnapshot.steered for names answered by a steering decision; -1 for static names. */
  steeredIndex: number;
  /** In a signed zone: the NXDOMAIN proofs for names whose closest encloser is this node (dnssec/nsec.ts). */
  denial?: DenialTable;
  /**
   * In a signed zone, on a node with a (static) wildcard child: for each gap
   * between its children (as in DenialTable), the wildcard's signed answers
   * with the NSEC proving the query name itself does not exist (RFC 4035 §3.1.3.3).
   */
  wildcardProofs?: { labels: Uint8Array[]; nsec3?: DenialHashes; answers: WildcardAnswers[]; covering: SignedRecord[][] };
  /**
   * On a steered name in a signed zone: the NODATA sent when the chosen
   * endpoints have no address of the asked family (A, AAAA), its NSEC
   * listing every type the name can answer except that one (and CNAME).
   */
  steeredNodata?: { a: AnswerTemplate; aaaa: AnswerTemplate };
}

/** A record (an NSEC) added to a steered wildcard expansion's authority section, its RRSIG made at compile. */
export interface SignedRecord {
  owner: Uint8Array;
  type: number;
  ttl: number;
  rdata: Uint8Array;
}

/** A wildcard node's signed answers for one gap: templates[i] answers types[i] of the wildcard node. */
export interface WildcardAnswers {
  templates: AnswerTemplate[];
  otherTypes: AnswerTemplate;
  any: AnswerTemplate;
  /** A steered wildcard's NODATA for an address family the chosen endpoints lack (as NameNode.steeredNodata). */
  steeredNodata?: { a: AnswerTemplate; aaaa: AnswerTemplate };
}

/**
 * Precomputed NXDOMAIN answers below one closest encloser: `labels` are its
 * children's labels in canonical order, `templates[i]` the signed proof for
 * a missing label that sorts just before labels[i] (the last one: after all).
 */
export interface DenialTable {
  labels: Uint8Array[];
  /** In an NSEC3 zone: the gaps are between these hashes instead (templates[i] covers hashes[i] up to the next). */
  nsec3?: DenialHashes;
  templates: AnswerTemplate[];
}

/** A zone's NSEC3 chain as a query needs it: hashes in order and the hash parameters (one object per zone). */
export interface DenialHashes {
  hashes: Uint8Array[];
  iterations: number;
  salt: Uint8Array;
}

/** What DO=1 answers need beyond the signed twins on the templates. */
export interface DnssecTables {
  /** Canonical RRset key → RRSIG RDATA, for the steered answers built per endpoint set (dnssec/sign.ts rrsetKey). */
  signatures: Map<string, Uint8Array>;
  /** Per steered index: the original TTL its answers are signed with and its zone apex, or null when the zone is unsigned. */
  steered: Array<{ originalTtl: number; apex: Uint8Array } | null>;
  /** When the earliest of these signatures expires (ms since the epoch): dnssec/refresh.ts re-signs before it. */
  expiresAt: number;
  /** The signing and published keys' tags per signed zone: a rollover step changes what is served without changing a file's text. */
  keys: string;
}

export interface NameTable {
  buckets: Array<NameNode | null>;
  mask: number;
  size: number;
}

export interface DnsSnapshot {
  names: NameTable;
  zones: ZoneTables[];
  /** Compiled steering policies; null when no name is steered. */
  steering: SteeringTables | null;
  /** Content hash of every file that made this snapshot. */
  hash: string;
  loadedAt: number;
  /** Present when some zone is signed. */
  dnssec?: DnssecTables;
  /**
   * Hash of everything `names` and `zones` were compiled from (zone files,
   * steered names and their policy positions, the hash record); equal keys,
   * equal tables (snapshot/zone-reuse.ts). Absent for signed zones, whose
   * signatures also depend on the clock and the policies' answers.
   */
  zonesKey?: string;
}
