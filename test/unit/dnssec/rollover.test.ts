// The CSK rollover state machine (server/dnssec/rollover.ts): which keys
// sign and are published in each phase, the waits (DNSKEY TTL after start,
// the zone's largest TTL after activate) measured on the injected clock,
// the parent's DS confirmed by key tag, refusals that name the next command,
// key files 0600 and never overwritten, and a damaged state record refused.
// The CLI exits 2 on a refused step.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ALG_ECDSAP256SHA256, generateKey, KeyError, loadKey } from '../../../server/dnssec/keys.ts';
import {
  activateState, advanceRollover, finishState, loadKeySet, readRolloverState, RolloverRefused, startRollover, startState,
} from '../../../server/dnssec/rollover.ts';
import { copyExampleConfig } from '../../helpers/config-copy.ts';
import { CLI, testEnvironment } from '../../helpers/server.ts';

const T0 = Date.UTC(2026, 0, 10, 12);
const TTLS = { dnskeyTtl: 3600, maxTtl: 7200 };
const ZONE = 'example.';

function keysWithOneKey(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'popsteer-rollover-')), 'keys');
  generateKey(dir, ZONE, ALG_ECDSAP256SHA256);
  return dir;
}

test('the phases: who signs, who is published, what CDS lists', () => {
  const dir = keysWithOneKey();
  const old = loadKey(dir, ZONE, null);
  const before = loadKeySet(dir, ZONE, null);
  assert.deepEqual([before.active.keyTag, before.published.map((k) => k.keyTag), before.parentKeys.map((k) => k.keyTag)], [old.keyTag, [old.keyTag], [old.keyTag]]);

  const started = startRollover(dir, ZONE, ALG_ECDSAP256SHA256, T0, TTLS);
  assert.equal(started.phase, 'published');
  const newFile = join(dir, started.newKey);
  assert.equal(statSync(newFile).mode & 0o777, 0o600, 'the new key is 0600');
  assert.equal(statSync(join(dir, 'example.rollover.json')).mode & 0o777, 0o600);
  const published = loadKeySet(dir, ZONE, null);
  const fresh = published.published[1];
  assert.notEqual(fresh.keyTag, old.keyTag);
  assert.equal(started.newKey, `example.csk.${fresh.keyTag}.pem`);
  assert.equal(published.active.keyTag, old.keyTag, 'the old key still signs');
  assert.deepEqual(published.parentKeys.map((k) => k.keyTag), [old.keyTag, fresh.keyTag]);

  advanceRollover(dir, ZONE, (s) => activateState(s, ZONE, T0 + 3600_000, false));
  const active = loadKeySet(dir, ZONE, null);
  assert.equal(active.active.keyTag, fresh.keyTag, 'the new key signs');
  assert.deepEqual(active.published.map((k) => k.keyTag), [old.keyTag, fresh.keyTag], 'the old key stays published');
  assert.deepEqual(active.parentKeys.map((k) => k.keyTag), [fresh.keyTag]);

  const options = { force: false, parentDs: fresh.keyTag, oldTag: old.keyTag, newTag: fresh.keyTag, newDs: 'DS' };
  const done = advanceRollover(dir, ZONE, (s) => finishState(s, ZONE, T0 + 3600_000 + 7200_000, options));
  assert.equal(done.phase, 'done');
  const after = loadKeySet(dir, ZONE, null);
  assert.deepEqual([after.active.keyTag, after.published.map((k) => k.keyTag)], [fresh.keyTag, [fresh.keyTag]]);

  // A second rollover starts from the key the first one left in use.
  const second = startRollover(dir, ZONE, ALG_ECDSAP256SHA256, T0 + 86400_000, TTLS);
  assert.equal(second.oldKey, started.newKey);
  assert.equal(readdirSync(dir).filter((f) => f.endsWith('.pem')).length, 3, 'no key file was overwritten or removed');
});

test('waits and refusals name what to do', () => {
  const published = startState(null, ZONE, 'example.csk.1.pem', T0, TTLS);
  const refused = (f: () => unknown, pattern: RegExp): void => {
    assert.throws(f, (e: Error) => e instanceof RolloverRefused && pattern.test(e.message));
  };
  refused(() => startState(published, ZONE, 'x', T0, TTLS), /already under way \(phase "published".*rollover activate/);
  refused(() => activateState(null, ZONE, T0, false), /no rollover of example\. is under way.*rollover start/);
  refused(() => activateState(published, ZONE, T0 + 3599_000, false), /until 2026-01-10T13:00:00\.000Z \(its TTL, 3600 s\).*--force/);
  assert.equal(activateState(published, ZONE, T0 + 1000, true).phase, 'active', '--force skips the wait');
  const active = activateState(published, ZONE, T0 + 3600_000, false);
  assert.equal(active.activatedAt, T0 + 3600_000);
  refused(() => activateState(active, ZONE, T0 + 7200_000, false), /already signs.*rollover finish/);
  const options = { force: false, parentDs: 222, oldTag: 111, newTag: 222, newDs: 'example. 3600 IN DS 222 13 2 AB' };
  refused(() => finishState(published, ZONE, T0 + 86400_000, options), /does not sign yet.*rollover activate/);
  refused(() => finishState(active, ZONE, T0 + 3600_000 + 7199_000, options), /until 2026-01-10T15:00:00\.000Z \(the zone's largest TTL, 7200 s\)/);
  refused(() => finishState(active, ZONE, T0 + 86400_000, { ...options, parentDs: null }), /turns bogus.*key tag 111.*example\. 3600 IN DS 222 13 2 AB.*--parent-ds 222/s);
  refused(() => finishState(active, ZONE, T0 + 86400_000, { ...options, parentDs: 111 }), /--parent-ds 222/);
  assert.equal(finishState(active, ZONE, T0 + 3600_000, { ...options, force: true }).phase, 'done');
  const done = finishState(active, ZONE, T0 + 86400_000, options);
  refused(() => activateState(done, ZONE, T0 + 86400_000, false), /no rollover.*rollover start/);
});

test('a damaged state record is refused with what to do; a missing next key too', () => {
  const dir = keysWithOneKey();
  writeFileSync(join(dir, 'example.rollover.json'), '{"phase":', { mode: 0o600 });
  assert.throws(() => loadKeySet(dir, ZONE, null), (e: Error) => e instanceof KeyError && /not valid JSON.*restore it from a backup/.test(e.message));
  writeFileSync(join(dir, 'example.rollover.json'), '{"phase":"sideways"}', { mode: 0o600 });
  assert.throws(() => readRolloverState(dir, ZONE), /does not hold a rollover state/);
  writeFileSync(join(dir, 'example.rollover.json'), JSON.stringify(startState(null, ZONE, 'example.csk.9.pem', T0, TTLS)), { mode: 0o600 });
  assert.throws(() => loadKeySet(dir, ZONE, null), /no key .*example\.csk\.9\.pem/);
});

test('the command: a refused step exits 2 with the reason; the state is untouched', async () => {
  const config = copyExampleConfig();
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, 'zone: cdn.example\ndnssec: { keys: keys }'));
  const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'dnssec', ...args, '--config', config, '--zone', 'cdn.example'], { env: testEnvironment() },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }));
  });
  assert.equal((await run('keygen')).code, 0);
  const early = await run('rollover', 'finish');
  assert.equal(early.code, 2);
  assert.match(early.stderr, /^popsteer dnssec rollover: no rollover of cdn\.example is under way: begin one with "popsteer dnssec rollover start"/);
  assert.equal((await run('rollover', 'start')).code, 0);
  const state = readFileSync(join(config, 'keys', 'cdn.example.rollover.json'), 'utf8');
  const refused = await run('rollover', 'activate');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /run activate again after/);
  assert.equal(readFileSync(join(config, 'keys', 'cdn.example.rollover.json'), 'utf8'), state);
  assert.equal((await run('rollover', 'sideways')).code, 2);
});
