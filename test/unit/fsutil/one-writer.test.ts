// Files popsteer writes for itself are replaced in one way only: through
// writeFileSafely (server/fsutil/safe-files.ts: a temporary file in the same
// checked directory, O_EXCL|O_NOFOLLOW, fsync, rename, fsync of the
// directory). A second writer would drift from those rules, so any other file
// under server/ that imports or calls Node's whole-file writers or rename
// fails here. Streams to an opened descriptor (the dnstap output) are not
// file replacement and are not checked.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../../../server/', import.meta.url));
const THE_WRITER = 'fsutil/safe-files.ts';
const WRITERS = ['writeFile', 'writeFileSync', 'rename', 'renameSync', 'appendFile', 'appendFileSync', 'copyFile', 'copyFileSync', 'cp', 'cpSync'];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** The whole-file writers `text` imports from node:fs (or fs/promises) or calls as a method (fs.writeFile, fsp.rename). */
export function writersUsedIn(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const used = new Set<string>();
  for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*'(?:node:)?fs(?:\/promises)?'/g)) {
    for (const name of m[1].split(',').map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0])) {
      if (WRITERS.includes(name)) used.add(name);
    }
  }
  for (const m of code.matchAll(/\.(\w+)\s*\(/g)) if (WRITERS.includes(m[1]) && /\b(fs|fsp|promises)\s*$/.test(code.slice(0, m.index))) used.add(m[1]);
  return [...used].sort();
}

test('only fsutil/safe-files.ts writes or renames files under server/', () => {
  const offenders: string[] = [];
  for (const path of filesUnder(SERVER)) {
    const file = relative(SERVER, path);
    const used = writersUsedIn(readFileSync(path, 'utf8'));
    if (file !== THE_WRITER && used.length > 0) offenders.push(`${file}: ${used.join(', ')}`);
  }
  assert.deepEqual(offenders, [], 'write through writeFileSafely (server/fsutil/safe-files.ts) instead');
  assert.deepEqual(writersUsedIn(readFileSync(join(SERVER, THE_WRITER), 'utf8')), ['renameSync'], 'the one writer is seen');
});

test('the checker sees the ways a writer is reached', () => {
  assert.deepEqual(writersUsedIn("import { readFileSync, writeFileSync } from 'node:fs';"), ['writeFileSync']);
  assert.deepEqual(writersUsedIn("import { rename as mv } from 'node:fs/promises';"), ['rename']);
  assert.deepEqual(writersUsedIn('await fs.promises.writeFile(p, x);'), ['writeFile']);
  assert.deepEqual(writersUsedIn('fs.renameSync(a, b);'), ['renameSync']);
  assert.deepEqual(writersUsedIn("// fs.writeFileSync(p) in a comment\nimport { openSync } from 'node:fs';"), []);
});
