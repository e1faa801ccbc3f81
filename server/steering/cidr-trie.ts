// Binary prefix tries over CIDR lists: which rules' CIDRs contain an address,
// and how long an ECS scope must be so that it crosses no CIDR's edge.
//
// Why a trie: a policy may list a customer's whole address plan (10^5 CIDRs
// and more); a per-query scan costs time in proportion, a trie walk at most
// 32 or 128 steps whatever the list. Built on the slow path as plain typed
// arrays (posted to the DNS workers with the snapshot); walked per query
// without allocating. Hand-written because the per-query walk must read
// typed arrays only and report the first matching rule, not just "inside".

import type { CidrTrie } from './types.ts';

export interface CidrEntry {
  /** The rule (or table entry) the CIDR belongs to. */
  rule: number;
  family: 4 | 6;
  /** 16 bytes; IPv4 in the first 4; host bits zero. */
  network: Uint8Array;
  prefixLength: number;
}

const IPV4_ROOT = 0;
const IPV6_ROOT = 1;

/** Builds the trie of `entries`; a CIDR listed by several rules keeps every rule, ascending. */
export function buildCidrTrie(entries: readonly CidrEntry[]): CidrTrie {
  const children: number[] = [-1, -1, -1, -1];
  const rulesAt = new Map<number, number[]>();
  for (const entry of entries) {
    let node = entry.family === 4 ? IPV4_ROOT : IPV6_ROOT;
    for (let depth = 0; depth < entry.prefixLength; depth++) {
      const slot = 2 * node + bitAt(entry.network, depth);
      let next = children[slot];
      if (next < 0) {
        next = children.length / 2;
        children.push(-1, -1);
        children[slot] = next;
      }
      node = next;
    }
    const list = rulesAt.get(node);
    if (list === undefined) rulesAt.set(node, [entry.rule]);
    else if (!list.includes(entry.rule)) list.push(entry.rule);
  }
  const nodeCount = children.length / 2;
  const ruleStart = new Int32Array(nodeCount + 1);
  const ruleList: number[] = [];
  for (let node = 0; node < nodeCount; node++) {
    ruleStart[node] = ruleList.length;
    const list = rulesAt.get(node);
    if (list !== undefined) ruleList.push(...list.sort((a, b) => a - b));
  }
  ruleStart[nodeCount] = ruleList.length;
  return { children: Int32Array.from(children), ruleStart, ruleList: Int32Array.from(ruleList), nodeCount };
}

export function bitAt(bytes: Uint8Array, depth: number): number {
  return (bytes[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/**
 * The lowest-numbered rule whose CIDR contains the address's first `bits`
 * bits (a CIDR longer than `bits` never matches: the client's network is
 * not known that far) and that is admitted; -1 when none. With `kinds`
 * null every rule is admitted; otherwise a rule is when kinds[rule] is 1
 * (client CIDRs only) or when `accept[rule] === stamp` (its other condition,
 * the resolver's CIDRs, holds: see markMatchingRules).
 */
export function firstMatchingRule(trie: CidrTrie, family: 4 | 6, bytes: Uint8Array, bits: number, kinds: Uint8Array | null, accept: Int32Array, stamp: number): number {
  const { children, ruleStart, ruleList } = trie;
  let node = family === 4 ? IPV4_ROOT : IPV6_ROOT;
  let best = -1;
  for (let depth = 0; ; depth++) {
    for (let i = ruleStart[node], end = ruleStart[node + 1]; i < end; i++) {
      const rule = ruleList[i];
      if (best >= 0 && rule >= best) break;
      if (kinds === null || kinds[rule] === 1 || accept[rule] === stamp) {
        best = rule;
        break;
      }
    }
    if (depth >= bits) return best;
    node = children[2 * node + ((bytes[depth >> 3] >> (7 - (depth & 7))) & 1)];
    if (node < 0) return best;
  }
}

/** Marks accept[rule] = stamp for every rule with a CIDR containing the address (all `bits` bits known). */
export function markMatchingRules(trie: CidrTrie, family: 4 | 6, bytes: Uint8Array, bits: number, accept: Int32Array, stamp: number): void {
  const { children, ruleStart, ruleList } = trie;
  let node = family === 4 ? IPV4_ROOT : IPV6_ROOT;
  for (let depth = 0; ; depth++) {
    for (let i = ruleStart[node], end = ruleStart[node + 1]; i < end; i++) accept[ruleList[i]] = stamp;
    if (depth >= bits) return;
    node = children[2 * node + ((bytes[depth >> 3] >> (7 - (depth & 7))) & 1)];
    if (node < 0) return;
  }
}

/**
 * The shortest scope, at least `scope`, that crosses the edge of no CIDR in
 * the trie: at least as long as every CIDR containing the address (bits past
 * the source read as zero), and long enough to leave out every CIDR that
 * lies inside the scope's network without containing the address.
 */
export function scopeAvoidingCidrs(trie: CidrTrie, family: 4 | 6, bytes: Uint8Array, scope: number): number {
  const { children, ruleStart } = trie;
  const length = family === 4 ? 32 : 128;
  let node = family === 4 ? IPV4_ROOT : IPV6_ROOT;
  let containing = 0;
  let deepestFork = -1;
  for (let depth = 0; ; depth++) {
    if (ruleStart[node + 1] > ruleStart[node]) containing = depth;
    if (depth >= length) break;
    const bit = (bytes[depth >> 3] >> (7 - (depth & 7))) & 1;
    // A subtree on the other side holds a CIDR that does not contain the address.
    if (children[2 * node + (bit ^ 1)] >= 0) deepestFork = depth;
    node = children[2 * node + bit];
    if (node < 0) break;
  }
  let result = scope > containing ? scope : containing;
  if (deepestFork >= scope && deepestFork + 1 > result) result = deepestFork + 1;
  return result;
}

/** The deepest CIDR containing the first `bits` bits of the address: its first rule and length; rule -1 when none. */
export function longestContaining(trie: CidrTrie, family: 4 | 6, bytes: Uint8Array, bits: number, out: { rule: number; length: number }): void {
  const { children, ruleStart, ruleList } = trie;
  let node = family === 4 ? IPV4_ROOT : IPV6_ROOT;
  out.rule = -1;
  out.length = 0;
  for (let depth = 0; ; depth++) {
    if (ruleStart[node + 1] > ruleStart[node]) {
      out.rule = ruleList[ruleStart[node]];
      out.length = depth;
    }
    if (depth >= bits) return;
    node = children[2 * node + ((bytes[depth >> 3] >> (7 - (depth & 7))) & 1)];
    if (node < 0) return;
  }
}
