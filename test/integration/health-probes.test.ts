// Real HTTP, HTTPS, TCP and DNS targets on loopback, probed by the real
// transports: kill → down on exactly the `fall`-th failed probe, one
// interval apart on the scheduler's clock; restore → up after exactly `rise`
// successes; overrides win and persist across a restart of the service; TLS
// verification and SNI are real. The scheduler runs on a manual clock that
// moves only once every probe in flight has reported, so a loaded machine
// cannot turn a slow answer into a timeout. Failover in real time is
// measured by test/bench/failover.bench.ts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseYamlText } from '../../server/config/yaml-source.ts';
import { parseProbesConfig } from '../../server/health/config.ts';
import { HealthService, type ProbeEvent } from '../../server/health/service.ts';
import { createHealthTable, readHealth } from '../../server/health/table.ts';
import { selfSignedCertificate, startDnsTarget, startHttpTarget, startHttpsTarget, startTcpTarget, type Target } from '../fixtures/health/targets.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { captureLogger, driveReal, nextEvent, tempStateFile } from '../unit/health/helpers.ts';

const INTERVAL_MS = 300;
const TIMEOUT_MS = 150;
const FALL = 2;
const RISE = 2;
const SUBJECTS = ['ams', 'fra', 'lhr', 'iad', 'sin'];

let http: Target;
let https: Target;
let tcp: Target;
let dns: Target;
let yaml: string;

before(async () => {
  const certificate = selfSignedCertificate('fra.cdn.test');
  [http, https, tcp, dns] = await Promise.all([
    startHttpTarget((req, res) => { res.writeHead(req.url === '/health' ? 200 : 404).end('edge ok\n'); }),
    startHttpsTarget(certificate),
    startTcpTarget(),
    startDnsTarget('192.0.2.1'),
  ]);
  yaml = [
    `defaults: { interval: ${INTERVAL_MS}ms, timeout: ${TIMEOUT_MS}ms, fall: ${FALL}, rise: ${RISE} }`,
    'targets:',
    `  ams-http: { kind: http, host: 127.0.0.1, port: ${http.port}, path: /health, host_header: ams.cdn.test, status: ["200-204"], body: "edge ok" }`,
    `  fra-https: { kind: https, host: 127.0.0.1, port: ${https.port}, path: /, tls: { sni: fra.cdn.test, verify: false } }`,
    `  lhr-tcp: { kind: tcp, host: 127.0.0.1, port: ${tcp.port} }`,
    `  iad-dns: { kind: dns, host: 127.0.0.1, port: ${dns.port}, name: probe.cdn.test, type: A, rcode: NOERROR, answer: 192.0.2.1 }`,
    // Verification on against a self-signed certificate: must fail with reason tls.
    `  sin-https-verified: { kind: https, host: 127.0.0.1, port: ${https.port}, path: /, tls: { sni: fra.cdn.test, verify: true } }`,
    'pops:',
    '  ams: { probes: [ams-http] }',
    '  fra: { probes: [fra-https] }',
    '  lhr: { probes: [lhr-tcp] }',
    '  iad: { probes: [iad-dns] }',
    '  sin: { probes: [sin-https-verified] }',
    '',
  ].join('\n');
});

after(async () => {
  for (const target of [http, https, tcp, dns]) await target?.kill().catch(() => {});
});

function newService(stateFile: string): { service: HealthService; view: Int32Array; clock: ManualClock } {
  const table = createHealthTable(SUBJECTS.length);
  const config = parseProbesConfig(parseYamlText('probes.yaml', yaml), SUBJECTS);
  const clock = new ManualClock();
  const service = new HealthService({ subjects: SUBJECTS, config, stateFile, log: captureLogger().log, table, clock });
  return { service, view: new Int32Array(table), clock };
}

for (const [index, kind] of [[0, 'http'], [1, 'https'], [2, 'tcp'], [3, 'dns']] as const) {
  test(`${kind}: a killed target is down on exactly the fall-th failed probe, and up after exactly rise successes`, async () => {
    const { service, view, clock } = newService(tempStateFile());
    const target = { http, https, tcp, dns }[kind];
    const probes: Array<ProbeEvent & { at: number }> = [];
    const targetId = service.status().subjects[index].targets[0].id;
    service.on('probe', (p) => { if (p.target === targetId) probes.push({ ...p, at: clock.now() }); });
    service.start();
    try {
      await driveReal(clock, service, () => probes.some((p) => p.ok));
      assert.equal(readHealth(view, index), true);

      await target.kill();
      const killed = probes.length;
      await driveReal(clock, service, () => !readHealth(view, index));
      const sinceKill = probes.slice(killed);
      assert.deepEqual(sinceKill.map((p) => p.ok), new Array(FALL).fill(false), `down on exactly failure ${FALL}`);
      assert.equal(sinceKill[FALL - 1].at - sinceKill[0].at, (FALL - 1) * INTERVAL_MS, 'the failures came one interval apart');
      const failure = service.status().subjects[index].targets[0].last!;
      assert.equal(failure.ok, false);
      assert.equal(failure.reason, kind === 'dns' ? 'timeout' : 'refused', failure.detail);

      await target.restore();
      const restored = probes.length;
      await driveReal(clock, service, () => readHealth(view, index));
      assert.deepEqual(probes.slice(restored).map((p) => p.ok), new Array(RISE).fill(true), `up on exactly success ${RISE}`);
    } finally {
      service.stop();
    }
  });
}

test('https: the SNI name is sent, and verification on against a self-signed certificate fails with reason tls', async () => {
  const { service, view, clock } = newService(tempStateFile());
  service.start();
  try {
    await driveReal(clock, service, () => !readHealth(view, 4));
    const last = service.status().subjects[4].targets[0].last!;
    assert.equal(last.reason, 'tls', last.detail);
    assert.ok(https.seen.serverNames.includes('fra.cdn.test'), `SNI seen: ${https.seen.serverNames.join(',')}`);
    assert.equal(readHealth(view, 1), true, 'the same server with verification off is up');
    assert.equal(service.metricsSnapshot().targets.find((t) => t.id === 'sin-https-verified')!.failures.tls, FALL);
  } finally {
    service.stop();
  }
});

test('http: a wrong status or a missing body text fails with its own reason', async () => {
  const wrong = await startHttpTarget((req, res) => { res.writeHead(req.url === '/503' ? 503 : 200).end('something else'); });
  const subjects = ['ams', 'fra'];
  const config = parseProbesConfig(parseYamlText('probes.yaml', [
    'defaults: { interval: 100ms, timeout: 50ms, fall: 1 }',
    'cut_off: { enabled: false }',
    'pops:',
    `  ams: { probes: [{ kind: http, host: 127.0.0.1, port: ${wrong.port}, path: /503 }] }`,
    `  fra: { probes: [{ kind: http, host: 127.0.0.1, port: ${wrong.port}, path: /, body: "edge ok" }] }`,
    '',
  ].join('\n')), subjects);
  const table = createHealthTable(2);
  const service = new HealthService({ subjects, config, stateFile: tempStateFile(), log: captureLogger().log, table });
  service.start();
  try {
    while (service.status().subjects.some((s) => s.state === 'up')) await nextEvent(service, 'transition');
    const [status, body] = service.status().subjects.map((s) => s.targets[0].last!);
    assert.deepEqual([status.reason, status.detail], ['status', 'status 503']);
    assert.equal(body.reason, 'body');
  } finally {
    service.stop();
    await wrong.kill();
  }
});

test('an override wins over live probes and persists across a restart of the service', async () => {
  const stateFile = tempStateFile();
  const okProbes = (service: HealthService): (() => number) => {
    let ok = 0;
    service.on('probe', (p) => { if (p.target === 'ams-http' && p.ok) ok++; });
    return () => ok;
  };
  const first = newService(stateFile);
  const firstOk = okProbes(first.service);
  first.service.start();
  try {
    await driveReal(first.clock, first.service, () => firstOk() >= 1);
    first.service.setOverride('ams', 'force-down', 'planned maintenance', null);
    assert.equal(readHealth(first.view, 0), false);
    // Healthy probes keep succeeding and do not undo it.
    await driveReal(first.clock, first.service, () => firstOk() >= 4);
    assert.equal(readHealth(first.view, 0), false);
  } finally {
    first.service.stop();
  }
  const second = newService(stateFile);
  const secondOk = okProbes(second.service);
  assert.equal(readHealth(second.view, 0), false, 'restored from the state file before probing');
  second.service.start();
  try {
    await driveReal(second.clock, second.service, () => secondOk() >= 3);
    const ams = second.service.status().subjects[0];
    assert.deepEqual([ams.state, ams.probeState, ams.override?.kind, ams.override?.reason], ['down', 'up', 'force-down', 'planned maintenance']);
    second.service.setOverride('ams', 'undrain', 'maintenance over', null);
    assert.equal(readHealth(second.view, 0), true);
  } finally {
    second.service.stop();
  }
});
