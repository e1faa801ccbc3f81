// The fleet's health verdict: the same observations give the same verdict,
// whatever order they arrive in; each rule counts only live observers that
// are not cut off; the evidence names who saw what and who was left out.
// Time is an input (a manual clock's now), never the system clock.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  computeVerdicts, isDown, type Observation, type ObserverBeat, type VerdictRule,
} from '../../../server/fleet/verdict.ts';
import { parseVerdictRule, ruleText } from '../../../server/config/verdict-rule.ts';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { parseYamlText } from '../../../server/config/yaml-source.ts';
import { parseProbesConfig } from '../../../server/health/config.ts';
import { ManualClock } from '../../helpers/manual-clock.ts';

const clock = new ManualClock();
const STALE_MS = 6000;

function beats(...pops: string[]): Map<string, ObserverBeat> {
  return new Map(pops.map((pop) => [`i-${pop}`, { instance: `i-${pop}`, pop, seenAt: clock.now() }]));
}
function seen(pop: string, state: Observation['state'], cutOff = false, target = 'lhr-http'): Observation {
  return { observer: `i-${pop}`, pop, target, state, since: clock.now(), reason: state === 'down' ? 'connection refused' : '', cutOff };
}
function verdict(observations: Observation[], observers: Map<string, ObserverBeat>, rule: VerdictRule = { kind: 'quorum' }) {
  return computeVerdicts({ observations, observers, defaultRule: rule, now: clock.now(), staleMs: STALE_MS }).get('lhr-http')!;
}

test('the rules: any, quorum (a strict majority), all, more_than_percent', () => {
  assert.equal(isDown({ kind: 'any' }, 1, 3), true);
  assert.equal(isDown({ kind: 'any' }, 0, 3), false);
  assert.equal(isDown({ kind: 'quorum' }, 2, 3), true);
  assert.equal(isDown({ kind: 'quorum' }, 1, 2), false);
  assert.equal(isDown({ kind: 'quorum' }, 2, 4), false);
  assert.equal(isDown({ kind: 'all' }, 2, 3), false);
  assert.equal(isDown({ kind: 'all' }, 3, 3), true);
  assert.equal(isDown({ kind: 'more_than_percent', percent: 50 }, 2, 4), false);
  assert.equal(isDown({ kind: 'more_than_percent', percent: 50 }, 3, 4), true);
  assert.equal(isDown({ kind: 'more_than_percent', percent: 0 }, 1, 4), true);
  assert.equal(isDown({ kind: 'any' }, 0, 0), false, 'no observer: never down');
});

test('down when the rule\'s share of live observers see it down, with the evidence', () => {
  const observers = beats('ams', 'fra', 'lhr');
  const v = verdict([seen('lhr', 'down'), seen('fra', 'down'), seen('ams', 'up')], observers);
  assert.equal(v.state, 'down');
  assert.deepEqual(v.down, ['fra', 'lhr']);
  assert.deepEqual(v.up, ['ams']);
  assert.equal(v.evidence, 'down: seen down by fra, lhr; seen up by ams');
  assert.equal(verdict([seen('lhr', 'down'), seen('fra', 'up'), seen('ams', 'up')], observers).state, 'up');
  assert.equal(verdict([seen('lhr', 'down'), seen('fra', 'up'), seen('ams', 'up')], observers, { kind: 'any' }).state, 'down');
  assert.equal(verdict([seen('lhr', 'down'), seen('fra', 'down'), seen('ams', 'up')], observers, { kind: 'all' }).state, 'up');
});

test('an observer that says it is cut off does not count: no failover because of it', () => {
  const observers = beats('ams', 'fra', 'lhr');
  const v = verdict([seen('ams', 'down', true), seen('fra', 'up'), seen('lhr', 'up')], observers, { kind: 'any' });
  assert.equal(v.state, 'up');
  assert.deepEqual(v.excluded, [{ pop: 'ams', observer: 'i-ams', why: 'cut off' }]);
  assert.equal(v.evidence, 'up: seen up by fra, lhr; ams excluded (cut off)');
  const both = verdict([seen('ams', 'down', true), seen('fra', 'down'), seen('lhr', 'down')], observers);
  assert.equal(both.evidence, 'down: seen down by fra, lhr; ams excluded (cut off)');
});

test('an observer whose heartbeat is stale, or unknown, does not count; none left is unknown', () => {
  const observers = beats('ams', 'fra', 'lhr');
  clock.advanceTo(clock.now() + STALE_MS);
  observers.set('i-lhr', { instance: 'i-lhr', pop: 'lhr', seenAt: clock.now() });
  const gone = seen('ghost', 'down');
  const v = verdict([seen('ams', 'down'), seen('fra', 'down'), seen('lhr', 'up'), gone], observers);
  assert.equal(v.state, 'down', 'exactly STALE_MS old still counts');
  clock.advanceTo(clock.now() + 1);
  const later = verdict([seen('ams', 'down'), seen('fra', 'down'), seen('lhr', 'up'), gone], observers);
  assert.equal(later.state, 'up');
  assert.equal(later.evidence, 'up: seen up by lhr; ams, fra, ghost excluded (stale heartbeat)');
  const none = verdict([seen('ams', 'down'), seen('lhr', 'unknown')], observers);
  assert.equal(none.state, 'unknown');
  assert.equal(none.evidence, 'unknown: no observer counts; ams excluded (stale heartbeat); lhr excluded (no result yet)');
});

test('the same observations in any order give the same verdicts; rules per target win over the default', () => {
  const observers = beats('ams', 'fra', 'lhr');
  const list = [seen('lhr', 'down'), seen('fra', 'up'), seen('ams', 'up'), seen('ams', 'down', false, 'ams-http'), seen('fra', 'up', false, 'ams-http')];
  const rules = new Map<string, VerdictRule>([['ams-http', { kind: 'any' }]]);
  const a = computeVerdicts({ observations: list, observers, rules, defaultRule: { kind: 'quorum' }, now: clock.now(), staleMs: STALE_MS });
  const b = computeVerdicts({ observations: [...list].reverse(), observers, rules, defaultRule: { kind: 'quorum' }, now: clock.now(), staleMs: STALE_MS });
  assert.deepEqual([...a], [...b]);
  assert.deepEqual([...a.keys()], ['ams-http', 'lhr-http']);
  assert.equal(a.get('ams-http')!.state, 'down');
  assert.equal(a.get('ams-http')!.rule, 'any');
  assert.equal(a.get('lhr-http')!.state, 'up');
});

test('rules are read from text or YAML, and anything else is a clear error', () => {
  assert.deepEqual(parseVerdictRule('any'), { kind: 'any' });
  assert.deepEqual(parseVerdictRule(' all '), { kind: 'all' });
  assert.deepEqual(parseVerdictRule('more_than_percent: 60'), { kind: 'more_than_percent', percent: 60 });
  assert.deepEqual(parseVerdictRule('more_than_percent:0'), { kind: 'more_than_percent', percent: 0 });
  assert.deepEqual(parseVerdictRule({ more_than_percent: 33 }), { kind: 'more_than_percent', percent: 33 });
  assert.equal(ruleText({ kind: 'more_than_percent', percent: 33 }), 'more_than_percent: 33');
  for (const bad of ['most', 'more_than_percent: 100', 'more_than_percent: 2.5', 'more_than_percent', { more_than_percent: '50' }, { quorum: 1 }, 3, null]) {
    const r = parseVerdictRule(bad);
    assert.equal(typeof r, 'string', JSON.stringify(bad));
    assert.match(r as string, /expected any, quorum, all or more_than_percent: N/);
  }
});

test('a target\'s own rule in probes.yaml is read, and a wrong one is refused with its line', () => {
  const yaml = (verdict: string): string => `targets:\n  lhr-edge: { kind: tcp, host: 127.0.0.1, port: 80, verdict: ${verdict} }\npops:\n  lhr: { probes: [lhr-edge] }\n`;
  const rule = (verdict: string) => parseProbesConfig(parseYamlText('probes.yaml', yaml(verdict)), ['lhr']).targets[0].verdict;
  assert.deepEqual(rule('all'), { kind: 'all' });
  assert.deepEqual(rule('{ more_than_percent: 75 }'), { kind: 'more_than_percent', percent: 75 });
  assert.deepEqual(rule('"more_than_percent: 10"'), { kind: 'more_than_percent', percent: 10 });
  for (const bad of ['most', '{ more_than_percent: 100 }', '{ quorum: 2 }']) {
    assert.throws(() => rule(bad), (err: unknown) => err instanceof ConfigErrors && err.errors.some((e) => e.code === 'POPSTEER_ERR_PROBES_SCHEMA' && /verdict/.test(e.format()) && /:2:/.test(e.format())), bad);
  }
});
