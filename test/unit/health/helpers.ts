// Shared pieces for the health unit tests: a logger that keeps its lines, a
// scripted probe transport, and a service factory over a parsed config.

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
import type { ProbeOutcome, ProbeTransport, ProbeTransports } from '../../../server/health/transports.ts';

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
export function scriptedTransport(decide: (target: ProbeTarget) => boolean | ProbeOutcome, delayMs: (target: ProbeTarget) => number = () => 0): ProbeTransport {
  return (target, signal) => new Promise((resolve) => {
    const answer = (): void => {
      const decision = decide(target);
      resolve(typeof decision === 'boolean' ? (decision ? { ok: true, detail: 'scripted up' } : { ok: false, reason: 'refused', detail: 'scripted down' }) : decision);
    };
    const delay = delayMs(target);
    if (delay <= 0) return answer();
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

export function makeService(yaml: string, subjects: string[], transport: ProbeTransport, options: { stateFile?: string; now?: () => number } = {}): Harness {
  const config = parseProbesConfig(parseYamlText('probes.yaml', yaml), subjects);
  const table = createHealthTable(subjects.length);
  const logs = captureLogger();
  const stateFile = options.stateFile ?? tempStateFile();
  const service = new HealthService({ subjects, config, stateFile, log: logs.log, table, transports: allKinds(transport), now: options.now });
  return { service, view: new Int32Array(table), logs, stateFile };
}

/** The next event of `name`, or a rejection after `timeoutMs` (tests stop by themselves). */
export async function nextEvent<K extends keyof HealthEvents>(service: HealthService, name: K, timeoutMs = 5000): Promise<HealthEvents[K]> {
  const signal = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
  return (await once(service as unknown as NodeJS.EventEmitter, name as string, { signal })) as HealthEvents[K];
}
