// A hash table of wire names with chaining. Built on the slow path; probed on
// the fast path with the suffix hashes that the query parser computes, so a
// lookup costs no allocation.

import { bytesEqual } from '../dns/name.ts';
import type { NameNode, NameTable } from './types.ts';

export function createNameTable(expectedSize: number): NameTable {
  let capacity = 16;
  while (capacity < expectedSize * 2) capacity *= 2;
  return { buckets: new Array<NameNode | null>(capacity).fill(null), mask: capacity - 1, size: 0 };
}

export function insertName(table: NameTable, node: NameNode): void {
  const index = node.hash & table.mask;
  node.next = table.buckets[index];
  table.buckets[index] = node;
  table.size++;
}

/** Finds the node whose key equals `key[start .. start+length)`. */
export function findName(table: NameTable, hash: number, key: Uint8Array, start: number, length: number): NameNode | null {
  let node = table.buckets[hash & table.mask];
  while (node !== null) {
    if (node.hash === hash && node.key.length === length && bytesEqual(node.key, 0, key, start, length)) return node;
    node = node.next;
  }
  return null;
}
