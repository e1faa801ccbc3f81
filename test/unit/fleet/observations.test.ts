// The fleet's health on one instance, with a real health service on a manual
// clock and an in-memory bucket: other observers' observations become the
// verdict in the health table; this instance probes only the targets given
// to it and writes what it sees; a lost fleet keeps the last verdicts for
// exactly the grace, then local probes decide, until the fleet is back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KV, KvEntry } from 'nats';
import { Observations, decodeObservation, observationKey } from '../../../server/fleet/observations.ts';
import { rendezvous } from '../../../server/fleet/rendezvous.ts';
import { readHealth } from '../../../server/health/table.ts';
import { ManualClock } from '../../helpers/manual-clock.ts';
import { makeService, scriptedTransport } from '../health/helpers.ts';

const SUBJECTS = ['lhr', 'ams', 'fra'];
const YAML = [
  'defaults: { interval: 1s, timeout: 500ms, fall: 2, rise: 2 }',
  'targets:',
  '  lhr-http: { kind: http, host: 127.0.0.1, port: 1001 }',
  '  ams-http: { kind: http, host: 127.0.0.1, port: 1002, verdict: any }',
  '  fra-http: { kind: http, host: 127.0.0.1, port: 1003 }',
  'pops:',
  '  lhr: { probes: [lhr-http] }',
  '  ams: { probes: [ams-http] }',
  '  fra: { probes: [fra-http] }',
  '',
].join('\n');
const STALE_MS = 6000;
const GRACE_MS = 30_000;

/** A bucket that keeps what is written, in memory. */
function memoryBucket(): { kv: KV; values: Map<string, unknown> } {
  const values = new Map<string, unknown>();
  const kv = {
    put: async (key: string, value: Uint8Array) => { values.set(key, JSON.parse(new TextDecoder().decode(value))); return values.size; },
    delete: async (key: string) => { values.delete(key); },
  } as unknown as KV;
  return { kv, values };
}

function entry(observer: string, pop: string, target: string, state: 'up' | 'down', now: number, cutOff = false): KvEntry {
  const record = { v: 1, observer, pop, target, state, since: now, reason: state === 'down' ? 'refused' : '', cutOff };
  return { key: observationKey(pop, observer, target), value: new TextEncoder().encode(JSON.stringify(record)), operation: 'PUT', revision: 1 } as unknown as KvEntry;
}

function setUp(probers = 3) {
  const clock = new ManualClock();
  const h = makeService(YAML, SUBJECTS, scriptedTransport(() => true), { clock });
  const bucket = memoryBucket();
  const link = new Observations({
    health: h.service, pop: 'lhr', instanceId: 'me', probers, defaultRule: { kind: 'quorum' }, graceMs: GRACE_MS, staleMs: STALE_MS, log: h.logs.log, clock,
  });
  link.attach(bucket.kv);
  const members = (): Array<{ instance: string; pop: string; seenAt: number }> => [
    { instance: 'me', pop: 'lhr', seenAt: clock.now() }, { instance: 'ams-1', pop: 'ams', seenAt: clock.now() }, { instance: 'fra-1', pop: 'fra', seenAt: clock.now() },
  ];
  link.setConnected(true);
  link.setMembers(members());
  link.followed();
  return { clock, h, link, bucket, members };
}

test('other observers\' observations become the verdict in this instance\'s health table, with the evidence', () => {
  const { clock, h, link } = setUp();
  assert.equal(h.service.status().source, 'fleet');
  link.onEntry(entry('fra-1', 'fra', 'fra-http', 'up', clock.now()));
  link.onEntry(entry('ams-1', 'ams', 'fra-http', 'down', clock.now()));
  assert.equal(readHealth(h.view, 2), true, 'one of two counting observers is no quorum');
  link.onEntry(entry('fra-1', 'fra', 'fra-http', 'down', clock.now()));
  assert.equal(readHealth(h.view, 2), false);
  const fra = h.service.status().subjects[2].targets[0];
  assert.equal(fra.state, 'up', 'this instance\'s own view is kept apart');
  assert.deepEqual(fra.verdict, { state: 'down', evidence: 'down: seen down by ams, fra' });
  // ams-http is judged by "any" (its own rule in probes.yaml).
  link.onEntry(entry('fra-1', 'fra', 'ams-http', 'down', clock.now()));
  assert.equal(readHealth(h.view, 1), false);
  const status = link.status();
  assert.equal(status.observersLive, 3);
  assert.deepEqual(status.targets.find((t) => t.target === 'ams-http')!.rule, 'any');
});

test('a cut-off observer is left out: no failover because of it', () => {
  const { clock, h, link } = setUp();
  link.onEntry(entry('ams-1', 'ams', 'lhr-http', 'down', clock.now(), true));
  link.onEntry(entry('fra-1', 'fra', 'lhr-http', 'up', clock.now()));
  assert.equal(readHealth(h.view, 0), true);
  assert.equal(h.service.status().subjects[0].targets[0].verdict?.evidence, 'up: seen up by fra; ams excluded (cut off)');
});

test('this instance probes only its share, and writes its observations under its own id', async () => {
  const { clock, h, link, bucket } = setUp(1);
  const mine = h.service.status().subjects.flatMap((s) => s.targets).filter((t) => t.probedHere).map((t) => t.id);
  const shard = link.status().targets;
  assert.ok(mine.includes('lhr-http'), 'its own PoP\'s target is always probed here');
  const expected = ['lhr-http', 'ams-http', 'fra-http'].filter((t) => t === 'lhr-http' || rendezvous(t, ['me', 'ams-1', 'fra-1'], 1).includes('me'));
  assert.deepEqual(mine.sort(), expected.sort());
  assert.deepEqual(shard.find((t) => t.target === 'lhr-http'), undefined, 'no verdict without observations');
  h.service.start();
  // Before any probe this instance has nothing to say: "unknown", which counts for nothing.
  assert.ok([...bucket.values.values()].every((v) => (v as { state: string }).state === 'unknown'));
  // Drive the scheduler until every target probed here has had a result written.
  while ([...bucket.values.values()].filter((v) => (v as { state: string }).state === 'up').length < mine.length) {
    assert.ok(clock.fireNext(), 'the scheduler stopped before every observation was written');
    await new Promise((r) => setImmediate(r));
  }
  for (const id of mine) {
    const written = bucket.values.get(observationKey('lhr', 'me', id)) as Record<string, unknown>;
    assert.deepEqual({ ...written, since: 0 }, { v: 1, observer: 'me', pop: 'lhr', target: id, state: 'up', since: 0, reason: 'scripted up', cutOff: false });
  }
  h.service.stop();
});

test('a lost fleet keeps the last verdicts for exactly the grace, then local probes decide until it is back', () => {
  // k = 0: each target is probed by its own PoP's instance only, so fra-http is not probed here.
  const { clock, h, link, members } = setUp(0);
  assert.equal(h.service.status().subjects[2].targets[0].probedHere, false);
  link.onEntry(entry('ams-1', 'ams', 'fra-http', 'down', clock.now()));
  link.onEntry(entry('fra-1', 'fra', 'fra-http', 'down', clock.now()));
  assert.equal(readHealth(h.view, 2), false);
  link.setConnected(false);
  clock.advanceTo(clock.now() + GRACE_MS - 1);
  link.tick();
  assert.equal(h.service.status().source, 'fleet');
  assert.equal(readHealth(h.view, 2), false, 'the last verdict holds while heartbeats grow old');
  clock.advanceTo(clock.now() + 1);
  assert.equal(h.service.status().source, 'local');
  assert.equal(link.status().source, 'local');
  assert.ok(h.logs.lines.some((l) => l.msg === 'fleet: out of reach for longer than the grace; health from local probes until it is back'));
  assert.equal(readHealth(h.view, 2), false, 'local probes start from the last verdict');
  assert.ok(h.service.status().subjects.every((s) => s.targets.every((t) => t.probedHere)));
  link.setConnected(true);
  link.setMembers(members());
  link.followed();
  assert.equal(h.service.status().source, 'fleet');
  assert.ok(h.logs.lines.some((l) => l.msg === 'fleet: health from the fleet verdict' && l.after === 'partition'));
});

test('a reconnection within the grace never falls back', () => {
  const { clock, h, link } = setUp();
  link.setConnected(false);
  clock.advanceTo(clock.now() + GRACE_MS / 2);
  link.setConnected(true);
  link.followed();
  clock.advanceTo(clock.now() + GRACE_MS);
  assert.equal(h.service.status().source, 'fleet');
});

test('an observation under another observer\'s key, or malformed, is not believed', () => {
  const good = entry('ams-1', 'ams', 'lhr-http', 'down', 5);
  assert.equal(decodeObservation(good.key, good.value)?.state, 'down');
  assert.equal(decodeObservation(observationKey('ams', 'fra-1', 'lhr-http'), good.value), null);
  assert.equal(decodeObservation(observationKey('fra', 'ams-1', 'lhr-http'), good.value), null, 'another PoP\'s key');
  assert.equal(decodeObservation(good.key, new TextEncoder().encode('{"v":1}')), null);
  assert.equal(decodeObservation(good.key, new TextEncoder().encode('nope')), null);
});
