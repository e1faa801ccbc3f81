// The policy revision record (server/fleet/revision-record.ts): what a
// config directory becomes, what an instance accepts back, and which
// instances a canary revision is meant for; and the revision kept on disk
// (server/fleet/revisions.ts).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  decodePromotion, decodeRevision, encodeRevision, isMeantFor, isSafeRevisionPath, newPromotion, newRevision, readConfigFiles, revisionHash,
} from '../../../server/fleet/revision-record.ts';
import { readKeptRevision } from '../../../server/fleet/revisions.ts';
import { createLogger } from '../../../server/log/logger.ts';

const fields = { author: 'ops@host', message: 'm', canary: [], rollbackOf: null, at: 1_700_000_000_000 };
const file = (path: string, text: string) => ({ path, data: Buffer.from(text).toString('base64') });
const bytesOf = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

function configDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-rev-unit-'));
  mkdirSync(join(dir, 'zones'));
  mkdirSync(join(dir, 'steering'));
  writeFileSync(join(dir, 'zones', 'a.yaml'), 'zone: a\n');
  writeFileSync(join(dir, 'steering', 'www.yaml'), 'name: www\n');
  writeFileSync(join(dir, 'popsteer.yaml'), 'pop: lhr\n');
  writeFileSync(join(dir, '.swp'), 'x');
  symlinkSync('/etc/passwd', join(dir, 'zones', 'link.yaml'));
  return dir;
}

test('a config directory becomes its regular files by relative path, without popsteer.yaml, dot-files or links', () => {
  const files = readConfigFiles(configDir());
  assert.deepEqual(files.map((f) => f.path), ['steering/www.yaml', 'zones/a.yaml']);
  assert.equal(Buffer.from(files[1].data, 'base64').toString(), 'zone: a\n');
});

test('the hash depends on paths and contents, not on their order', () => {
  const a = [file('zones/a.yaml', 'x'), file('zones/b.yaml', 'y')];
  assert.equal(revisionHash(a), revisionHash([...a].reverse()));
  assert.notEqual(revisionHash(a), revisionHash([file('zones/a.yaml', 'x'), file('zones/b.yaml', 'z')]));
  assert.notEqual(revisionHash(a), revisionHash([file('zones/a.yaml', 'x'), file('zones/c.yaml', 'y')]));
});

test('a record round-trips; one whose files do not match its hash, or with an unsafe path, is refused', () => {
  const record = newRevision([file('zones/a.yaml', 'zone: a\n')], { ...fields, canary: ['lhr'] });
  assert.deepEqual(decodeRevision(encodeRevision(record)), record);
  assert.equal(decodeRevision(bytesOf({ ...record, files: [file('zones/a.yaml', 'zone: b\n')] })), null, 'hash mismatch');
  for (const path of ['../etc/passwd', '/etc/passwd', 'zones/../../x', 'zones//a.yaml', '.hidden', '']) {
    assert.equal(isSafeRevisionPath(path), false, path);
    const files = [file(path, 'x')];
    assert.equal(decodeRevision(bytesOf({ ...record, files, hash: revisionHash(files) })), null, path);
  }
  const twice = [file('zones/a.yaml', 'x'), file('zones/a.yaml', 'x')];
  assert.equal(decodeRevision(bytesOf({ ...record, files: twice, hash: revisionHash(twice) })), null, 'a path twice');
  assert.equal(decodeRevision(bytesOf({ ...record, v: 2 })), null, 'a newer version');
  assert.equal(decodeRevision(bytesOf({ ...record, canary: 'lhr' })), null, 'canary not a list');
  assert.equal(decodeRevision(bytesOf({ ...record, rollbackOf: -1 })), null, 'bad rollbackOf');
  assert.equal(decodeRevision(new TextEncoder().encode('{not json')), null);
});

test('promotions decode; a canary revision is meant for its PoPs until promoted, then for all', () => {
  assert.deepEqual(decodePromotion(encodeRevision(newPromotion('ops', 5))), { v: 1, author: 'ops', at: 5 });
  assert.equal(decodePromotion(bytesOf({ v: 1, author: 3, at: 5 })), null);
  const canary = newRevision([], { ...fields, canary: ['lhr', 'fra'] });
  assert.equal(isMeantFor(canary, false, 'lhr'), true);
  assert.equal(isMeantFor(canary, false, 'ams'), false);
  assert.equal(isMeantFor(canary, true, 'ams'), true);
  assert.equal(isMeantFor(newRevision([], fields), false, 'ams'), true);
});

test('the kept revision is read back only when its files still hash to what was applied', () => {
  const state = mkdtempSync(join(tmpdir(), 'popsteer-rev-state-'));
  const log = createLogger('silent', 'test');
  assert.equal(readKeptRevision(state, log), null);
  const dir = join(state, 'revisions', '7');
  mkdirSync(join(dir, 'zones'), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'zones', 'a.yaml'), 'zone: a\n');
  const hash = revisionHash([file('zones/a.yaml', 'zone: a\n')]);
  writeFileSync(join(state, 'revisions', 'current.json'), JSON.stringify({ revision: 7, hash }), { mode: 0o600 });
  assert.deepEqual(readKeptRevision(state, log), { revision: 7, hash, dir });
  writeFileSync(join(dir, 'zones', 'a.yaml'), 'zone: changed\n');
  assert.equal(readKeptRevision(state, log), null);
});
