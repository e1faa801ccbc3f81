// The state and cache files' rules: private directories made with 0700,
// writes through exclusive random temporary files, and refusals (with what
// to change) for symbolic links, group/other-writable places and files of
// another user.

import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ensurePrivateDirectory, readFileSafely, UnsafePathError, writeFileSafely } from '../../../server/fsutil/safe-files.ts';

const root = mkdtempSync(join(tmpdir(), 'popsteer-safe-files-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => join(root, `case-${counter++}`);

const refused = (fn: () => unknown, pattern: RegExp): void => {
  assert.throws(fn, (err: unknown) => err instanceof UnsafePathError && pattern.test(err.message), `expected a refusal matching ${pattern}`);
};

test('a missing directory is made with mode 0700, parents included', () => {
  const dir = join(fresh(), 'state', 'inner');
  ensurePrivateDirectory(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  writeFileSafely(join(dir, 'file.json'), ['{"a":1}\n']);
  assert.equal(readFileSync(join(dir, 'file.json'), 'utf8'), '{"a":1}\n');
  assert.equal(statSync(join(dir, 'file.json')).mode & 0o777, 0o600);
});

test('a write replaces the file whole and leaves no temporary file; a guessable temporary link is never followed', () => {
  const dir = fresh();
  ensurePrivateDirectory(dir);
  const victim = join(fresh(), 'victim');
  mkdirSync(join(victim, '..'), { recursive: true });
  writeFileSync(victim, 'precious\n');
  const file = join(dir, 'state.json');
  // The old scheme's names, planted as links to the victim.
  for (const name of [`${file}.${process.pid}.tmp`, `${file}.tmp`]) symlinkSync(victim, name);
  writeFileSafely(file, ['one\n']);
  writeFileSafely(file, ['two', '\n', Buffer.from('three\n')]);
  assert.equal(readFileSync(file, 'utf8'), 'two\nthree\n');
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the victim is untouched');
  const temporaries = readdirSync(dir).filter((name) => name.startsWith('.state.json.'));
  assert.deepEqual(temporaries, [], 'no temporary file of ours left');
});

test('a symbolic link in place of the file is refused, for writing and for reading', () => {
  const dir = fresh();
  ensurePrivateDirectory(dir);
  const victim = join(dir, 'elsewhere');
  writeFileSync(victim, 'precious\n');
  const file = join(dir, 'state.json');
  symlinkSync(victim, file);
  refused(() => writeFileSafely(file, ['x']), /symbolic link/);
  refused(() => readFileSafely(file), /symbolic link/);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.ok(lstatSync(file).isSymbolicLink(), 'the link itself was left for the operator to see');
});

test('a symbolic link in place of the directory is refused', () => {
  const real = fresh();
  ensurePrivateDirectory(real);
  const link = fresh();
  symlinkSync(real, link);
  refused(() => ensurePrivateDirectory(link), /directory is a symbolic link/);
  refused(() => writeFileSafely(join(link, 'state.json'), ['x']), /symbolic link/);
});

test('a directory or file writable by group or others is refused, with the chmod to run', () => {
  const dir = fresh();
  ensurePrivateDirectory(dir);
  chmodSync(dir, 0o777);
  refused(() => ensurePrivateDirectory(dir), /writable by group or others \(mode 777\); chmod go-w/);
  refused(() => writeFileSafely(join(dir, 'state.json'), ['x']), /writable by group or others/);
  chmodSync(dir, 0o755);
  ensurePrivateDirectory(dir);
  const file = join(dir, 'state.json');
  writeFileSafely(file, ['x']);
  chmodSync(file, 0o666);
  refused(() => readFileSafely(file), /file is writable by group or others/);
  refused(() => writeFileSafely(file, ['y']), /file is writable by group or others/);
});

test('a missing file reads as null; a directory in its place is refused', () => {
  const dir = fresh();
  ensurePrivateDirectory(dir);
  assert.equal(readFileSafely(join(dir, 'absent.json')), null);
  mkdirSync(join(dir, 'sub'));
  refused(() => readFileSafely(join(dir, 'sub')), /not a regular file/);
});

test('a file or directory owned by another user is refused (run as root, checked with uid 65534)', { skip: process.geteuid?.() !== 0 ? 'needs root to chown' : false }, () => {
  const dir = fresh();
  ensurePrivateDirectory(dir);
  const file = join(dir, 'state.json');
  writeFileSafely(file, ['x']);
  chownSync(file, 65534, 65534);
  refused(() => readFileSafely(file), /owned by uid 65534, not by this process's user/);
  refused(() => writeFileSafely(file, ['y']), /owned by uid 65534/);
  chownSync(dir, 65534, 65534);
  refused(() => ensurePrivateDirectory(dir), /directory is owned by uid 65534/);
});
