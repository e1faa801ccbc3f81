// Operator overrides (drain, force-down, force-up) and their state file.
// The file is written and read through fsutil/safe-files.ts: replaced
// atomically through an exclusive temporary file in a directory only the
// daemon's user can change, and never through a symbolic link, so a crash
// leaves either the old or the new set and a local user cannot redirect it.
// The format carries a version; a newer popsteer reads every older version.

import { readFileSafely, writeFileSafely } from '../fsutil/safe-files.ts';

export const OVERRIDE_ACTIONS = ['drain', 'undrain', 'force-down', 'force-up'] as const;
export type OverrideAction = (typeof OVERRIDE_ACTIONS)[number];
export type OverrideKind = Exclude<OverrideAction, 'undrain'>;

export interface Override {
  kind: OverrideKind;
  reason: string;
  /** ms since the epoch */
  since: number;
  /** ms since the epoch, or null for "until undone" */
  expires: number | null;
  /** Who set it, when it came from the fleet (server/fleet): "lhr admin API from 10.0.0.7". */
  author?: string;
}

export const MAX_REASON_LENGTH = 500;

/** A refused override or external push; `code` tells the admin API 404 from 400. */
export class HealthInputError extends Error {
  readonly code: 'POPSTEER_ERR_HEALTH_UNKNOWN_SUBJECT' | 'POPSTEER_ERR_HEALTH_UNKNOWN_TARGET' | 'POPSTEER_ERR_HEALTH_BAD_OVERRIDE';
  constructor(code: HealthInputError['code'], message: string) {
    super(message);
    this.name = 'HealthInputError';
    this.code = code;
  }
}

/** Whether an override makes its subject up or down. */
export function overrideUp(kind: OverrideKind): boolean {
  return kind === 'force-up';
}

/** The state file format this version writes. Bump it with a reader for the old one: upgrades carry drains across. */
export const STATE_FILE_VERSION = 1;

interface StateFile {
  version: number;
  overrides: Record<string, Override>;
}

/** Overrides from the state file; a missing file is an empty set. Unreadable, unsafe or malformed files throw. */
export function readOverrides(file: string): Map<string, Override> {
  const bytes = readFileSafely(file);
  if (bytes === null) return new Map();
  const parsed = JSON.parse(bytes.toString('utf8')) as StateFile;
  if (parsed?.version !== STATE_FILE_VERSION || typeof parsed.overrides !== 'object' || parsed.overrides === null) {
    throw new Error(`not a popsteer health state file (version ${STATE_FILE_VERSION}), or written by a newer popsteer`);
  }
  const result = new Map<string, Override>();
  for (const [subject, o] of Object.entries(parsed.overrides)) {
    const valid = o !== null && typeof o === 'object'
      && (o.kind === 'drain' || o.kind === 'force-down' || o.kind === 'force-up')
      && typeof o.reason === 'string' && typeof o.since === 'number' && (o.expires === null || typeof o.expires === 'number');
    if (!valid) continue;
    result.set(subject, { kind: o.kind, reason: o.reason, since: o.since, expires: o.expires, ...(typeof o.author === 'string' ? { author: o.author } : {}) });
  }
  return result;
}

export function writeOverrides(file: string, overrides: ReadonlyMap<string, Override>): void {
  const content: StateFile = { version: STATE_FILE_VERSION, overrides: Object.fromEntries(overrides) };
  writeFileSafely(file, [`${JSON.stringify(content, null, 2)}\n`]);
}
