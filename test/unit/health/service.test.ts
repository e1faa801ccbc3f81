import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { HealthInputError } from '../../../server/health/overrides.ts';
import type { HealthService, ProbeEvent, TransitionEvent } from '../../../server/health/service.ts';
import type { ProbeOutcome, ProbeTransport } from '../../../server/health/transports.ts';
import { healthCutOff, healthEpoch, readHealth } from '../../../server/health/table.ts';
import { ManualClock } from '../../helpers/manual-clock.ts';
import { driveScripted, makeService, nextEvent, scriptedTransport, tempStateFile } from './helpers.ts';

// Short intervals keep these tests fast; the logic does not depend on scale.
const FAST = 'defaults: { interval: 40ms, timeout: 20ms, fall: 2, rise: 3 }\n';

test('rise/fall hysteresis: down on exactly the fall-th failure, up on exactly the rise-th success', async () => {
  const up = new Map([['a', true]]);
  const { service, view } = makeService(`${FAST}targets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport((t) => up.get(t.id)!));
  const results: ProbeEvent[] = [];
  service.on('probe', (p) => results.push(p));
  service.start();
  try {
    await nextEvent(service, 'probe');
    up.set('a', false);
    const failuresBefore = results.filter((r) => !r.ok).length;
    const [down] = await nextEvent(service, 'transition');
    assert.deepEqual([down.subject, down.target, down.from, down.to], ['ams', 'a', 'up', 'down']);
    assert.equal(results.filter((r) => !r.ok).length - failuresBefore, 2, 'fall = 2 failures in a row');
    assert.equal(readHealth(view, 0), false);
    up.set('a', true);
    const successesBefore = results.filter((r) => r.ok).length;
    const [back] = await nextEvent(service, 'transition');
    assert.equal(back.to, 'up');
    assert.equal(results.filter((r) => r.ok).length - successesBefore, 3, 'rise = 3 successes in a row');
    assert.equal(readHealth(view, 0), true);
  } finally {
    service.stop();
  }
});

test('a PoP is up while its quorum of probes is up, down below it', async () => {
  const up = new Map([['a', true], ['b', true], ['c', true]]);
  const yaml = `${FAST}targets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\n  b: { kind: tcp, host: 127.0.0.1, port: 2 }\n  c: { kind: tcp, host: 127.0.0.1, port: 3 }\n`
    + 'cut_off: { enabled: false }\npops:\n  ams: { probes: [a, b, c], quorum: 2 }\n  fra: { probes: [a] }\n';
  const { service, view } = makeService(yaml, ['ams', 'fra'], scriptedTransport((t) => up.get(t.id)!));
  service.start();
  try {
    up.set('c', false);
    const [targetDown] = await nextEvent(service, 'target');
    assert.equal(targetDown.target, 'c');
    assert.equal(readHealth(view, 0), true, 'two of three still meet quorum 2');
    up.set('b', false);
    const [ams] = await nextEvent(service, 'transition');
    assert.deepEqual([ams.subject, ams.to], ['ams', 'down']);
    assert.equal(readHealth(view, 1), true, 'fra depends on a only');
  } finally {
    service.stop();
  }
});

test('overrides win over probes, show in status, persist atomically and survive a restart', async () => {
  const up = new Map([['a', true], ['b', false]]);
  const yaml = `${FAST}cut_off: { enabled: false }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\n  b: { kind: tcp, host: 127.0.0.1, port: 2 }\npops:\n  ams: { probes: [a] }\n  fra: { probes: [b] }\n`;
  const first = makeService(yaml, ['ams', 'fra'], scriptedTransport((t) => up.get(t.id)!));
  first.service.start();
  try {
    const [fraDown] = await nextEvent(first.service, 'transition');
    assert.deepEqual([fraDown.subject, fraDown.to], ['fra', 'down']);
    const epoch = healthEpoch(first.view);
    const status = first.service.setOverride('ams', 'drain', 'maintenance window', null);
    assert.equal(status.state, 'down');
    assert.equal(status.probeState, 'up');
    assert.equal(status.override?.kind, 'drain');
    assert.equal(readHealth(first.view, 0), false);
    assert.ok(healthEpoch(first.view) > epoch, 'an effective change bumps the epoch');
    first.service.setOverride('fra', 'force-up', 'probe path is broken, PoP is fine', null);
    assert.equal(readHealth(first.view, 1), true);
    // Probes keep running and do not undo the overrides.
    await nextEvent(first.service, 'probe');
    await nextEvent(first.service, 'probe');
    assert.equal(readHealth(first.view, 0), false);
    assert.equal(readHealth(first.view, 1), true);
  } finally {
    first.service.stop();
  }
  const stored = JSON.parse(readFileSync(first.stateFile, 'utf8'));
  assert.deepEqual(Object.keys(stored.overrides).sort(), ['ams', 'fra']);
  assert.deepEqual(readdirSync(dirname(first.stateFile)).filter((name) => name.endsWith('.tmp')), [], 'no temporary file left behind');

  const second = makeService(yaml, ['ams', 'fra'], scriptedTransport((t) => up.get(t.id)!), { stateFile: first.stateFile });
  assert.equal(readHealth(second.view, 0), false, 'restored before the first probe');
  assert.equal(second.service.status().subjects[0].override?.reason, 'maintenance window');
  second.service.setOverride('ams', 'undrain', 'maintenance done', null);
  assert.equal(readHealth(second.view, 0), true);
  assert.equal(second.service.status().subjects[0].override, null);
  assert.ok(second.logs.lines.some((l) => l.msg === 'health override restored' && l.subject === 'ams'));
});

test('an override with an expiry lapses by itself and the probes decide again', async () => {
  const { service, view } = makeService(`${FAST}targets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => true));
  service.start();
  try {
    service.setOverride('ams', 'force-down', 'short test', Date.now() + 150);
    assert.equal(readHealth(view, 0), false);
    const remaining = service.secondsUntilPossibleChange('ams');
    assert.ok(remaining > 0 && remaining <= 0.15, `TTL hint follows the expiry, got ${remaining}`);
    const [back] = await nextEvent(service, 'transition');
    assert.deepEqual([back.to, back.reason], ['up', 'override expired']);
    assert.equal(readHealth(view, 0), true);
  } finally {
    service.stop();
  }
});

test('invalid overrides are refused with a code and change nothing', () => {
  const { service, view, stateFile } = makeService('pops: {}\n', ['ams'], scriptedTransport(() => true));
  const refused = (fn: () => unknown, code: string): void => assert.throws(fn, (err: unknown) => err instanceof HealthInputError && err.code === code);
  refused(() => service.setOverride('nowhere', 'drain', 'x', null), 'POPSTEER_ERR_HEALTH_UNKNOWN_SUBJECT');
  refused(() => service.setOverride('ams', 'explode' as 'drain', 'x', null), 'POPSTEER_ERR_HEALTH_BAD_OVERRIDE');
  refused(() => service.setOverride('ams', 'drain', '  ', null), 'POPSTEER_ERR_HEALTH_BAD_OVERRIDE');
  refused(() => service.setOverride('ams', 'drain', 'x', Date.now() - 1000), 'POPSTEER_ERR_HEALTH_BAD_OVERRIDE');
  refused(() => service.pushExternal('ghost', false, 'x'), 'POPSTEER_ERR_HEALTH_UNKNOWN_TARGET');
  assert.equal(readHealth(view, 0), true);
  assert.equal(existsSync(stateFile), false);
});

test('an unwritable state file is logged and counted; the override still applies in memory', () => {
  // The state directory's place is taken by a regular file: nothing can be written there.
  const blocker = join(dirname(tempStateFile()), 'not-a-directory');
  writeFileSync(blocker, 'x');
  const stateFile = join(blocker, 'state.json');
  const { service, view, logs } = makeService('pops: {}\n', ['ams'], scriptedTransport(() => true), { stateFile });
  service.setOverride('ams', 'drain', 'disk is read-only', null);
  assert.equal(readHealth(view, 0), false);
  assert.equal(service.metricsSnapshot().stateFileWriteFailures, 1);
  assert.ok(logs.lines.some((l) => l.level === 50 && String(l.msg).includes('cannot write the health state file')));
});

test('external targets take pushed state as is, and the TTL hint is 0 for them', () => {
  const { service, view } = makeService('targets:\n  ams-mon: { kind: external }\npops:\n  ams: { probes: [ams-mon] }\n', ['ams'], scriptedTransport(() => true));
  const transitions: TransitionEvent[] = [];
  service.on('transition', (t) => transitions.push(t));
  const status = service.pushExternal('ams-mon', false, 'monitor: 5xx rate 40%');
  assert.equal(status.state, 'down');
  assert.equal(readHealth(view, 0), false);
  assert.deepEqual(transitions.map((t) => [t.subject, t.to, t.target]), [['ams', 'down', 'ams-mon']]);
  assert.equal(service.status().subjects[0].targets[0].last?.detail, 'monitor: 5xx rate 40%');
  assert.equal(service.secondsUntilPossibleChange('ams'), 0);
  service.pushExternal('ams-mon', true, 'recovered');
  assert.equal(readHealth(view, 0), true);
});

test('"I am cut off": most targets failing at once freezes the last known states and raises the flag; recovery resumes', async () => {
  const up = new Map([['a', true], ['b', true], ['c', true], ['d', true]]);
  const yaml = `${FAST}targets:\n${['a', 'b', 'c', 'd'].map((t, i) => `  ${t}: { kind: tcp, host: 127.0.0.1, port: ${i + 1} }`).join('\n')}\n`
    + 'pops:\n  ams: { probes: [a] }\n  fra: { probes: [b] }\n  lhr: { probes: [c] }\n  iad: { probes: [d] }\n';
  const { service, view, logs } = makeService(yaml, ['ams', 'fra', 'lhr', 'iad'], scriptedTransport((t) => up.get(t.id)!));
  service.start();
  try {
    // This server loses its network: every target fails at once.
    for (const id of up.keys()) up.set(id, false);
    const [entered] = await nextEvent(service, 'cut-off');
    assert.equal(entered.active, true);
    assert.ok(entered.share > 0.5);
    assert.equal(healthCutOff(view), true);
    for (let i = 0; i < 4; i++) assert.equal(readHealth(view, i), true, `subject ${i} frozen at its last known state (up)`);
    assert.ok(logs.lines.some((l) => String(l.msg).includes('likely cut off')));
    // Let every target finish failing; the freeze holds.
    while (service.status().subjects.some((s) => s.targets[0].state !== 'down')) await nextEvent(service, 'target');
    for (let i = 0; i < 4; i++) assert.equal(readHealth(view, i), true);
    assert.equal(service.status().cutOff.active, true);
    assert.equal(service.metricsSnapshot().cutOff, 1);
    // The network comes back except for one PoP that really is down.
    for (const id of ['a', 'b', 'c']) up.set(id, true);
    const [left] = await nextEvent(service, 'cut-off');
    assert.equal(left.active, false);
    assert.equal(healthCutOff(view), false);
    while (service.status().subjects.slice(0, 3).some((s) => s.targets[0].state !== 'up')) await nextEvent(service, 'target');
    assert.deepEqual([0, 1, 2, 3].map((i) => readHealth(view, i)), [true, true, true, false]);
  } finally {
    service.stop();
  }
});

test('"they are down": a minority of targets failing fails over normally, no freeze', async () => {
  const up = new Map([['a', true], ['b', true], ['c', true], ['d', true]]);
  const yaml = `${FAST}targets:\n${['a', 'b', 'c', 'd'].map((t, i) => `  ${t}: { kind: tcp, host: 127.0.0.1, port: ${i + 1} }`).join('\n')}\n`
    + 'pops:\n  ams: { probes: [a] }\n  fra: { probes: [b] }\n  lhr: { probes: [c] }\n  iad: { probes: [d] }\n';
  const { service, view } = makeService(yaml, ['ams', 'fra', 'lhr', 'iad'], scriptedTransport((t) => up.get(t.id)!));
  let cutOffs = 0;
  service.on('cut-off', () => cutOffs++);
  service.start();
  try {
    up.set('a', false);
    up.set('b', false);
    const seen = new Set<string>();
    while (seen.size < 2) seen.add((await nextEvent(service, 'transition'))[0].subject);
    assert.deepEqual([...seen].sort(), ['ams', 'fra']);
    assert.deepEqual([0, 1, 2, 3].map((i) => readHealth(view, i)), [false, false, true, true]);
    assert.equal(cutOffs, 0, 'half down is not "more than half"');
    assert.equal(healthCutOff(view), false);
  } finally {
    service.stop();
  }
});

test('initial_state wait: not ready until every probed target answered once; the first answer decides', async () => {
  const up = new Map([['a', true], ['b', false]]);
  const yaml = 'defaults: { interval: 60ms, timeout: 30ms, initial_state: wait }\ncut_off: { enabled: false }\n'
    + 'targets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\n  b: { kind: tcp, host: 127.0.0.1, port: 2 }\npops:\n  ams: { probes: [a] }\n  fra: { probes: [b] }\n';
  const { service, view } = makeService(yaml, ['ams', 'fra'], scriptedTransport((t) => up.get(t.id)!));
  assert.equal(service.ready(), false);
  service.start();
  try {
    await nextEvent(service, 'ready');
    assert.equal(service.ready(), true);
    assert.equal(readHealth(view, 0), true);
    assert.equal(readHealth(view, 1), false, 'one failure decides while waiting (no fall count yet)');
  } finally {
    service.stop();
  }
});

test('max_in_flight caps the probes running at once; the others wait their turn', async () => {
  let running = 0;
  let peak = 0;
  const answer = scriptedTransport(() => true, () => 35);
  const targets = ['t1', 't2', 't3', 't4', 't5', 't6'];
  const yaml = 'defaults: { interval: 100ms, timeout: 90ms }\nmax_in_flight: 2\ncut_off: { enabled: false }\ntargets:\n'
    + targets.map((t, i) => `  ${t}: { kind: tcp, host: 127.0.0.1, port: ${i + 1} }`).join('\n') + '\n';
  // Counts a probe as running from its start until it answers or is aborted.
  const { service } = makeService(yaml, [], (target, signal) => {
    running++;
    peak = Math.max(peak, running);
    let counted = true;
    const done = (): void => { if (counted) { counted = false; running--; } };
    signal.addEventListener('abort', done, { once: true });
    return answer(target, signal).finally(done);
  });
  let probes = 0;
  service.on('probe', () => probes++);
  service.start();
  try {
    while (probes < 18) await nextEvent(service, 'probe');
  } finally {
    service.stop();
  }
  assert.equal(peak, 2, `at most 2 probes ran at once, saw ${peak}`);
  assert.ok(service.metricsSnapshot().probesQueued > 0, 'some probes waited for a slot');
});

test('a slow target times out on its own and never delays the others', async () => {
  const clock = new ManualClock();
  const startedAt = new Map<string, number[]>();
  const transport = scriptedTransport((t) => t.id !== 'slow', (t) => {
    const list = startedAt.get(t.id) ?? [];
    list.push(clock.now());
    startedAt.set(t.id, list);
    return t.id === 'slow' ? 10_000 : 2;
  }, clock);
  const yaml = 'defaults: { interval: 100ms, timeout: 50ms }\ncut_off: { enabled: false }\ntargets:\n'
    + ['slow', 'f1', 'f2'].map((t, i) => `  ${t}: { kind: tcp, host: 127.0.0.1, port: ${i + 1} }`).join('\n') + '\n';
  const { service } = makeService(yaml, [], transport, { clock });
  service.start();
  try {
    await driveScripted(clock, () => (startedAt.get('f2')?.length ?? 0) >= 6);
  } finally {
    service.stop();
  }
  const metrics = service.metricsSnapshot();
  const slow = metrics.targets.find((t) => t.id === 'slow')!;
  assert.ok(slow.failures.timeout >= 5, `the slow target fails with reason timeout (${slow.failures.timeout})`);
  assert.equal(slow.up, 0);
  assert.equal(slow.durationBuckets.at(-1), slow.failures.timeout, 'each timed-out probe counted once');
  for (const id of ['f1', 'f2']) {
    const starts = startedAt.get(id)!;
    const gaps = starts.slice(1).map((s, i) => s - starts[i]);
    // Phase-locked schedule: each start lands exactly one interval after the previous.
    assert.deepEqual(gaps, gaps.map(() => 100), `${id} kept its 100 ms pace: ${gaps.join(' ')}`);
    assert.equal(metrics.targets.find((t) => t.id === id)!.up, 1);
  }
});

test('the TTL hint is the earliest time a probe could change the state', async () => {
  const { service } = makeService('targets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n  fra: { probes: [a] }\n', ['ams', 'fra', 'lhr'], scriptedTransport(() => true));
  service.start();
  try {
    // Up with defaults: next probe within 2 s, then one more (fall 2), plus the timeout.
    const seconds = service.secondsUntilPossibleChange('ams');
    assert.ok(seconds >= 3 && seconds <= 5, `expected 3..5 s, got ${seconds}`);
    assert.equal(service.secondsUntilPossibleChange('lhr'), Infinity, 'no probes: only an operator can change it');
    service.setOverride('fra', 'drain', 'x', null);
    assert.equal(service.secondsUntilPossibleChange('fra'), Infinity);
  } finally {
    service.stop();
  }
});

test('metrics count probe durations, failures by reason and transitions per target', async () => {
  const outcomes = [
    { ok: false as const, reason: 'status' as const, detail: 'status 503' },
    { ok: false as const, reason: 'body' as const, detail: 'body lacks ok' },
  ];
  let n = 0;
  const { service } = makeService(`${FAST}targets:\n  a: { kind: http, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => outcomes[n++ % 2]));
  service.start();
  try {
    await nextEvent(service, 'transition');
    await nextEvent(service, 'probe');
  } finally {
    service.stop();
  }
  const [m] = service.metricsSnapshot().targets;
  assert.equal(m.up, 0);
  assert.equal(m.transitions, 1);
  assert.equal(m.failures.status + m.failures.body, m.durationCount);
  assert.ok(m.failures.status >= 1 && m.failures.body >= 1);
  assert.equal(m.durationBuckets.at(-1), m.durationCount, 'the +Inf bucket holds every observation');
  const status = service.status().subjects[0].targets[0];
  assert.match(status.last!.detail, /status 503|body lacks ok/);
});

/**
 * One target whose probe answers when the test says so; the clock moves only
 * when the test moves it. Returns the service and a way to answer the probe in flight.
 */
async function heldProbe(): Promise<{ clock: ManualClock; service: HealthService; results: Array<{ ok: boolean; reason: string | null }>; answer: () => void }> {
  const clock = new ManualClock();
  let pending: ((outcome: ProbeOutcome) => void) | null = null;
  const transport: ProbeTransport = () => new Promise((resolve) => { pending = resolve; });
  const yaml = 'defaults: { interval: 1s, timeout: 100ms }\ncut_off: { enabled: false }\ntargets:\n  t1: { kind: tcp, host: 127.0.0.1, port: 1 }\n';
  const { service } = makeService(yaml, [], transport, { clock });
  const results: Array<{ ok: boolean; reason: string | null }> = [];
  service.on('probe', (e) => results.push({ ok: e.ok, reason: e.reason }));
  service.start();
  while (pending === null) {
    if (!clock.fireNext()) throw new Error('the probe never started');
    await new Promise((r) => setImmediate(r));
  }
  return { clock, service, results, answer: () => pending!({ ok: true, detail: 'answered' }) };
}

test('a probe that answered in time is not a timeout when the loop was blocked past its deadline', async () => {
  const { clock, service, results, answer } = await heldProbe();
  try {
    // The process stalls for 5 s; the reply comes in during the stall (it waits in the socket)...
    clock.stall(5000);
    answer();
    // ...and when the loop runs again, the overdue deadline timer fires before the socket is read.
    clock.fireNext();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(results, [{ ok: true, reason: null }]);
    assert.equal(service.metricsSnapshot().targets[0].failures.timeout, 0);
  } finally {
    service.stop();
  }
});

test('a probe still unanswered once the waiting replies are read is a timeout', async () => {
  const { clock, service, results } = await heldProbe();
  try {
    clock.stall(5000);
    clock.fireNext();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(results, [{ ok: false, reason: 'timeout' }]);
    assert.equal(service.metricsSnapshot().targets[0].failures.timeout, 1);
  } finally {
    service.stop();
  }
});
