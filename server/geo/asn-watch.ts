// Watches the files of an ASN source and swaps in each new version, like the
// City database (watch.ts): the directories are watched (updates are renamed
// into place), events are debounced, and only a source that loads and
// passes the change guard reaches onNew. The guard: a replacement that
// changes more than `maxChange` of the networks is refused — a truncated
// download or an empty router export looks like that, a routine update
// does not — and the old data keeps serving.

import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError } from '../config/errors.ts';
import { changedShare, fileIdentity, loadAsnSource, type AsnSource } from './asn-source.ts';

export interface AsnWatchOptions {
  /** Largest share of networks a replacement may change (0..1). */
  maxChange: number;
  /** Quiet time after the last event before loading (default 250 ms). */
  debounceMs?: number;
  /** Keep the process alive for the watch alone (tests); default false. */
  persistent?: boolean;
}

/** Calls onNew for each accepted new version and onRejected for each refused one; returns a function that stops watching. */
export function watchAsnSource(
  current: AsnSource,
  onNew: (source: AsnSource, share: number) => void,
  onRejected: (err: Error) => void,
  options: AsnWatchOptions,
): () => void {
  const paths = current.files.map((f) => f.path);
  const debounceMs = options.debounceMs ?? 250;
  const persistent = options.persistent ?? false;
  let serving = current;
  let seen = identities(paths) ?? current.files.map((f) => f.identity).join('|');
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;

  const check = (): void => {
    timer = null;
    if (stopped) return;
    const now = identities(paths);
    if (now === null || now === seen) return; // a file between unlink and rename: its rename brings another event
    seen = now;
    let next: AsnSource;
    try {
      next = loadAsnSource(paths);
    } catch (err) {
      onRejected(err as Error);
      return;
    }
    const share = changedShare(serving, next);
    if (share > options.maxChange) {
      onRejected(new ConfigError('POPSTEER_ERR_ASN_CHANGE', paths.join(', '), null, '',
        `the new ASN data changes ${(share * 100).toFixed(1)}% of the networks (${serving.networks.count} before, ${next.networks.count} now), more than asn_max_change (${(options.maxChange * 100).toFixed(1)}%): refused as a likely broken download, the previous data keeps serving; if the change is meant, restart popsteer (start-up has nothing to compare with) or raise asn_max_change`));
      return;
    }
    serving = next;
    onNew(next, share);
  };

  const names = new Map<string, Set<string>>();
  for (const path of paths) {
    const dir = dirname(path);
    if (!names.has(dir)) names.set(dir, new Set());
    names.get(dir)!.add(basename(path));
  }
  const watchers: FSWatcher[] = [];
  for (const [dir, files] of names) {
    const watcher = watch(dir, { persistent }, (_event, filename) => {
      if (stopped || (filename !== null && !files.has(String(filename)))) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(check, debounceMs);
      if (!persistent) timer.unref();
    });
    watcher.on('error', (err) => onRejected(err));
    watchers.push(watcher);
  }
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}

function identities(paths: readonly string[]): string | null {
  try {
    return paths.map((p) => {
      const stat = statSync(p);
      return fileIdentity(stat.ino, stat.size, stat.mtimeMs);
    }).join('|');
  } catch {
    return null;
  }
}
