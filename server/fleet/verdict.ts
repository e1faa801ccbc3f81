// One health verdict for the whole fleet (README "Running a fleet"): every
// instance publishes what its own probes see of each target it probes
// (observations.ts), and every instance runs this same pure function over the
// same observations, so all reach the same verdict. A target is down when
// the rule's share of the counting observers see it down; an observer whose
// heartbeat is stale, or that says it is cut off (its own probes all fail),
// does not count. Time comes in as `now`: nothing here reads a clock.

import { ruleText, type VerdictRule } from '../config/verdict-rule.ts';

export type { VerdictRule };

/** What one observer says of one target. */
export interface Observation {
  /** Instance id of the observer. */
  observer: string;
  /** Its PoP, for the evidence. */
  pop: string;
  target: string;
  state: 'up' | 'down' | 'unknown';
  /** ms since the epoch, when its probes last changed their mind. */
  since: number;
  reason: string;
  /** The observer considers itself cut off (its own probes all failing). */
  cutOff: boolean;
}

/** An instance's last heartbeat. */
export interface ObserverBeat {
  instance: string;
  pop: string;
  /** ms since the epoch */
  seenAt: number;
}

interface Excluded {
  pop: string;
  observer: string;
  why: 'cut off' | 'stale heartbeat' | 'no result yet';
}

export interface TargetVerdict {
  target: string;
  /** unknown: no observer counts (none probes it, all excluded). */
  state: 'up' | 'down' | 'unknown';
  rule: string;
  /** PoPs of the counting observers that see it down, and up. */
  down: string[];
  up: string[];
  excluded: Excluded[];
  /** One line: "down: seen down by fra, lhr; ams excluded (cut off)". */
  evidence: string;
}

interface VerdictInput {
  observations: Iterable<Observation>;
  /** Heartbeats by instance id. */
  observers: ReadonlyMap<string, ObserverBeat>;
  /** Rule per target id; targets absent use defaultRule. */
  rules?: ReadonlyMap<string, VerdictRule>;
  defaultRule: VerdictRule;
  now: number;
  /** A heartbeat older than this is stale. */
  staleMs: number;
}

/** True when `down` of `counting` observers make the target down under `rule`. */
export function isDown(rule: VerdictRule, down: number, counting: number): boolean {
  if (counting === 0) return false;
  switch (rule.kind) {
    case 'any': return down >= 1;
    case 'quorum': return down * 2 > counting;
    case 'all': return down === counting;
    case 'more_than_percent': return down * 100 > rule.percent * counting;
  }
}

/** The verdict of every target some observer reports on, in target order. */
export function computeVerdicts(input: VerdictInput): Map<string, TargetVerdict> {
  const byTarget = new Map<string, Observation[]>();
  for (const o of input.observations) {
    const list = byTarget.get(o.target) ?? [];
    list.push(o);
    byTarget.set(o.target, list);
  }
  const verdicts = new Map<string, TargetVerdict>();
  for (const target of [...byTarget.keys()].sort()) {
    verdicts.set(target, verdictOf(target, byTarget.get(target)!, input));
  }
  return verdicts;
}

function verdictOf(target: string, observations: Observation[], input: VerdictInput): TargetVerdict {
  const rule = input.rules?.get(target) ?? input.defaultRule;
  const down: string[] = [];
  const up: string[] = [];
  const excluded: Excluded[] = [];
  // Observers in a stable order, so every instance writes the same evidence.
  const sorted = [...observations].sort((a, b) => a.pop.localeCompare(b.pop) || a.observer.localeCompare(b.observer));
  for (const o of sorted) {
    const beat = input.observers.get(o.observer);
    if (beat === undefined || input.now - beat.seenAt > input.staleMs) excluded.push({ pop: o.pop, observer: o.observer, why: 'stale heartbeat' });
    else if (o.cutOff) excluded.push({ pop: o.pop, observer: o.observer, why: 'cut off' });
    else if (o.state === 'unknown') excluded.push({ pop: o.pop, observer: o.observer, why: 'no result yet' });
    else (o.state === 'down' ? down : up).push(o.pop);
  }
  const counting = down.length + up.length;
  const state = counting === 0 ? 'unknown' : isDown(rule, down.length, counting) ? 'down' : 'up';
  return { target, state, rule: ruleText(rule), down, up, excluded, evidence: evidenceText(state, down, up, excluded) };
}

function evidenceText(state: TargetVerdict['state'], down: string[], up: string[], excluded: Excluded[]): string {
  const parts: string[] = [];
  if (state === 'unknown') parts.push('no observer counts');
  const first = state === 'down' ? down : up;
  const second = state === 'down' ? up : down;
  if (first.length > 0) parts.push(`seen ${state === 'down' ? 'down' : 'up'} by ${first.join(', ')}`);
  if (second.length > 0) parts.push(`seen ${state === 'down' ? 'up' : 'down'} by ${second.join(', ')}`);
  for (const why of ['cut off', 'stale heartbeat', 'no result yet'] as const) {
    const pops = excluded.filter((e) => e.why === why).map((e) => e.pop);
    if (pops.length > 0) parts.push(`${pops.join(', ')} excluded (${why})`);
  }
  return `${state}: ${parts.join('; ')}`;
}
