// NSEC (RFC 4034 §4, §6.1): canonical name order, type bitmaps, and the
// per-query choice of a precomputed NXDOMAIN proof. The chain is built and
// signed when the snapshot is compiled; a query only picks which proof to send.

import type { AnswerTemplate } from '../dns/template.ts';
import type { DenialHashes, DenialTable, NameNode } from '../snapshot/types.ts';
import { coveringIndex, nsec3Hash } from './nsec3.ts';

/** Labels of a lower-cased wire name, most significant (rightmost) first. */
function labelsFromRight(name: Uint8Array): Uint8Array[] {
  const labels: Uint8Array[] = [];
  for (let i = 0; name[i] !== 0; i += name[i] + 1) labels.push(name.subarray(i + 1, i + 1 + name[i]));
  return labels.reverse();
}

/** Canonical label order: octet by octet, a shorter label first when one is a prefix of the other. */
export function compareLabels(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Canonical DNS name order (RFC 4034 §6.1) of two lower-cased wire names. */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  const la = labelsFromRight(a);
  const lb = labelsFromRight(b);
  const n = Math.min(la.length, lb.length);
  for (let i = 0; i < n; i++) {
    const c = compareLabels(la[i], lb[i]);
    if (c !== 0) return c;
  }
  return la.length - lb.length;
}

/** The type bitmap field of an NSEC record (RFC 4034 §4.1.2). */
export function nsecTypeBitmap(types: Iterable<number>): Uint8Array {
  const windows = new Map<number, Uint8Array>();
  for (const t of types) {
    const w = t >> 8;
    const bits = windows.get(w) ?? new Uint8Array(32);
    bits[(t & 0xff) >> 3] |= 0x80 >> (t & 7);
    windows.set(w, bits);
  }
  const out: number[] = [];
  for (const w of [...windows.keys()].sort((a, b) => a - b)) {
    const bits = windows.get(w)!;
    let len = 32;
    while (len > 0 && bits[len - 1] === 0) len--;
    out.push(w, len, ...bits.subarray(0, len));
  }
  return Uint8Array.from(out);
}

/** NSEC RDATA: the next owner (whole, lower-cased) and the type bitmap. */
export function nsecRdata(next: Uint8Array, types: Iterable<number>): Uint8Array {
  const bitmap = nsecTypeBitmap(types);
  const out = new Uint8Array(next.length + bitmap.length);
  out.set(next, 0);
  out.set(bitmap, next.length);
  return out;
}

/** Index of the last chain name at or before `name` in canonical order (the chain is sorted, its first name the apex). */
export function predecessorIndex(chain: Uint8Array[], name: Uint8Array): number {
  let lo = 0;
  let hi = chain.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (compareNames(chain[mid], name) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The NXDOMAIN proof for a query whose closest encloser has `table`, and
 * whose next closer name is key[start .. end) (its first label the one just
 * below the encloser). NSEC: a binary search over the encloser's child
 * labels, no allocation; NSEC3: one hash of the next closer name and a
 * binary search over the chain's hashes.
 */
export function nxdomainProof(table: DenialTable, key: Uint8Array, start: number, end: number): AnswerTemplate {
  return table.templates[proofGap(table.labels, table.nsec3, key, start, end)];
}

function proofGap(labels: Uint8Array[], nsec3: DenialHashes | undefined, key: Uint8Array, start: number, end: number): number {
  if (nsec3 === undefined) return gapOf(labels, key, start);
  return coveringIndex(nsec3.hashes, nsec3Hash(key.subarray(start, end), nsec3));
}

/** Which gap between `labels` (sorted child labels) the label at key[start] falls in: 0 before the first, labels.length after the last. */
function gapOf(labels: Uint8Array[], key: Uint8Array, start: number): number {
  const len = key[start];
  let lo = 0;
  let hi = labels.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const label = labels[mid];
    let c = 0;
    const n = label.length < len ? label.length : len;
    for (let i = 0; i < n && c === 0; i++) c = label[i] - key[start + 1 + i];
    if (c === 0) c = label.length - len;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The gap below `encloser` (with wildcard proofs) that the label at key[start] falls in. */
export function wildcardGap(encloser: NameNode, key: Uint8Array, start: number, end: number): number {
  const proofs = encloser.wildcardProofs!;
  return proofGap(proofs.labels, proofs.nsec3, key, start, end);
}

/**
 * The signed wildcard answer in `gap` whose unsigned answer is `template` of
 * `wildcard`; null when none matches (a steered answer, signed per endpoint set).
 */
export function wildcardProof(encloser: NameNode, wildcard: NameNode, template: AnswerTemplate, gap: number): AnswerTemplate | null {
  const answers = encloser.wildcardProofs!.answers[gap];
  if (template === wildcard.otherTypes) return answers.otherTypes;
  if (template === wildcard.any) return answers.any;
  if (wildcard.steeredNodata !== undefined && answers.steeredNodata !== undefined) {
    if (template === wildcard.steeredNodata.a) return answers.steeredNodata.a;
    if (template === wildcard.steeredNodata.aaaa) return answers.steeredNodata.aaaa;
  }
  const i = wildcard.templates.indexOf(template);
  return i >= 0 ? answers.templates[i] : null;
}
