import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { parseYamlText, readYamlFile } from '../../../server/config/yaml-source.ts';
import { loadProbesConfig, parseProbesConfig } from '../../../server/health/config.ts';

const POPS = ['ams', 'fra', 'lhr'];

function parse(yaml: string, subjects = POPS) {
  return parseProbesConfig(parseYamlText('probes.yaml', yaml), subjects);
}

function errorsOf(yaml: string): Array<{ code: string; line: number; pointer: string; message: string }> {
  try {
    parse(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigErrors, `expected ConfigErrors, got ${err}`);
    return err.errors.map((e) => ({ code: e.code, line: e.line, pointer: e.pointer, message: e.message }));
  }
  assert.fail('expected the configuration to be rejected');
}

test('an empty file gets the documented defaults', () => {
  const config = parse('');
  assert.equal(config.initialState, 'up');
  assert.equal(config.maxInFlight, 256);
  assert.deepEqual(config.cutOff, { enabled: true, share: 0.5, minTargets: 3, windowMs: 6000 });
  assert.equal(config.targets.length, 0);
});

test('targets inherit interval 2s, timeout 1s, fall 2, rise 3 and accept 2xx by default', () => {
  const [target] = parse('targets:\n  a: { kind: http, host: 127.0.0.1, port: 8080 }\n').targets;
  assert.equal(target.intervalMs, 2000);
  assert.equal(target.timeoutMs, 1000);
  assert.equal(target.fall, 2);
  assert.equal(target.rise, 3);
  assert.deepEqual(target.status, [[200, 299]]);
  assert.equal(target.hostHeader, '127.0.0.1');
  assert.equal(target.verifyTls, true);
});

test('durations accept ms, s, m and bare seconds; status accepts codes and ranges', () => {
  const [target] = parse('targets:\n  a: { kind: https, host: ::1, port: 443, interval: 500ms, timeout: 0.2, status: [204, "300-302"], tls: { sni: x.example, verify: false } }\n').targets;
  assert.equal(target.intervalMs, 500);
  assert.equal(target.timeoutMs, 200);
  assert.deepEqual(target.status, [[204, 204], [300, 302]]);
  assert.equal(target.sni, 'x.example');
  assert.equal(target.verifyTls, false);
});

test('a timeout not below the interval is rejected at the line of the timeout', () => {
  const errors = errorsOf('defaults:\n  interval: 1s\n  timeout: 1s\n');
  assert.deepEqual(errors.map((e) => [e.code, e.line, e.pointer]), [['POPSTEER_ERR_PROBES_TIMEOUT', 3, '/defaults/timeout']]);
  const perTarget = errorsOf('targets:\n  a:\n    kind: tcp\n    host: 127.0.0.1\n    port: 1\n    timeout: 3s\n');
  assert.deepEqual(perTarget.map((e) => [e.code, e.line, e.pointer]), [['POPSTEER_ERR_PROBES_TIMEOUT', 6, '/targets/a/timeout']]);
});

test('meaning errors carry stable codes: unknown PoP, unknown target, impossible quorum, key for another kind', () => {
  const errors = errorsOf([
    'targets:',
    '  t: { kind: tcp, host: 127.0.0.1, port: 1, path: /x }',
    'pops:',
    '  xyz: { probes: [t] }',
    '  ams: { probes: [nope] }',
    '  fra: { probes: [t], quorum: 2 }',
    '',
  ].join('\n'));
  assert.deepEqual(errors.map((e) => e.code).sort(), [
    'POPSTEER_ERR_PROBES_KEY_FOR_KIND', 'POPSTEER_ERR_PROBES_QUORUM', 'POPSTEER_ERR_PROBES_UNKNOWN_POP', 'POPSTEER_ERR_PROBES_UNKNOWN_TARGET',
  ]);
  assert.equal(errors.find((e) => e.code === 'POPSTEER_ERR_PROBES_KEY_FOR_KIND')?.line, 2);
  assert.equal(errors.find((e) => e.code === 'POPSTEER_ERR_PROBES_UNKNOWN_POP')?.line, 4);
});

test('schema errors name the place: a missing host, a bad duration, an unknown key', () => {
  assert.deepEqual(errorsOf('targets:\n  a: { kind: tcp, port: 1 }\n').map((e) => e.code), ['POPSTEER_ERR_PROBES_SCHEMA']);
  const bad = errorsOf('defaults:\n  interval: 2 seconds\n');
  assert.deepEqual(bad.map((e) => [e.code, e.line, e.pointer]), [['POPSTEER_ERR_PROBES_SCHEMA', 2, '/defaults/interval']]);
  assert.match(errorsOf('defaults:\n  intervall: 2s\n')[0].message, /unknown key "intervall"/);
});

test('one target named by several PoPs, or defined inline identically, is probed once', () => {
  const config = parse([
    'targets:',
    '  shared: { kind: http, host: 127.0.0.1, port: 8080, path: /health }',
    'pops:',
    '  ams: { probes: [shared, { kind: tcp, host: 127.0.0.1, port: 9000 }] }',
    '  fra: { probes: [shared, { kind: tcp, host: 127.0.0.1, port: 9000 }], quorum: 1 }',
    '  lhr: { probes: [{ kind: http, host: 127.0.0.1, port: 8080, path: /health }] }',
    '',
  ].join('\n'));
  assert.equal(config.targets.length, 2);
  assert.deepEqual(config.subjects.get('ams'), { targets: [0, 1], quorum: 2 });
  assert.deepEqual(config.subjects.get('fra'), { targets: [0, 1], quorum: 1 });
  assert.deepEqual(config.subjects.get('lhr'), { targets: [0], quorum: 1 });
  assert.equal(config.targets[1].id, 'tcp://127.0.0.1:9000');
});

test('the example geo-data/probes.yaml loads against the PoP catalog and probes nothing off this machine', () => {
  const pops = (readYamlFile('geo-data/pops.yaml').data as { pops: Array<{ id: string }> }).pops.map((p) => p.id);
  const config = loadProbesConfig('geo-data/probes.yaml', pops);
  assert.ok(config.subjects.size > 0);
  for (const target of config.targets) {
    assert.ok(target.kind === 'external' || /^(127\.|::1$)/.test(target.host), `${target.id} must stay on loopback`);
  }
});
