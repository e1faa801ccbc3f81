// The RRsets a steered name can answer, signed ahead. Health, weights and
// load only choose among endpoints written in the policy, so the answer
// space is finite: for `first: N` every combination of up to N address
// endpoints, for rules without it every combination of the endpoints (the
// healthy subset can be any of them), and each CNAME endpoint's CNAME. The
// engine finds these signatures by the answer's canonical RRset when it
// builds a steered answer for DO=1 (engine.ts).

import { CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME } from '../dns/constants.ts';
import { lowerWire } from '../dns/name.ts';
import { ENDPOINT_CNAME, type CompiledPolicy } from '../steering/types.ts';
import type { ZoneSigner } from './sign.ts';

/** Past this many answer sets per policy, compile refuses (a `first: N` step keeps it small). */
const MAX_STEERED_SETS = 20000;

export class SteeredSetsError extends Error {}

/** The TTL steered answers are signed with: the largest they can be served with. */
export function originalTtlOf(policy: CompiledPolicy): number {
  return Math.max(policy.ttl, policy.degradedTtl, policy.ttlFromHealth?.max ?? 0);
}

/** The largest answer size a policy's rules allow: the smallest `first: N` only if every rule has one. */
function largestSet(policy: CompiledPolicy, endpoints: number): number {
  let largest = 0;
  for (const rule of policy.rules) {
    const first = rule.steps.find((s) => s.kind === 'first');
    largest = Math.max(largest, first && first.kind === 'first' ? first.count : endpoints);
  }
  return Math.min(largest || endpoints, endpoints);
}

/** n choose k, summed for k = 1..max, capped above `cap`. */
function combinations(n: number, max: number, cap: number): number {
  let total = 0;
  let c = 1;
  for (let k = 1; k <= max; k++) {
    c = (c * (n - k + 1)) / k;
    total += c;
    if (total > cap) return total;
  }
  return total;
}

/** Signs every answer RRset of `policy` at `owner`; returns how many sets it covered. */
export function signSteeredSets(policy: CompiledPolicy, owner: Uint8Array, signer: ZoneSigner): number {
  const ttl = originalTtlOf(policy);
  const key = lowerWire(owner);
  let sets = 0;
  for (const e of policy.endpoints) {
    if (e.kind !== ENDPOINT_CNAME || e.cname === null) continue;
    signer.sign({ owner: key, type: TYPE_CNAME, klass: CLASS_IN, ttl, rdatas: [lowerWire(e.cname)] });
    sets++;
  }
  const addressed = policy.endpoints.filter((e) => e.kind !== ENDPOINT_CNAME);
  const k = largestSet(policy, addressed.length);
  const total = combinations(addressed.length, k, MAX_STEERED_SETS);
  if (total > MAX_STEERED_SETS) {
    throw new SteeredSetsError(`policy ${policy.name} can answer ${Math.round(total)} endpoint sets, more than ${MAX_STEERED_SETS} to sign; add a "first: N" step to its rules`);
  }
  const chosen: number[] = [];
  const visit = (from: number): void => {
    if (chosen.length > 0) {
      for (const [type, pick] of [[TYPE_A, 'ipv4'], [TYPE_AAAA, 'ipv6']] as const) {
        const rdatas = chosen.flatMap((i) => addressed[i][pick]);
        if (rdatas.length > 0) signer.sign({ owner: key, type, klass: CLASS_IN, ttl, rdatas });
      }
      sets++;
    }
    if (chosen.length === k) return;
    for (let i = from; i < addressed.length; i++) {
      chosen.push(i);
      visit(i + 1);
      chosen.pop();
    }
  };
  visit(0);
  return sets;
}
