// Scope merging (gdnsd-style): at load time every trie edge learns the class
// shared by every address below it, or MIXED. A query then walks from the
// root and stops at the first uniform edge: that depth is the widest network
// that gets the same answer, which is the ECS scope to return.

import type { ClassResult, GeoIndex } from './types.ts';

export const MIXED = -1;
const IPV6_ROOT_SLOT = 2;
const IPV4_ROOT_SLOT = 1;

export function newClassResult(): ClassResult {
  return { class: MIXED, scopeLength: 0 };
}

/**
 * Class of every edge: classTrie[2 * node + bit] is the class of everything
 * below that edge (>= 0) or MIXED. The last two entries hold the class of the
 * whole IPv6 space and of the whole IPv4 space. Classes must be >= 0; edges
 * with no data get `classOfUnknown`.
 */
export function buildClassTrie(index: GeoIndex, classOfLocation: Int32Array, classOfUnknown: number): Int32Array {
  if (classOfUnknown < 0) throw new RangeError('classOfUnknown must be >= 0');
  const { children, nodeCount } = index;
  const classes = new Int32Array(new SharedArrayBuffer(4 * (2 * nodeCount + 2)));
  const done = new Uint8Array(nodeCount);
  const stack: number[] = [index.root, index.ipv4Root];
  // Post-order over a DAG: a node is finished once both children are.
  while (stack.length > 0) {
    const node = stack[stack.length - 1];
    if (done[node] === 1) {
      stack.pop();
      continue;
    }
    const left = children[2 * node];
    const right = children[2 * node + 1];
    let waiting = false;
    if (left >= 0 && done[left] === 0) {
      stack.push(left);
      waiting = true;
    }
    if (right >= 0 && done[right] === 0) {
      stack.push(right);
      waiting = true;
    }
    if (waiting) continue;
    classes[2 * node] = edgeClass(classes, left, classOfLocation, classOfUnknown);
    classes[2 * node + 1] = edgeClass(classes, right, classOfLocation, classOfUnknown);
    done[node] = 1;
    stack.pop();
  }
  classes[classes.length - IPV6_ROOT_SLOT] = nodeClass(classes, index.root);
  classes[classes.length - IPV4_ROOT_SLOT] = nodeClass(classes, index.ipv4Root);
  return classes;
}

function nodeClass(classes: Int32Array, node: number): number {
  const left = classes[2 * node];
  return left === classes[2 * node + 1] ? left : MIXED;
}

function edgeClass(classes: Int32Array, edge: number, classOfLocation: Int32Array, classOfUnknown: number): number {
  if (edge >= 0) return nodeClass(classes, edge);
  if (edge === -1) return classOfUnknown;
  const cls = classOfLocation[-edge - 2];
  if (!(cls >= 0)) throw new RangeError(`location ${-edge - 2} has no class`);
  return cls;
}

/**
 * The class of `address` and the widest prefix (relative to the family)
 * whose every address has it. Bits at and after `maxBits` are read as zero;
 * if the answer still differs inside the source prefix, the walk goes on
 * and the scope comes out longer than maxBits, as RFC 7871 allows.
 */
export function lookupClass(index: GeoIndex, classTrie: Int32Array, family: 4 | 6, address: Uint8Array, maxBits: number, result: ClassResult): ClassResult {
  const children = index.children;
  const wholeSpace = classTrie[classTrie.length - (family === 4 ? IPV4_ROOT_SLOT : IPV6_ROOT_SLOT)];
  if (wholeSpace >= 0) {
    result.class = wholeSpace;
    result.scopeLength = 0;
    return result;
  }
  const bits = family === 4 ? 32 : 128;
  let node = family === 4 ? index.ipv4Root : index.root;
  for (let depth = 0; depth < bits; depth++) {
    const bit = depth < maxBits ? (address[depth >> 3] >> (7 - (depth & 7))) & 1 : 0;
    const slot = 2 * node + bit;
    const cls = classTrie[slot];
    if (cls >= 0) {
      result.class = cls;
      result.scopeLength = depth + 1;
      return result;
    }
    node = children[slot];
  }
  result.class = MIXED;
  result.scopeLength = bits;
  return result;
}
