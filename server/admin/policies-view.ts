// The active policies as GET /v1/policies shows them: what was loaded (names,
// files, TTLs, endpoints with their addresses, rules with their pools and
// steps), in plain JSON, without the per-location tables.

import { wireToName } from '../dns/name.ts';
import { formatAddress } from '../lib/address.ts';
import { ALL_DOWN_FAIL_OPEN, ALL_DOWN_POOL, ENDPOINT_CNAME, WEIGHTED_RANDOM, type CompiledPolicy, type RulePlan } from '../steering/types.ts';

const WHEN_ALL_DOWN: Record<number, string> = { [ALL_DOWN_FAIL_OPEN]: 'fail_open', [ALL_DOWN_POOL]: 'last_resort_pool' };

function addressText(family: 4 | 6, bytes: Uint8Array): string {
  const padded = new Uint8Array(16);
  padded.set(bytes.subarray(0, 16));
  return formatAddress(family, padded);
}

function weightedMode(rule: RulePlan): 'random' | 'sticky' | null {
  const step = rule.steps.find((s) => s.kind === 'weighted');
  return step?.kind !== 'weighted' ? null : step.mode === WEIGHTED_RANDOM ? 'random' : 'sticky';
}

export function describePolicy(p: CompiledPolicy) {
  const idOf = (i: number): string => p.endpoints[i]?.id ?? `#${i}`;
  return {
    name: p.name,
    file: p.file,
    ttl: p.ttl,
    degraded_ttl: p.degradedTtl,
    ttl_from_health: p.ttlFromHealth,
    endpoints: p.endpoints.map((e) => ({
      id: e.id,
      pop: e.pop >= 0 ? e.id : null,
      weight: e.weight,
      ...(e.kind === ENDPOINT_CNAME
        ? { cname: wireToName(e.cname!) }
        : { ipv4: e.ipv4.map((a) => addressText(4, a)), ipv6: e.ipv6.map((a) => addressText(6, a)) }),
    })),
    rules: p.rules.map((r) => ({
      name: r.name,
      match: r.matchText,
      pools: r.tiers.map((tier) => tier.map(idOf)),
      steps: r.stepTexts,
      weighted: weightedMode(r),
      first: r.first,
    })),
    when_all_down: WHEN_ALL_DOWN[p.whenAllDown] ?? 'servfail',
    last_resort: Array.from(p.lastResort, idOf),
  };
}
