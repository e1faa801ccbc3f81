// The fleet settings as resolveSettings reads them: flag, environment and
// popsteer.yaml's fleet: mapping; the defaults; which addresses need
// credentials.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { natsHost, resolveSettings } from '../../../server/config/settings.ts';

const configDir = (yaml: string | null): string => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-fleet-settings-'));
  if (yaml !== null) writeFileSync(join(dir, 'popsteer.yaml'), yaml);
  return dir;
};
const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveSettings(argv, env, tmpdir()).settings;
const messages = (call: () => unknown): string => {
  try {
    call();
  } catch (err) {
    assert.ok(err instanceof ConfigErrors);
    return err.errors.map((e) => e.format()).join('\n');
  }
  return assert.fail('expected ConfigErrors');
};

test('without --fleet there is no fleet; the name defaults to popsteer', () => {
  const s = resolve(['--config', configDir(null)]);
  assert.deepEqual(s.fleetServers, []);
  assert.equal(s.fleetName, 'popsteer');
  assert.equal(s.fleetCreds, null);
});

test('flag beats environment beats popsteer.yaml\'s fleet: mapping', () => {
  const dir = configDir('fleet:\n  servers: [nats://127.0.0.1:4001]\n  name: fromfile\n  insecure_loopback: true\n');
  assert.deepEqual(resolve(['--config', dir]).fleetServers, ['nats://127.0.0.1:4001']);
  assert.equal(resolve(['--config', dir]).fleetName, 'fromfile');
  assert.deepEqual(resolve(['--config', dir], { POPSTEER_FLEET: 'nats://127.0.0.1:4002,nats://127.0.0.1:4003' }).fleetServers, ['nats://127.0.0.1:4002', 'nats://127.0.0.1:4003']);
  assert.deepEqual(resolve(['--config', dir, '--fleet', 'nats://[::1]:4004'], { POPSTEER_FLEET: 'nats://127.0.0.1:4002' }).fleetServers, ['nats://[::1]:4004']);
});

test('credentials are required beyond loopback, and on loopback unless --fleet-insecure-loopback', () => {
  const dir = configDir(null);
  assert.match(messages(() => resolve(['--config', dir, '--fleet', 'tls://nats.example:4222'])), /nats\.example:4222 is beyond loopback/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet', 'nats://127.0.0.1:4222'])), /--fleet-insecure-loopback/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet', 'nats://127.0.0.1:4222,nats://10.0.0.1:4222', '--fleet-insecure-loopback'])), /10\.0\.0\.1:4222 is beyond loopback/);
  assert.deepEqual(resolve(['--config', dir, '--fleet', 'nats://localhost:4222', '--fleet-insecure-loopback']).fleetServers, ['nats://localhost:4222']);
  assert.equal(resolve(['--config', dir, '--fleet', 'nats://10.0.0.1:4222', '--fleet-creds', 'fleet.creds']).fleetCreds, join(tmpdir(), 'fleet.creds'));
});

test('natsHost reads nats:// and tls:// addresses, with user info and IPv6', () => {
  assert.equal(natsHost('nats://127.0.0.1:4222'), '127.0.0.1');
  assert.equal(natsHost('tls://user:pw@hub.example:7422'), 'hub.example');
  assert.equal(natsHost('nats://[::1]:4222'), '::1');
  for (const bad of ['127.0.0.1:4222', 'http://a:1', 'nats://a', 'nats://a:99999', 'nats://a:1/x']) assert.equal(natsHost(bad), null, bad);
});

test('the health verdict settings: defaults, the rule from a flag or popsteer.yaml\'s mapping, the grace as a duration', () => {
  const defaults = resolve(['--config', configDir(null)]);
  assert.deepEqual(defaults.fleetVerdict, { kind: 'quorum' });
  assert.equal(defaults.fleetProbers, 3);
  assert.equal(defaults.fleetGraceMs, 30_000);
  const dir = configDir('fleet:\n  verdict: { more_than_percent: 60 }\n  probers: 2\n  grace: 45s\n');
  const fromFile = resolve(['--config', dir]);
  assert.deepEqual(fromFile.fleetVerdict, { kind: 'more_than_percent', percent: 60 });
  assert.equal(fromFile.fleetProbers, 2);
  assert.equal(fromFile.fleetGraceMs, 45_000);
  const fromFlags = resolve(['--config', dir, '--fleet-verdict', 'any', '--fleet-grace', '500ms'], { POPSTEER_FLEET_PROBERS: '5' });
  assert.deepEqual(fromFlags.fleetVerdict, { kind: 'any' });
  assert.equal(fromFlags.fleetGraceMs, 500);
  assert.equal(fromFlags.fleetProbers, 5);
  assert.equal(resolve(['--config', dir, '--fleet-grace', '2m']).fleetGraceMs, 120_000);
});

test('a wrong verdict rule, grace or probers count is a clear error naming the setting', () => {
  const dir = configDir(null);
  assert.match(messages(() => resolve(['--config', dir, '--fleet-verdict', 'most'])), /fleet-verdict: "most": expected any, quorum, all or more_than_percent: N \(0 to 99\)/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet-verdict', 'more_than_percent:100'])), /fleet-verdict: .*expected any, quorum, all or more_than_percent/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet-grace', 'soon'])), /fleet-grace: must be a duration such as 30s, 500ms or 2m, not "soon"/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet-grace', '0s'])), /fleet-grace: must be a duration/);
  assert.match(messages(() => resolve(['--config', dir, '--fleet-probers', '0'])), /fleet-probers: must be a whole number ≥ 1/);
  assert.match(messages(() => resolve(['--config', configDir('fleet:\n  verdict: { quorum: 1 }\n')])), /fleet-verdict: .*expected any, quorum, all or more_than_percent/);
});
