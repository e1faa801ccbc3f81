// Real HTTP, HTTPS, TCP and DNS targets on loopback, probed by the real
// transports: kill → down within interval × fall + timeout + 100 ms;
// restore → up after exactly `rise` successes; overrides win and persist
// across a restart of the service; TLS verification and SNI are real.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseYamlText } from '../../server/config/yaml-source.ts';
import { parseProbesConfig } from '../../server/health/config.ts';
import { HealthService, type ProbeEvent } from '../../server/health/service.ts';
import { createHealthTable, readHealth } from '../../server/health/table.ts';
import { selfSignedCertificate, startDnsTarget, startHttpTarget, startHttpsTarget, startTcpTarget, type Target } from '../fixtures/health/targets.ts';
import { captureLogger, nextEvent, tempStateFile } from '../unit/health/helpers.ts';

const INTERVAL_MS = 300;
const TIMEOUT_MS = 150;
const FALL = 2;
const RISE = 2;
const DOWN_BOUND_MS = INTERVAL_MS * FALL + TIMEOUT_MS + 100;
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

function newService(stateFile: string): { service: HealthService; view: Int32Array } {
  const table = createHealthTable(SUBJECTS.length);
  const config = parseProbesConfig(parseYamlText('probes.yaml', yaml), SUBJECTS);
  const service = new HealthService({ subjects: SUBJECTS, config, stateFile, log: captureLogger().log, table });
  return { service, view: new Int32Array(table) };
}

/** Resolves when subject `index` reads `up` in the table, with the time it took. */
async function waitForTable(service: HealthService, view: Int32Array, index: number, up: boolean, limitMs: number): Promise<number> {
  const started = performance.now();
  while (readHealth(view, index) !== up) {
    const left = limitMs - (performance.now() - started);
    if (left <= 0) break;
    await nextEvent(service, 'transition', left).catch((err: Error) => { if (err.name !== 'AbortError' && err.name !== 'TimeoutError') throw err; });
  }
  assert.equal(readHealth(view, index), up, `subject ${SUBJECTS[index]} should be ${up ? "up" : "down"} within ${limitMs} ms: ${JSON.stringify(service.status())}`);
  return performance.now() - started;
}

for (const [index, kind] of [[0, 'http'], [1, 'https'], [2, 'tcp'], [3, 'dns']] as const) {
  test(`${kind}: a killed target is down within interval × fall + timeout + 100 ms, and up after exactly rise successes`, async () => {
    const { service, view } = newService(tempStateFile());
    const target = { http, https, tcp, dns }[kind];
    const probes: ProbeEvent[] = [];
    const targetId = service.status().subjects[index].targets[0].id;
    service.on('probe', (p) => { if (p.target === targetId) probes.push(p); });
    service.start();
    try {
      while (!probes.some((p) => p.ok)) await nextEvent(service, 'probe');
      assert.equal(readHealth(view, index), true);

      await target.kill();
      const downMs = await waitForTable(service, view, index, false, DOWN_BOUND_MS);
      const failure = service.status().subjects[index].targets[0].last!;
      assert.equal(failure.ok, false);
      assert.equal(failure.reason, kind === 'dns' ? 'timeout' : 'refused', failure.detail);

      await target.restore();
      const before = probes.length;
      const upMs = await waitForTable(service, view, index, true, INTERVAL_MS * RISE + TIMEOUT_MS + 100);
      const sinceRestore = probes.slice(before);
      assert.equal(sinceRestore.filter((p) => p.ok).length, RISE, 'up on exactly the rise-th success');
      process.stdout.write(`# ${kind}: down after ${downMs.toFixed(0)} ms (bound ${DOWN_BOUND_MS}), up again ${upMs.toFixed(0)} ms after restore\n`);
    } finally {
      service.stop();
    }
  });
}

test('https: the SNI name is sent, and verification on against a self-signed certificate fails with reason tls', async () => {
  const { service, view } = newService(tempStateFile());
  service.start();
  try {
    await waitForTable(service, view, 4, false, DOWN_BOUND_MS + INTERVAL_MS);
    const last = service.status().subjects[4].targets[0].last!;
    assert.equal(last.reason, 'tls', last.detail);
    assert.ok(https.seen.serverNames.includes('fra.cdn.test'), `SNI seen: ${https.seen.serverNames.join(',')}`);
    assert.equal(readHealth(view, 1), true, 'the same server with verification off is up');
    assert.ok(service.metricsSnapshot().targets.find((t) => t.id === 'sin-https-verified')!.failures.tls >= FALL);
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
  const first = newService(stateFile);
  first.service.start();
  try {
    await nextEvent(first.service, 'probe');
    first.service.setOverride('ams', 'force-down', 'planned maintenance', null);
    assert.equal(readHealth(first.view, 0), false);
    // Healthy probes keep succeeding and do not undo it.
    let ok = 0;
    while (ok < 3) if ((await nextEvent(first.service, 'probe'))[0].target === 'ams-http') ok++;
    assert.equal(readHealth(first.view, 0), false);
  } finally {
    first.service.stop();
  }
  const second = newService(stateFile);
  assert.equal(readHealth(second.view, 0), false, 'restored from the state file before probing');
  second.service.start();
  try {
    let ok = 0;
    while (ok < 3) if ((await nextEvent(second.service, 'probe'))[0].target === 'ams-http') ok++;
    const ams = second.service.status().subjects[0];
    assert.deepEqual([ams.state, ams.probeState, ams.override?.kind, ams.override?.reason], ['down', 'up', 'force-down', 'planned maintenance']);
    second.service.setOverride('ams', 'undrain', 'maintenance over', null);
    assert.equal(readHealth(second.view, 0), true);
  } finally {
    second.service.stop();
  }
});
