// Entry point of the dnstap writer thread (started by dnstap/index.ts): one
// DnstapWriter, closed when the main thread says so.

import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../log/logger.ts';
import type { DnstapOutput } from '../config/dnstap-target.ts';
import { DnstapWriter } from './writer.ts';

export interface WriterThreadData {
  output: DnstapOutput;
  rings: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  highWater: number;
  logLevel: string;
  pop: string;
}

export type ToWriterThread = { type: 'close' };
export type FromWriterThread = { type: 'closed' };

const data = workerData as WriterThreadData;
const port = parentPort!;
const writer = new DnstapWriter({
  output: data.output,
  rings: data.rings,
  control: data.control,
  highWater: data.highWater,
  log: createLogger(data.logLevel, data.pop).child({ module: 'dnstap' }),
});
writer.start();

port.on('message', (message: ToWriterThread) => {
  if (message.type !== 'close') return;
  void writer.close().then(() => {
    port.postMessage({ type: 'closed' } satisfies FromWriterThread);
    port.close();
  });
});
