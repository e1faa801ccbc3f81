// Files popsteer writes for itself (the override state file, cached GeoIP
// indexes) live in a directory only the daemon's user may change, and are
// never reached through a symbolic link. A local user who could plant a link
// or a file there could otherwise make a root-run server overwrite any file,
// or feed it overrides and lookup tables of their choosing.
//
// - Directories are created with mode 0700 when missing; an existing one must
//   be a real directory (not a link), owned by this process's effective user
//   and not writable by group or others.
// - Writes go to a new temporary file with a random name in that directory,
//   opened with O_CREAT|O_EXCL|O_NOFOLLOW (never an existing file, never a
//   link), fsynced, renamed over the target, and the directory fsynced: a
//   crash leaves either the old or the new content.
// - Reads open with O_NOFOLLOW and check the opened file (fstat), so what is
//   checked is what is read.
//
// This module imports nothing else of the project: config, health and geo
// all use it.

import { randomBytes } from 'node:crypto';
import {
  closeSync, constants, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A path popsteer refuses to use, with what to change in the message. */
export class UnsafePathError extends Error {
  readonly path: string;
  /** What is wrong and what to change, without the path. */
  readonly problem: string;
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.name = 'UnsafePathError';
    this.path = path;
    this.problem = problem;
  }
}

const GROUP_OR_OTHER_WRITABLE = 0o022;

function effectiveUid(): number {
  return process.geteuid?.() ?? 0;
}

/** The ownership and mode rules every directory and file here must meet. */
function checkOwnership(path: string, stats: Stats, what: 'directory' | 'file'): void {
  const uid = effectiveUid();
  if (stats.uid !== uid) {
    throw new UnsafePathError(path, `${what} is owned by uid ${stats.uid}, not by this process's user (uid ${uid}); chown it to that user or choose another path`);
  }
  if ((stats.mode & GROUP_OR_OTHER_WRITABLE) !== 0) {
    throw new UnsafePathError(path, `${what} is writable by group or others (mode ${(stats.mode & 0o777).toString(8)}); chmod go-w it`);
  }
}

/**
 * Makes `dir` (and missing parents) with mode 0700 if it does not exist, then
 * checks it: a directory, not a symbolic link, owned by this user, not
 * writable by group or others. Throws UnsafePathError otherwise.
 */
export function ensurePrivateDirectory(dir: string): void {
  let stats: Stats;
  try {
    stats = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UnsafePathError(dir, `cannot inspect: ${(err as Error).message}`);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (mkdirErr) {
      throw new UnsafePathError(dir, `cannot create the directory: ${(mkdirErr as Error).message}`);
    }
    stats = lstatSync(dir);
  }
  if (stats.isSymbolicLink()) throw new UnsafePathError(dir, 'directory is a symbolic link; give the real directory instead');
  if (!stats.isDirectory()) throw new UnsafePathError(dir, 'is not a directory');
  checkOwnership(dir, stats, 'directory');
}

/** Checks an existing file at `file` (a missing one is fine): a regular file, not a link, ours, not writable by others. */
export function checkExistingFile(file: string): void {
  let stats: Stats;
  try {
    stats = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UnsafePathError(file, `cannot inspect: ${(err as Error).message}`);
  }
  if (stats.isSymbolicLink()) throw new UnsafePathError(file, 'file is a symbolic link; remove it (popsteer writes a regular file there)');
  if (!stats.isFile()) throw new UnsafePathError(file, 'is not a regular file');
  checkOwnership(file, stats, 'file');
}

/** The directory's own descriptor, fsynced so that a rename inside it is durable (best effort: some file systems refuse). */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // the data is in place; only the rename's durability is best effort here
  }
}

function writeFully(fd: number, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written, bytes.length - written);
}

/**
 * Replaces `file` with `parts` atomically through an exclusive, non-following
 * temporary file with a random name in the same (checked) directory.
 * `mode` applies to the new file. Throws UnsafePathError or the I/O error.
 */
export function writeFileSafely(file: string, parts: ReadonlyArray<string | Uint8Array>, mode = 0o600): void {
  const dir = dirname(file);
  ensurePrivateDirectory(dir);
  checkExistingFile(file);
  const temporary = join(dir, `.${basename(file)}.${randomBytes(9).toString('base64url')}.tmp`);
  const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      for (const part of parts) writeFully(fd, typeof part === 'string' ? Buffer.from(part) : part);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
  syncDirectory(dir);
}

/**
 * The content of `file`, or null when it does not exist. The file is opened
 * without following a link, and it and its directory must pass the checks.
 */
export function readFileSafely(file: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new UnsafePathError(file, 'file is a symbolic link; remove it (popsteer reads only a regular file there)');
    throw err;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new UnsafePathError(file, 'is not a regular file');
    checkOwnership(file, stats, 'file');
    const dirStats = lstatSync(dirname(file));
    if (dirStats.isSymbolicLink()) throw new UnsafePathError(dirname(file), 'directory is a symbolic link; give the real directory instead');
    checkOwnership(dirname(file), dirStats, 'directory');
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
