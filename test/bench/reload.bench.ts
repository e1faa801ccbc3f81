// How long a policy reload takes on the main thread (load, validate, compile,
// class tries), for an edit of each kind of example policy and for a reload
// that changes nothing. Prints figures; not a test.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadGeo } from '../../server/geo-context.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { REPO_ROOT } from '../helpers/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'popsteer-reload-bench-'));
cpSync(join(REPO_ROOT, 'policies'), dir, { recursive: true });
const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase: [], cacheDir: null });
const timed = (label: string): void => {
  const started = performance.now();
  const result = loadSnapshot(dir, geo.context, 'ams');
  if (!result.snapshot) throw new Error(result.errors.map((e) => e.format()).join('\n'));
  process.stdout.write(`${label.padEnd(52)} ${(performance.now() - started).toFixed(0)} ms\n`);
};
process.stdout.write(`policy reload, ${new Date().toISOString().slice(0, 10)} (node test/bench/reload.bench.ts)\n`);
timed('first load (every policy compiled)');
const edits: Array<[string, string, string, string]> = [
  ['video.yaml', 'weight: 10 }', 'weight: 20 }', 'edit video (one class, no trie)'],
  ['www.yaml', 'ttl: 60', 'ttl: 61', 'edit www (1,948 classes, trie rebuilt)'],
  ['eu.yaml', 'ttl: 60', 'ttl: 59', 'edit eu (geofence, trie rebuilt)'],
];
for (const [file, from, to, label] of edits) {
  const path = join(dir, 'steering', file);
  writeFileSync(path, readFileSync(path, 'utf8').replace(from, to));
  timed(label);
}
timed('reload with nothing changed');
rmSync(dir, { recursive: true, force: true });
