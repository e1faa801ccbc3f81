// Flap damping: a flapping target must not make answers change more often
// than rise/fall allow.
//
// The scenario: interval 2 s, a target alternating every 500 ms, for 30 s
// (15 probes per target, 4 alternations per interval), fall 2 and rise 3. A
// second target uses interval 2.2 s so the probe times drift through the
// alternation phase (up, up, up, down, down, …): the worst case for
// hysteresis, which must still hold. The scheduler runs on a manual clock and
// the real HTTP target flaps by that clock, so every probe sees exactly the
// state of its moment, however loaded the machine.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { readHealth } from '../../../server/health/table.ts';
import { defaultTransports } from '../../../server/health/transports.ts';
import { ManualClock } from '../../helpers/manual-clock.ts';
import { driveReal, driveScripted, makeService, scriptedTransport } from './helpers.ts';

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

test('a real HTTP target alternating up/down every 500 ms for 30 s never beats rise/fall, on a fixed and on a drifting schedule', async () => {
  const clock = new ManualClock();
  const origin = clock.now();
  const flapPeriodMs = 500;
  const server: Server = createServer((_req, res) => {
    const up = Math.floor((clock.now() - origin) / flapPeriodMs) % 2 === 0;
    res.writeHead(up ? 200 : 503).end(up ? 'ok' : 'unavailable');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const yaml = [
    `defaults: { interval: 2s, timeout: 1s, fall: ${FALL}, rise: ${RISE} }`,
    'cut_off: { enabled: false }',
    'targets:',
    `  steady: { kind: http, host: 127.0.0.1, port: ${port}, path: /steady }`,
    `  drift: { kind: http, host: 127.0.0.1, port: ${port}, path: /drift, interval: 2200ms }`,
    'pops:',
    '  ams: { probes: [steady] }',
    '  fra: { probes: [drift] }',
    '',
  ].join('\n');
  const { service } = makeService(yaml, ['ams', 'fra'], defaultTransports.http, { clock });
  const log = record(service);
  service.start();
  try {
    await driveReal(clock, service, () => clock.now() - origin >= 30_000);
  } finally {
    service.stop();
    server.close();
  }
  const steady = assertHysteresisHeld(log, 'ams', 'steady');
  const drift = assertHysteresisHeld(log, 'fra', 'drift');
  assert.equal(steady.probes, 16, 'probes at 0, 2, …, 30 s');
  assert.equal(drift.probes, 14, 'probes at 0, 2.2, …, 28.6 s');
  const okOf = (target: string): boolean[] => log.filter((e) => e.kind === 'probe' && e.target === target).map((e) => (e as { ok: boolean }).ok);
  // The fixed schedule samples the same phase every time; the drifting one walks through both.
  assert.ok(okOf('steady').every((ok) => ok === okOf('steady')[0]), `steady probes see one phase: ${okOf('steady').join(' ')}`);
  assert.ok(okOf('drift').includes(true) && okOf('drift').includes(false), `the drifting probe saw both states: ${okOf('drift').join(' ')}`);
});

test('results alternating on every probe never reach fall failures in a row: the answer never changes', async () => {
  const clock = new ManualClock();
  let n = 0;
  const { service, view } = makeService(`defaults: { interval: 20ms, timeout: 10ms, fall: ${FALL}, rise: ${RISE} }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => n++ % 2 === 0), { clock });
  const log = record(service);
  service.start();
  try {
    await driveScripted(clock, () => n >= 30);
  } finally {
    service.stop();
  }
  const { transitions } = assertHysteresisHeld(log, 'ams', 'a');
  assert.equal(transitions, 0);
  assert.equal(readHealth(view, 0), true);
});

test('the worst pattern (fall failures then rise successes, repeated) changes the answer exactly as often as allowed', async () => {
  const clock = new ManualClock();
  const pattern = [false, false, true, true, true];
  let n = 0;
  const { service } = makeService(`defaults: { interval: 20ms, timeout: 10ms, fall: ${FALL}, rise: ${RISE} }\ntargets:\n  a: { kind: tcp, host: 127.0.0.1, port: 1 }\npops:\n  ams: { probes: [a] }\n`, ['ams'], scriptedTransport(() => pattern[n++ % pattern.length]), { clock });
  const log = record(service);
  service.start();
  try {
    await driveScripted(clock, () => n >= 30);
  } finally {
    service.stop();
  }
  const { probes, transitions } = assertHysteresisHeld(log, 'ams', 'a');
  assert.equal(probes, 30);
  // Two transitions per full pattern of five probes.
  assert.equal(transitions, 2 * (probes / pattern.length));
});
