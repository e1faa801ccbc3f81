// One health verdict from many observers (issue 17, item 2), as pure
// functions: every instance runs the same code over the same observations
// and so reaches the same verdict. Not wired to the health service yet:
// the next slice publishes observations and heartbeats to the fleet and
// feeds this verdict back; this file is what they will agree on.
//
// Probe sharding by rendezvous (highest random weight) hashing: each target
// is probed by the k live observers with the highest hash of (observer,
// target), plus the target's own PoP. Adding or removing an observer moves
// only the targets it wins or held, never the rest.

import { fnv1aString, mix32 } from '../lib/hash.ts';

/** How many live observers must see a target down for the fleet to call it down. */
export type VerdictRule =
  | { kind: 'any' }
  | { kind: 'quorum' }
  | { kind: 'all' }
  | { kind: 'more_than_percent'; percent: number };

export interface Observation {
  observer: string;
  target: string;
  state: 'up' | 'down';
  /** ms since the epoch */
  since: number;
  reason: string;
  /** The observer considers itself cut off (most of its probes fail at once). */
  cutOff: boolean;
}

export interface Verdict {
  target: string;
  state: 'up' | 'down';
  /** Live, not cut-off observers that see it down, and up. */
  downBy: string[];
  upBy: string[];
  /** Observers left out, with why. */
  excluded: Array<{ observer: string; why: 'cut off' | 'stale' }>;
  /** "down: seen down by fra, lhr; ams excluded (cut off)". */
  evidence: string;
}

/** The smallest number of down observations, out of `counted`, that makes a target down. */
export function downThreshold(rule: VerdictRule, counted: number): number {
  switch (rule.kind) {
    case 'any': return 1;
    case 'quorum': return Math.floor(counted / 2) + 1;
    case 'all': return Math.max(1, counted);
    case 'more_than_percent': return Math.max(1, Math.floor((counted * rule.percent) / 100) + 1);
  }
}

/**
 * The verdict on one target. `live` says whether an observer's heartbeat is
 * recent. With no observer left to count, the target keeps `previous` (no
 * evidence is no news, not an outage).
 */
export function verdictOf(target: string, observations: readonly Observation[], rule: VerdictRule, live: (observer: string) => boolean, previous: 'up' | 'down' = 'up'): Verdict {
  const downBy: string[] = [];
  const upBy: string[] = [];
  const excluded: Verdict['excluded'] = [];
  for (const o of observations) {
    if (o.target !== target) continue;
    if (!live(o.observer)) excluded.push({ observer: o.observer, why: 'stale' });
    else if (o.cutOff) excluded.push({ observer: o.observer, why: 'cut off' });
    else (o.state === 'down' ? downBy : upBy).push(o.observer);
  }
  downBy.sort();
  upBy.sort();
  excluded.sort((a, b) => a.observer.localeCompare(b.observer));
  const counted = downBy.length + upBy.length;
  const state = counted === 0 ? previous : downBy.length >= downThreshold(rule, counted) ? 'down' : 'up';
  return { target, state, downBy, upBy, excluded, evidence: evidenceText(state, downBy, upBy, excluded, counted === 0) };
}

function evidenceText(state: 'up' | 'down', downBy: string[], upBy: string[], excluded: Verdict['excluded'], noEvidence: boolean): string {
  const parts: string[] = [];
  if (noEvidence) parts.push('no live observer; last verdict kept');
  if (downBy.length > 0) parts.push(`seen down by ${downBy.join(', ')}`);
  if (upBy.length > 0) parts.push(`seen up by ${upBy.join(', ')}`);
  const excludedText = excluded.map((e) => `${e.observer} excluded (${e.why})`).join(', ');
  return `${state}: ${parts.join('; ')}${excludedText ? `; ${excludedText}` : ''}`;
}

/** Rendezvous weight of an observer for a target: the same number on every instance. */
export function rendezvousWeight(observer: string, target: string): number {
  return mix32(fnv1aString(`${observer}\u0000${target}`)) >>> 0;
}

/**
 * The observers that probe `target`: the k live observers of highest
 * weight, plus `ownPop` (the target's own PoP) when it is among them.
 * Sorted by name, so every instance lists them alike.
 */
export function probersOf(target: string, observers: readonly string[], k: number, ownPop: string | null): string[] {
  const ranked = [...new Set(observers)]
    .map((observer) => ({ observer, weight: rendezvousWeight(observer, target) }))
    .sort((a, b) => b.weight - a.weight || a.observer.localeCompare(b.observer));
  const chosen = new Set(ranked.slice(0, Math.max(0, k)).map((r) => r.observer));
  if (ownPop !== null && observers.includes(ownPop)) chosen.add(ownPop);
  return [...chosen].sort();
}
