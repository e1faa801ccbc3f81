// Probe sharding: which instances probe which target. Each target is probed
// by the k live instances with the highest rendezvous (highest random
// weight) score for it, plus every instance at the target's own PoP. Every
// instance computes the same assignment from the same heartbeats, and an
// instance joining or leaving moves only the targets it wins or held.

import { createHash } from 'node:crypto';

export interface Member {
  instance: string;
  pop: string;
}

interface ShardedTarget {
  id: string;
  /** PoPs whose health this target decides (its own PoPs). */
  pops: readonly string[];
}

/** The score of `candidate` for `key`: the first 48 bits of SHA-256(key, candidate). */
function rendezvousScore(key: string, candidate: string): number {
  return createHash('sha256').update(key).update('\0').update(candidate).digest().readUIntBE(0, 6);
}

/** The `k` candidates with the highest scores for `key`, best first (ties by id). */
export function rendezvous(key: string, candidates: readonly string[], k: number): string[] {
  return candidates
    .map((c) => ({ c, score: rendezvousScore(key, c) }))
    .sort((a, b) => b.score - a.score || a.c.localeCompare(b.c))
    .slice(0, Math.max(0, k))
    .map((x) => x.c);
}

/** Instance ids that probe each target: k by rendezvous, plus the target's own PoPs' instances. */
export function assignProbers(targets: readonly ShardedTarget[], members: readonly Member[], k: number): Map<string, Set<string>> {
  const ids = [...new Set(members.map((m) => m.instance))];
  const assignment = new Map<string, Set<string>>();
  for (const target of targets) {
    const probers = new Set(rendezvous(target.id, ids, k));
    for (const m of members) if (target.pops.includes(m.pop)) probers.add(m.instance);
    assignment.set(target.id, probers);
  }
  return assignment;
}
