// What the offline commands (validate, explain, diff) share: settings with
// their own extra flags, and geo data, each reporting errors the same way.

import { ConfigErrors } from '../config/errors.ts';
import { resolveSettings, type ExtraOptions, type Settings } from '../config/settings.ts';
import { loadGeo, type LoadedGeo } from '../geo-context.ts';

interface ResolvedCommand {
  settings: Settings;
  positionals: string[];
  extra: Record<string, string | boolean | string[] | undefined>;
}

function report(err: ConfigErrors): void {
  for (const e of err.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
}

/** Settings plus the command's own flags; on bad usage, reports and returns exit code 2. */
export function resolveCommand(args: string[], extra: ExtraOptions): ResolvedCommand | number {
  try {
    return resolveSettings(args, process.env, process.cwd(), extra);
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    report(err);
    return 2;
  }
}

/** The geo data; on an invalid catalog, networks file or database, reports and returns exit code 1. */
export function loadGeoForCommand(settings: Settings): LoadedGeo | number {
  try {
    return loadGeo(settings);
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    report(err);
    return 1;
  }
}
