// Flap damping: a flapping target must not make answers change more often
// than rise/fall allow.
//
// Scaling: the scenario is interval 2 s, a target alternating every
// 500 ms, for 30 s. Here every time is divided by 20: interval 100 ms,
// timeout 50 ms, alternation every 25 ms, for 1.5 s (the same 15 probes per
// target and the same 4 alternations per interval). fall 2 and rise 3 are
// unchanged. A second target uses interval 110 ms so the probe times drift
// through the alternation phase (up, up, up, down, down, …): the worst case
// for hysteresis, which must still hold.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { readHealth } from '../../../server/health/table.ts';
import { defaultTransports } from '../../../server/health/transports.ts';
import { makeService, scriptedTransport } from './helpers.ts';

const RISE = 3;
const FALL = 2;

type Entry = { kind: 'probe'; target: string; ok: boolean } | { kind: 'transition'; subject: string; to: 'up' | 'down' };

/** Every transition must be preceded by at least fall failures (down) or rise successes (up) since the previous one. */
function assertHysteresisHeld(log: Entry[], subject: string, target: string): { probes: number; transitions: number } {
  let streakOk = 0;
  let streakFail = 0;
  let probes = 0;
  let transitions = 0;
  for (const entry of log) {
    if (entry.kind === 'probe' && entry.target === target) {
      probes++;
      if (entry.ok) { streakOk++; streakFail = 0; } else { streakFail++; streakOk = 0; }
    } else if (entry.kind === 'transition' && entry.subject === subject) {
      transitions++;
      if (entry.to === 'down') assert.ok(streakFail >= FALL, `${subject} went down after ${streakFail} failure(s) in a row; fall is ${FALL}`);
      else assert.ok(streakOk >= RISE, `${subject} came up after ${streakOk} success(es) in a row; rise is ${RISE}`);
    }
  }
  // A full down-and-up cycle needs at least fall + rise probes.
  assert.ok(transitions <= Math.floor((2 * probes) / (RISE + FALL)) + 1, `${transitions} transitions from ${probes} probes`);
  return { probes, transitions };
}

function record(service: ReturnType<typeof makeService>['service']): Entry[] {
  const log: Entry[] = [];
  service.on('probe', (p) => log.push({ kind: 'probe', target: p.target, ok: p.ok }));
  service.on('transition', (t) => log.push({ kind: 'transition', subject: t.subject, to: t.to }));
  return log;
}

test('a real HTTP target alternating up/down every 25 ms for 1.5 s (scaled 1:20) never beats rise/fall', async () => {
  const started = performance.now();
  const flapPeriodMs = 25;
  const server: Server = createServer((_req, res) => {
    const up = Math.floor((performance.now() - started) / flapPeriodMs) % 2 === 0;
    res.writeHead(up ? 200 : 503).end(up ? 'ok' : 'unavailable');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const yaml = [
    `defaults: { interval: 100ms, timeout: 50ms, fall: ${FALL}, rise: ${RISE} }`,
    'cut_off: { enabled: false }',
    'targets:',
    `  steady: { kind: http, host: 127.0.0.1, port: ${port}, path: /steady }`,
    `  drift: { kind: http, host: 127.0.0.1, port: ${port}, path: /drift, interval: 110ms }`,
    'pops:',
    '  ams: { probes: [steady] }',
    '  fra: { probes: [drift] }',
    '',
  ].join('\n');
  const { service } = makeService(yaml, ['ams', 'fra'], defaultTransports.http);
  const log = record(service);
  service.start();
  await new Promise((r) => setTimeout(r, 1500));
  service.stop();
  server.close();
  const steady = assertHysteresisHeld(log, 'ams', 'steady');
  const drift = assertHysteresisHeld(log, 'fra', 'drift');
  assert.ok(steady.probes >= 10 && drift.probes >= 10, `enough probes ran (${steady.probes}, ${drift.probes})`);
  const flapsSeen = log.filter((e) => e.kind === 'probe' && e.target === 'drift').map((e) => (e as { ok: boolean }).ok);
  assert.ok(flapsSeen.includes(true) && flapsSeen.includes(false), 'the drifting probe saw both states');
});

test('results alternating on every probe never reach fall failures in a row: the answer never changes', async () => {
  let n = 0;
  const { service, view } = makeService(`defaults: { interval: 20ms, timeout: 10ms, fall: ${FALL}, rise: ${RISE} }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => n++ % 2 === 0));
  const log = record(service);
  service.start();
  while (n < 30) await new Promise((r) => service.once('probe', r));
  service.stop();
  const { transitions } = assertHysteresisHeld(log, 'ams', 'a');
  assert.equal(transitions, 0);
  assert.equal(readHealth(view, 0), true);
});

test('the worst pattern (fall failures then rise successes, repeated) changes the answer exactly as often as allowed', async () => {
  const pattern = [false, false, true, true, true];
  let n = 0;
  const { service } = makeService(`defaults: { interval: 20ms, timeout: 10ms, fall: ${FALL}, rise: ${RISE} }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => pattern[n++ % pattern.length]));
  const log = record(service);
  service.start();
  while (n < 30) await new Promise((r) => service.once('probe', r));
  service.stop();
  const { probes, transitions } = assertHysteresisHeld(log, 'ams', 'a');
  // Two transitions per full pattern of five probes, one more once a partial pattern has its two failures.
  assert.equal(transitions, 2 * Math.floor(probes / pattern.length) + (probes % pattern.length >= FALL ? 1 : 0));
});
