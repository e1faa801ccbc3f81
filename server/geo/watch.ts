// Watches a GeoIP database file and swaps in each new version. geoipupdate
// writes a temporary file and renames it into place, so the directory is
// watched (a watch on the file itself would follow the old inode). Events are
// debounced; the load runs on the thread that called this (the main thread,
// never a DNS worker), and only a file that loads and validates is handed to
// onNew: a truncated or corrupt one goes to onRejected and the old database
// keeps serving.

import { watch, statSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadGeoDatabase, type GeoDatabase, type GeoDatabaseOptions } from './database.ts';

export interface GeoWatchOptions extends GeoDatabaseOptions {
  /** Quiet time after the last event before loading (default 250 ms). */
  debounceMs?: number;
  /** The database serving now, so that an event that changed nothing loads nothing. */
  current?: GeoDatabase | null;
  /** Keep the process alive for the watch alone (tests); default false. */
  persistent?: boolean;
}

/**
 * Calls onNew(db) for every new valid version of `path` and onRejected(err)
 * for every new version that fails to load. `options` is read again at each
 * load, so a caller that reloads custom networks can update options.networks.
 * Returns a function that stops watching.
 */
export function watchGeoDatabase(
  path: string,
  onNew: (db: GeoDatabase) => void,
  onRejected: (err: Error) => void,
  options: GeoWatchOptions = {},
): () => void {
  const name = basename(path);
  const debounceMs = options.debounceMs ?? 250;
  const persistent = options.persistent ?? false;
  let seen = options.current ? identity(options.current.fileIno, options.current.fileSize, options.current.fileMtimeMs) : '';
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const check = (): void => {
    timer = null;
    if (stopped) return;
    let now: string;
    try {
      const stat = statSync(path);
      now = identity(stat.ino, stat.size, stat.mtimeMs);
    } catch {
      return; // between unlink and rename: the rename brings another event
    }
    if (now === seen) return;
    seen = now;
    let db: GeoDatabase;
    try {
      db = loadGeoDatabase(path, options);
    } catch (err) {
      onRejected(err as Error);
      return;
    }
    onNew(db);
  };

  const watcher: FSWatcher = watch(dirname(path), { persistent }, (_event, filename) => {
    if (stopped || (filename !== null && filename !== name)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    if (!persistent) timer.unref();
  });
  watcher.on('error', (err) => onRejected(err));

  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    watcher.close();
  };
}

function identity(ino: number, size: number, mtimeMs: number): string {
  return `${ino}:${size}:${mtimeMs}`;
}
