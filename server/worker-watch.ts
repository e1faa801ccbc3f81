// How the main thread watches a DNS worker: its error reports go to the log,
// its start-up resolves when it listens (or fails with why it cannot), and
// after that a crash is logged whole — message and stack — before the
// server is told it lost a worker.
//
// A lost worker stops the whole server (unfit first, then the drain, exit 1)
// rather than being restarted in place: an exception nothing in the worker
// caught is a bug, the state it left cannot be trusted, and a worker that
// crashes again on the same input would loop while the instance stays
// announced. The service manager restarts the process whole, and the anycast
// route follows fitness meanwhile.

import type { Worker } from 'node:worker_threads';
import { ConfigError, ConfigErrors } from './config/errors.ts';
import type { FromWorker } from './dns-worker.ts';
import type { Logger } from './log/logger.ts';

interface WorkerWatch {
  /** Resolves once the worker listens; rejects when it cannot (ConfigErrors for a bind failure: exit 2). */
  listening: Promise<void>;
}

/** `onLost(code)` is called when the worker ends after it listened, unless `stopping()` says the server is stopping anyway. */
export function watchWorker(worker: Worker, index: number, log: Logger, stopping: () => boolean, onLost: (code: number) => void): WorkerWatch {
  let listened = false;
  const listening = new Promise<void>((resolveListening, reject) => {
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'listening') {
        listened = true;
        resolveListening();
      } else if (message.type === 'error') {
        log.error({ worker: message.index, err: message.message, stack: message.stack }, 'DNS worker error');
        if (message.message.startsWith('cannot listen')) {
          reject(new ConfigErrors([new ConfigError('POPSTEER_ERR_LISTEN', 'listen', null, '/listen', message.message)]));
        }
      }
    });
    worker.on('error', (err) => {
      log.fatal({ worker: index, err: err.message, stack: err.stack }, 'DNS worker crashed; stopping the server (exit 1) for the service manager to restart it');
      reject(err);
    });
    worker.once('exit', (code) => {
      reject(new Error(`DNS worker ${index} exited with code ${code} before it listened`));
      if (!listened || stopping()) return;
      log.fatal({ worker: index, code }, 'DNS worker exited; stopping');
      onLost(code);
    });
  });
  return { listening };
}
