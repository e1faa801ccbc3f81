// The error codes have one list, ERROR_CODES (server/config/errors.ts): every
// code the server reports is in it, every code in it is reported somewhere,
// the tests assert only on listed codes, and the README's table is the list.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../../server/config/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LISTED = new Set(Object.keys(ERROR_CODES));
const ERRORS_FILE = join(ROOT, 'server/config/errors.ts');

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tsFilesUnder(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** Whole codes named in `text`; a prefix written as POPSTEER_ERR_PROBES_* or …_ is not a code. */
export function codesIn(text: string): string[] {
  return [...text.matchAll(/\bPOPSTEER_ERR_[A-Z0-9_]*[A-Z0-9]\b(?![*…])/g)].map((m) => m[0]);
}

function codesUnder(dir: string, except: string[] = []): Map<string, string> {
  const where = new Map<string, string>();
  for (const file of tsFilesUnder(dir)) {
    if (except.includes(file)) continue;
    for (const code of codesIn(readFileSync(file, 'utf8'))) if (!where.has(code)) where.set(code, file.slice(ROOT.length));
  }
  return where;
}

test('every code in the server is listed in ERROR_CODES', () => {
  const unlisted = [...codesUnder(join(ROOT, 'server'), [ERRORS_FILE])].filter(([code]) => !LISTED.has(code));
  assert.deepEqual(unlisted, [], 'add these to ERROR_CODES in server/config/errors.ts (and the README table)');
});

test('every listed code is reported somewhere in the server', () => {
  const used = codesUnder(join(ROOT, 'server'), [ERRORS_FILE]);
  assert.deepEqual([...LISTED].filter((code) => !used.has(code)), [], 'remove these from ERROR_CODES');
});

test('the tests assert only on listed codes', () => {
  const unlisted = [...codesUnder(join(ROOT, 'test'), [fileURLToPath(import.meta.url)])].filter(([code]) => !LISTED.has(code));
  assert.deepEqual(unlisted, []);
});

test("the README's error table is ERROR_CODES, in order, with the same meanings", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(POPSTEER_ERR_[A-Z0-9_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2].replace(/\\\|/g, '|')]);
  assert.deepEqual(rows, Object.entries(ERROR_CODES));
});

test('the code finder sees codes and skips prefixes', () => {
  assert.deepEqual(codesIn("fail('POPSTEER_ERR_ZONE_RDATA', p); codes POPSTEER_ERR_PROBES_* and `…_TIMEOUT`, POPSTEER_ERR_NETWORK_IPV4_SPACE."),
    ['POPSTEER_ERR_ZONE_RDATA', 'POPSTEER_ERR_NETWORK_IPV4_SPACE']);
});
