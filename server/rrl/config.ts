// The RRL part of the daemon settings, as the DNS workers receive it.

import type { Settings } from '../config/settings.ts';
import type { RrlConfig } from './limiter.ts';

/** The limiter's configuration, or null when RRL is off (responses per second 0). */
export function rrlConfigOf(settings: Settings): RrlConfig | null {
  if (settings.rrlResponsesPerSecond <= 0) return null;
  return {
    responsesPerSecond: settings.rrlResponsesPerSecond,
    errorsPerSecond: settings.rrlErrorsPerSecond,
    windowSeconds: settings.rrlWindowSeconds,
    slip: settings.rrlSlip,
    exempt: settings.rrlExempt,
  };
}
