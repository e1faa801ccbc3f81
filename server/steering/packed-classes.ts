// Decision classes as a handful of typed arrays on shared memory, for the
// DNS workers. At hundreds of PoPs a policy has tens of thousands of classes;
// as objects, posting a policy set to each worker cloned millions of them
// (seconds per reload, and a copy of each per worker). Packed, the post
// copies nothing, and a worker makes the object of a class the first time a
// query lands in it.

import type { CompiledPolicy, DecisionClass, PackedClasses } from './types.ts';

const packedOf = new WeakMap<DecisionClass[], PackedClasses>();

function shared<T extends Int32Array | Int16Array | Uint8Array>(Type: { new(buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number }, length: number): T {
  return new Type(new SharedArrayBuffer(Math.max(1, length) * Type.BYTES_PER_ELEMENT));
}

/** The classes packed (cached per classes array, so a reload packs only the policies that changed). */
export function packClasses(classes: DecisionClass[]): PackedClasses {
  const cached = packedOf.get(classes);
  if (cached) return cached;
  let tierCount = 0;
  let total = 0;
  for (const c of classes) {
    tierCount += c.tiers.length;
    for (const t of c.tiers) total += t.length;
  }
  const packed: PackedClasses = {
    count: classes.length,
    rule: shared(Int32Array, classes.length),
    servfail: shared(Uint8Array, classes.length),
    firstTier: shared(Int32Array, classes.length + 1),
    tierStart: shared(Int32Array, tierCount + 1),
    endpoints: shared(Int16Array, total),
  };
  let tier = 0;
  let at = 0;
  classes.forEach((c, i) => {
    packed.rule[i] = c.rule;
    packed.servfail[i] = c.servfail ? 1 : 0;
    packed.firstTier[i] = tier;
    for (const t of c.tiers) {
      packed.tierStart[tier++] = at;
      packed.endpoints.set(t, at);
      at += t.length;
    }
  });
  packed.firstTier[classes.length] = tier;
  packed.tierStart[tier] = at;
  packedOf.set(classes, packed);
  return packed;
}

/** How many classes the policy has, packed or not. */
export function classCount(policy: CompiledPolicy): number {
  return policy.packedClasses ? policy.packedClasses.count : policy.classes.length;
}

/** Class `c` of the policy; made from the packed form (once per thread) where the objects were left out. */
export function classAt(policy: CompiledPolicy, c: number): DecisionClass {
  const made = policy.classes[c];
  if (made !== undefined) return made;
  const packed = policy.packedClasses!;
  const tiers: Int16Array[] = [];
  for (let t = packed.firstTier[c]; t < packed.firstTier[c + 1]; t++) tiers.push(packed.endpoints.subarray(packed.tierStart[t], packed.tierStart[t + 1]));
  const cls: DecisionClass = { rule: packed.rule[c], tiers, servfail: packed.servfail[c] === 1 };
  policy.classes[c] = cls;
  return cls;
}

/** The policy as DNS workers get it: classes packed, no objects. */
export function forWorkers(policy: CompiledPolicy): CompiledPolicy {
  return { ...policy, classes: [], packedClasses: packClasses(policy.classes) };
}
