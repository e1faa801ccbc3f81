// Shared pieces for the health tests: a logger that keeps its lines, a
// scripted probe transport, a service factory over a parsed config, and
// drivers that move a manual clock from one scheduler wake-up to the next.

import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseYamlText } from '../../../server/config/yaml-source.ts';
import { parseProbesConfig, type ProbeTarget } from '../../../server/health/config.ts';
import { HealthService, type HealthEvents } from '../../../server/health/service.ts';
import { createHealthTable } from '../../../server/health/table.ts';
import type { Clock } from '../../../server/health/clock.ts';
import type { ProbeOutcome, ProbeTransport, ProbeTransports } from '../../../server/health/transports.ts';
import type { ManualClock } from '../../helpers/manual-clock.ts';

export interface CapturedLogger {
  log: Logger;
  lines: Array<Record<string, unknown>>;
}

export function captureLogger(): CapturedLogger {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n')) if (text) lines.push(JSON.parse(text));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/**
 * A transport whose answer per target is decided by `decide` at call time;
 * `delayMs` makes a target slow (the abort signal still ends it).
 */
export function scriptedTransport(decide: (target: ProbeTarget) => boolean | ProbeOutcome, delayMs: (target: ProbeTarget) => number = () => 0, clock?: Clock): ProbeTransport {
  return (target, signal) => new Promise((resolve) => {
    const answer = (): void => {
      const decision = decide(target);
      resolve(typeof decision === 'boolean' ? (decision ? { ok: true, detail: 'scripted up' } : { ok: false, reason: 'refused', detail: 'scripted down' }) : decision);
    };
    const delay = delayMs(target);
    if (delay <= 0) return answer();
    if (clock) {
      const timer = clock.setTimer(answer, delay);
      signal.addEventListener('abort', () => clock.clearTimer(timer), { once: true });
      return;
    }
    const timer = setTimeout(answer, delay);
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  });
}

export function allKinds(transport: ProbeTransport): ProbeTransports {
  return { http: transport, https: transport, tcp: transport, dns: transport };
}

export function tempStateFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'popsteer-health-')), 'health-state.json');
}

export interface Harness {
  service: HealthService;
  view: Int32Array;
  logs: CapturedLogger;
  stateFile: string;
}

export function makeService(yaml: string, subjects: string[], transport: ProbeTransport, options: { stateFile?: string; clock?: Clock } = {}): Harness {
  const config = parseProbesConfig(parseYamlText('probes.yaml', yaml), subjects);
  const table = createHealthTable(subjects.length);
  const logs = captureLogger();
  const stateFile = options.stateFile ?? tempStateFile();
  const service = new HealthService({ subjects, config, stateFile, log: logs.log, table, transports: allKinds(transport), clock: options.clock });
  return { service, view: new Int32Array(table), logs, stateFile };
}

/** One turn of the event loop: promise chains of scripted probes settle, nothing waits on time. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Scripted probes under a manual clock: fires the scheduler's (and the
 * transports') timers one by one until `done` holds. Each result is in before
 * the clock moves on.
 */
export async function driveScripted(clock: ManualClock, done: () => boolean, maxSteps = 1_000_000): Promise<void> {
  for (let step = 0; step < maxSteps; step++) {
    await settle();
    if (done()) return;
    if (!clock.fireNext()) throw new Error('nothing left to run, and the condition never held');
  }
  throw new Error(`the condition did not hold within ${maxSteps} clock steps`);
}

/**
 * Real probes (sockets) under a manual clock: before the clock moves, every
 * probe in flight reports (an event, however long the machine takes), so no
 * probe can time out because the test machine was slow.
 */
export async function driveReal(clock: ManualClock, service: HealthService, done: () => boolean, maxSteps = 100_000): Promise<void> {
  for (let step = 0; step < maxSteps; step++) {
    while (service.metricsSnapshot().probesInFlight > 0) await nextResult(service);
    if (done()) return;
    if (!clock.fireNext()) throw new Error('nothing left to run, and the condition never held');
  }
  throw new Error(`the condition did not hold within ${maxSteps} clock steps`);
}

/** The next probe that ended, whether it ran ('probe') or could not run here ('not-probed'). */
async function nextResult(service: HealthService): Promise<void> {
  const controller = new AbortController();
  const options = { signal: AbortSignal.any([controller.signal, AbortSignal.timeout(60_000)]) };
  const emitter = service as unknown as NodeJS.EventEmitter;
  try {
    await Promise.race([once(emitter, 'probe', options), once(emitter, 'not-probed', options)]);
  } finally {
    controller.abort();
  }
}

/** The next `name` event, or a rejection after `timeoutMs`; the timeout only stops a test that would hang, so it allows for a loaded machine. */
export async function nextEvent<K extends keyof HealthEvents>(service: HealthService, name: K, timeoutMs = 60_000): Promise<HealthEvents[K]> {
  const signal = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
  return (await once(service as unknown as NodeJS.EventEmitter, name as string, { signal })) as HealthEvents[K];
}
