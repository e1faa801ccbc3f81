// Operator overrides (drain, force-down, force-up) and their state file.
// The file is replaced atomically (write a temporary file, fsync, rename,
// fsync the directory) so a crash leaves either the old or the new set.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

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

interface StateFile {
  version: 1;
  overrides: Record<string, Override>;
}

/** Overrides from the state file; a missing file is an empty set. Unreadable or malformed files throw. */
export function readOverrides(file: string): Map<string, Override> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const parsed = JSON.parse(text) as StateFile;
  if (parsed?.version !== 1 || typeof parsed.overrides !== 'object' || parsed.overrides === null) {
    throw new Error('not a popsteer health state file (version 1)');
  }
  const result = new Map<string, Override>();
  for (const [subject, o] of Object.entries(parsed.overrides)) {
    const valid = (o.kind === 'drain' || o.kind === 'force-down' || o.kind === 'force-up')
      && typeof o.reason === 'string' && typeof o.since === 'number' && (o.expires === null || typeof o.expires === 'number');
    if (valid) result.set(subject, { kind: o.kind, reason: o.reason, since: o.since, expires: o.expires });
  }
  return result;
}

export function writeOverrides(file: string, overrides: ReadonlyMap<string, Override>): void {
  const content: StateFile = { version: 1, overrides: Object.fromEntries(overrides) };
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    try {
      writeSync(fd, `${JSON.stringify(content, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
  // Make the rename itself durable; some file systems refuse fsync on a directory.
  try {
    const dirFd = openSync(dirname(file), 'r');
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
  } catch {
    // the data is in place; only the rename's durability is best effort here
  }
}
