// dnstap on the main thread: opens the output (a bad file is a start-up
// error, exit 2), creates one ring per DNS worker and the control block,
// starts the writer thread, hands each worker its part, reports the counts
// for /metrics and closes everything in order at shutdown (after the DNS
// workers, so the last frames are written before STOP).

import { constants, openSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ConfigError, ConfigErrors } from '../config/errors.ts';
import type { Settings } from '../config/settings.ts';
import type { Logger } from '../log/logger.ts';
import { CONNECTED, CONNECTIONS, createControl } from './control.ts';
import type { DnstapWorkerConfig } from './producer.ts';
import { createRing, ringStats } from './ring.ts';
import { parseDnstapTarget, type DnstapOutput } from '../config/dnstap-target.ts';
import type { FromWriterThread, ToWriterThread, WriterThreadData } from './writer-thread.ts';

export interface DnstapStats {
  /** Frames queued by the DNS workers. */
  frames: number;
  /** Frames dropped because a worker's queue was full (collector slow or gone). */
  dropped: number;
  connected: boolean;
  connections: number;
}

interface DnstapService {
  /** What DNS worker `index` needs, with the listen addresses as bound (ports resolved). */
  workerConfig(index: number, listen: Array<{ host: string; port: number }>): DnstapWorkerConfig;
  stats(): DnstapStats;
  close(): Promise<void>;
}

/** The stats of a server without dnstap. */
export const DNSTAP_OFF: DnstapStats = { frames: 0, dropped: 0, connected: false, connections: 0 };

/**
 * Opens a file output: created or truncated (a Frame Streams file holds one
 * stream), never through a symbolic link.
 */
function openOutputFile(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o640);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symbolic link' : (err as Error).message;
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', '--dnstap', null, '/dnstap', `dnstap: cannot open ${path} for writing (${reason}); name a writable file`)]);
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function startDnstap(settings: Settings, log: Logger): DnstapService {
  const parsed = parseDnstapTarget(settings.dnstap!);
  if (typeof parsed === 'string') throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', '--dnstap', null, '/dnstap', `dnstap: ${parsed}`)]);
  if (settings.dnstapSample === 0) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', '--dnstap-sample', null, '/dnstap_sample', 'dnstap-sample: must be above 0 while dnstap is on (turn dnstap off instead)')]);
  }
  const output: DnstapOutput = parsed.kind === 'file' ? { ...parsed, fd: openOutputFile(parsed.path) } : parsed;
  const queueBytes = settings.dnstapQueueKb * 1024;
  const rings = Array.from({ length: settings.workers }, () => createRing(queueBytes));
  const control = createControl();
  const controlView = new Int32Array(control);
  const threadData: WriterThreadData = {
    output, rings, control, logLevel: settings.logLevel, pop: settings.pop,
    // As much again as the workers' queues may wait on the output before draining pauses.
    highWater: queueBytes * settings.workers,
  };
  const thread = new Worker(new URL('./writer-thread.ts', import.meta.url), { workerData: threadData });
  // The server's own sockets and threads keep the process alive; this thread must not keep a failed start-up running.
  thread.unref();
  thread.on('error', (err) => log.error({ err: err.message, stack: err.stack }, 'dnstap writer thread failed; dnstap frames are dropped'));
  log.info({ dnstap: settings.dnstap, messages: settings.dnstapMessages, sample: settings.dnstapSample, queue_kb: settings.dnstapQueueKb }, 'dnstap on');
  return {
    workerConfig: (index, listen) => ({
      ring: rings[index], control, identity: settings.pop, version: `popsteer ${VERSION}`,
      queries: settings.dnstapMessages.includes('auth_query'), responses: settings.dnstapMessages.includes('auth_response'),
      sample: settings.dnstapSample, listen,
    }),
    stats: () => {
      let frames = 0;
      let dropped = 0;
      for (const ring of rings) {
        const s = ringStats(ring);
        frames += s.frames;
        dropped += s.dropped;
      }
      return { frames, dropped, connected: Atomics.load(controlView, CONNECTED) === 1, connections: Atomics.load(controlView, CONNECTIONS) };
    },
    close: () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { void thread.terminate().then(() => resolve()); }, 3000);
      thread.on('message', (m: FromWriterThread) => { if (m.type === 'closed') { clearTimeout(timer); resolve(); } });
      thread.once('exit', () => { clearTimeout(timer); resolve(); });
      thread.postMessage({ type: 'close' } satisfies ToWriterThread);
    }),
  };
}
