// Scope merging (gdnsd-style): at load time every trie edge learns the class
// shared by every address below it, or MIXED. A query then walks from the
// root and stops at the first uniform edge: that depth is the widest network
// that gets the same answer, which is the ECS scope to return.

import type { ClassResult, GeoIndex } from './types.ts';

export const MIXED = -1;

export function newClassResult(): ClassResult {
  return { class: MIXED, scopeLength: 0 };
}

/**
 * One policy's class for every edge of the shared GeoIP tree. Below the
 * frontier where a class becomes uniform nothing is ever read, but a dense
 * array indexed by node is faster to build and to walk than a renumbered
 * sparse trie (on GeoLite2-City most nodes sit above that frontier anyway),
 * so the saving is made on the element size instead: 16 bits per edge while
 * the policy has fewer than 65,535 classes.
 */
export interface ClassTrie {
  /** edges[2 * node + bit]: the class of everything below that edge, or `mixed`. */
  edges: Uint16Array | Int32Array;
  /** The value that marks a mixed edge in `edges`. */
  mixed: number;
  /** Class of the whole IPv6 / IPv4 space, or MIXED. */
  wholeIPv6: number;
  wholeIPv4: number;
  byteLength: number;
}

/**
 * The class of every address range for one policy, merged gdnsd-style:
 * classOfLocation gives each GeoIP location's class (>= 0); edges with no
 * data get `classOfUnknown`.
 */
export function buildClassTrie(index: GeoIndex, classOfLocation: Int32Array, classOfUnknown: number): ClassTrie {
  if (classOfUnknown < 0) throw new RangeError('classOfUnknown must be >= 0');
  const { children, nodeCount } = index;
  const classes = new Int32Array(2 * nodeCount);
  // Children almost always have higher node numbers than their parents (the
  // MaxMind writer numbers nodes parent first, and custom networks append), so
  // one pass from the last node to the first finishes children before parents.
  // The few edges that point back (the aliases of the IPv4 subtree) read their
  // target before it is finished: such nodes and their ancestors are marked
  // dirty on the way and recomputed afterwards, until the targets are stable.
  const dirty = new Uint8Array(nodeCount);
  const dirtyNodes: number[] = [];
  const targets: number[] = [];
  for (let node = nodeCount - 1; node >= 0; node--) {
    const left = children[2 * node];
    const right = children[2 * node + 1];
    let isDirty = 0;
    if (left >= 0) {
      if (left <= node) { targets.push(left); isDirty = 1; } else isDirty |= dirty[left];
    }
    if (right >= 0) {
      if (right <= node) { targets.push(right); isDirty = 1; } else isDirty |= dirty[right];
    }
    if (isDirty === 1) {
      dirty[node] = 1;
      dirtyNodes.push(node);
    }
    classes[2 * node] = edgeClass(classes, left, classOfLocation, classOfUnknown);
    classes[2 * node + 1] = edgeClass(classes, right, classOfLocation, classOfUnknown);
  }
  for (let again = targets.length > 0, passes = 0; again && passes <= dirtyNodes.length; passes++) {
    const before = targets.map((t) => nodeClass(classes, t));
    for (const node of dirtyNodes) {
      classes[2 * node] = edgeClass(classes, children[2 * node], classOfLocation, classOfUnknown);
      classes[2 * node + 1] = edgeClass(classes, children[2 * node + 1], classOfLocation, classOfUnknown);
    }
    again = targets.some((t, i) => nodeClass(classes, t) !== before[i]);
  }
  let maxClass = classOfUnknown;
  for (let i = 0; i < classOfLocation.length; i++) if (classOfLocation[i] > maxClass) maxClass = classOfLocation[i];
  const narrow = maxClass < 0xffff;
  const mixed = narrow ? 0xffff : MIXED;
  const edges = narrow ? new Uint16Array(new SharedArrayBuffer(2 * classes.length)) : new Int32Array(new SharedArrayBuffer(4 * classes.length));
  for (let i = 0; i < classes.length; i++) edges[i] = classes[i] === MIXED ? mixed : classes[i];
  return {
    edges, mixed,
    wholeIPv6: nodeClass(classes, index.root),
    wholeIPv4: nodeClass(classes, index.ipv4Root),
    byteLength: edges.byteLength,
  };
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
export function lookupClass(index: GeoIndex, trie: ClassTrie, family: 4 | 6, address: Uint8Array, maxBits: number, result: ClassResult): ClassResult {
  const whole = family === 4 ? trie.wholeIPv4 : trie.wholeIPv6;
  if (whole >= 0) {
    result.class = whole;
    result.scopeLength = 0;
    return result;
  }
  const children = index.children;
  const edges = trie.edges;
  const mixed = trie.mixed;
  const bits = family === 4 ? 32 : 128;
  let node = family === 4 ? index.ipv4Root : index.root;
  for (let depth = 0; depth < bits; depth++) {
    const bit = depth < maxBits ? (address[depth >> 3] >> (7 - (depth & 7))) & 1 : 0;
    const slot = 2 * node + bit;
    const c = edges[slot];
    if (c !== mixed) {
      result.class = c;
      result.scopeLength = depth + 1;
      return result;
    }
    node = children[slot];
  }
  result.class = MIXED;
  result.scopeLength = bits;
  return result;
}

/**
 * One policy's class and its ECS scope, read through the shared group trie
 * (buildClassTrie over the location groups, one per GeoIP index) and the
 * policy's class of each group (`classOfGroup`, made on first sight; group
 * count = addresses without data).
 *
 * The walk stops at the first edge whose every address is in one group: the
 * policy gives all of them one class, so that network is a sound scope, and
 * it is never narrower than the GeoIP network itself. Then, going back up the
 * walked path, a level is dropped from the scope while the sibling subtree is
 * also uniform and maps to the same class (merging the cheap part of what a
 * per-policy trie would merge, without one per policy).
 */
/** A policy's class per location group, made on demand (steering/lazy-classes.ts); `get(groupCount)` is the class of addresses without data. */
interface ClassOfGroup {
  get(group: number): number;
}

export function lookupGroupClass(index: GeoIndex, groupTrie: ClassTrie, classOfGroup: ClassOfGroup, family: 4 | 6, address: Uint8Array, maxBits: number, result: ClassResult): ClassResult {
  const wholeGroup = family === 4 ? groupTrie.wholeIPv4 : groupTrie.wholeIPv6;
  if (wholeGroup >= 0) {
    result.class = classOfGroup.get(wholeGroup);
    result.scopeLength = 0;
    return result;
  }
  const children = index.children;
  const edges = groupTrie.edges;
  const mixed = groupTrie.mixed;
  const bits = family === 4 ? 32 : 128;
  const path = walkedPath;
  let node = family === 4 ? index.ipv4Root : index.root;
  for (let depth = 0; depth < bits; depth++) {
    const bit = depth < maxBits ? (address[depth >> 3] >> (7 - (depth & 7))) & 1 : 0;
    const slot = 2 * node + bit;
    path[depth] = slot;
    const group = edges[slot];
    if (group !== mixed) {
      const cls = classOfGroup.get(group);
      let scope = depth + 1;
      while (scope > 0) {
        const siblingSlot = path[scope - 1] ^ 1;
        const sibling = edges[siblingSlot];
        if (sibling === mixed ? !subtreeHasClass(children, edges, mixed, classOfGroup, children[siblingSlot], cls) : classOfGroup.get(sibling) !== cls) break;
        scope--;
      }
      result.class = cls;
      result.scopeLength = scope;
      return result;
    }
    node = children[slot];
  }
  result.class = MIXED;
  result.scopeLength = bits;
  return result;
}

/** The edges of the current walk (one thread runs one lookup at a time). */
const walkedPath = new Int32Array(128);

/**
 * Nodes a lookup may visit to prove that a mixed sibling subtree (several
 * groups) still gives one class: enough for the small subtrees near the
 * leaves, where most merging happens, bounded so a lookup stays cheap. An
 * unproven subtree only leaves the scope narrower, never wrong.
 */
const SIBLING_BUDGET = 48;
const pending = new Int32Array(SIBLING_BUDGET + 2);

function subtreeHasClass(children: Int32Array, edges: Uint16Array | Int32Array, mixed: number, classOfGroup: ClassOfGroup, root: number, cls: number): boolean {
  let top = 0;
  let visited = 0;
  pending[top++] = root;
  while (top > 0) {
    if (++visited > SIBLING_BUDGET) return false;
    const node = pending[--top];
    for (let bit = 0; bit < 2; bit++) {
      const slot = 2 * node + bit;
      const group = edges[slot];
      if (group !== mixed) {
        if (classOfGroup.get(group) !== cls) return false;
      } else {
        if (top >= pending.length) return false;
        pending[top++] = children[slot];
      }
    }
  }
  return true;
}
