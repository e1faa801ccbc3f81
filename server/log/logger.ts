// Structured JSON logs (pino). Every line carries `instance`, this server's
// PoP id, so logs from many instances can be merged. A line about some PoP
// names it `subject`; no call site may use `instance` (or the old `pop`) as a
// field, because JSON parsers keep only the last of two equal keys and the
// instance id would be lost in log pipelines. test/helpers/server.ts checks
// every line the integration suite sees.

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, instance: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { instance }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ dest: 1, sync: true }));
}
