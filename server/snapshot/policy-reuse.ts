// Posting a new policy set to the DNS workers without copying the policies
// they already hold. A reload of one policy file of a thousand changes one
// compiled policy; the others come back from the compile cache with the same
// compile id. The main thread posts those as a reference (id, plus the
// position, name and file, which may change), and each worker takes its own
// copy from the set it serves. Structured cloning a thousand policies to
// each worker was a large part of a one-policy reload at 300/1,000, and a
// reused policy keeps the classes the worker made for it (lazy-classes.ts).
//
// Sound because messages to one worker arrive in order: the set a worker
// serves when a message arrives is the set the main thread posted before it.

import type { CompiledPolicy } from '../steering/types.ts';
import type { DnsSnapshot } from './types.ts';
import { zonesReceived, zonesToPost } from './zone-reuse.ts';

interface ReusedPolicy {
  reuse: string;
  index: number;
  name: string;
  file: string;
}

/** `policies` with every one whose compile id is in `held` replaced by a reference. */
export function policiesToPost(policies: CompiledPolicy[], held: ReadonlySet<string>): CompiledPolicy[] {
  return policies.map((p): CompiledPolicy => {
    if (!held.has(p.compileId)) return p;
    const reused: ReusedPolicy = { reuse: p.compileId, index: p.index, name: p.name, file: p.file };
    return reused as unknown as CompiledPolicy;
  });
}

/** Posted policies with every reference replaced by the receiver's own copy from `held` (by compile id); throws on a reference it lacks. */
export function policiesReceived(policies: CompiledPolicy[], held: ReadonlyMap<string, CompiledPolicy>): CompiledPolicy[] {
  return policies.map((p) => {
    const ref = p as unknown as Partial<ReusedPolicy>;
    if (typeof ref.reuse !== 'string') return p;
    const own = held.get(ref.reuse);
    if (own === undefined) throw new Error(`snapshot refers to policy compile ${ref.reuse}, which this thread does not hold`);
    return { ...own, index: ref.index!, name: ref.name!, file: ref.file! };
  });
}

/** The snapshot to post, given the one the workers already serve (null: none, post everything); unchanged names and zones go by reference too (zone-reuse.ts). */
export function snapshotToPost(snapshot: DnsSnapshot, serving: DnsSnapshot | null): DnsSnapshot {
  return zonesToPost(policiesReferenced(snapshot, serving), serving?.zonesKey);
}

function policiesReferenced(snapshot: DnsSnapshot, serving: DnsSnapshot | null): DnsSnapshot {
  const steering = snapshot.steering;
  if (!steering || !serving?.steering) return snapshot;
  const policies = policiesToPost(steering.policies, new Set(serving.steering.policies.map((p) => p.compileId)));
  return Object.freeze({ ...snapshot, steering: { ...steering, policies } });
}

/** In a worker: the posted snapshot with every reference (policies, names and zones) replaced by the worker's own copy from `serving`. */
export function snapshotReceived(posted: DnsSnapshot, serving: DnsSnapshot | null): DnsSnapshot {
  return policiesResolved(zonesReceived(posted, serving), serving);
}

function policiesResolved(posted: DnsSnapshot, serving: DnsSnapshot | null): DnsSnapshot {
  const steering = posted.steering;
  if (!steering || !steering.policies.some((p) => typeof (p as unknown as Partial<ReusedPolicy>).reuse === 'string')) return posted;
  const held = new Map((serving?.steering?.policies ?? []).map((p) => [p.compileId, p]));
  return Object.freeze({ ...posted, steering: { ...steering, policies: policiesReceived(steering.policies, held) } });
}
