// No function in server/ is longer than 80 lines (blank lines and comments
// aside) without saying why. The length is eslint's max-lines-per-function
// (eslint.config.js, part of `make lint`); this test keeps that rule in place
// and makes every exemption carry its reason after "--".

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SERVER, tsFilesUnder } from '../helpers/import-graph.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

test('eslint holds server/ functions to 80 lines', () => {
  const config = readFileSync(`${REPO}eslint.config.js`, 'utf8');
  assert.match(config, /files: \['server\/\*\*\/\*\.ts'\],\s*rules: \{\s*'max-lines-per-function': \['error', \{ max: 80, skipBlankLines: true, skipComments: true/);
});

/** Exemptions from the length rule in `text` that give no reason (or a token one). */
export function unexplainedExemptions(text: string): string[] {
  return [...text.matchAll(/eslint-disable(?:-next-line|-line)?\s+([^\n*]*max-lines-per-function[^\n*]*)/g)]
    .map((m) => m[1].trim())
    .filter((directive) => !/--\s*\S.{19,}/.test(directive));
}

test('every longer function says why', () => {
  const missing: string[] = [];
  let exemptions = 0;
  for (const path of tsFilesUnder(SERVER)) {
    const text = readFileSync(path, 'utf8');
    exemptions += (text.match(/max-lines-per-function/g) ?? []).length;
    for (const directive of unexplainedExemptions(text)) missing.push(`${relative(REPO, path)}: ${directive}`);
  }
  assert.deepEqual(missing, [], 'write the reason after "--" (at least a sentence)');
  assert.ok(exemptions > 0, 'the scan finds the exemptions that exist');
});

test('the scan tells a reason from none', () => {
  assert.deepEqual(unexplainedExemptions('// eslint-disable-next-line max-lines-per-function\nfunction f() {}'), ['max-lines-per-function']);
  assert.deepEqual(unexplainedExemptions('// eslint-disable-next-line max-lines-per-function -- ok\n'), ['max-lines-per-function -- ok']);
  assert.deepEqual(unexplainedExemptions('// eslint-disable-next-line max-lines-per-function -- one list of every metric, read as a table\n'), []);
});
