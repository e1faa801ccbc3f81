// Structured JSON logs (pino). Every line carries the PoP id so logs from
// many instances can be merged.

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, pop: string): Logger {
  return pino({ level, base: { pop }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }));
}
