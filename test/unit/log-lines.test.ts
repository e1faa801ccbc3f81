// The duplicate-key check that guards every log line of the integration
// suite must see what JSON.parse hides.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { createLogger } from '../../server/log/logger.ts';
import { duplicateKeys } from '../helpers/log-lines.ts';

test('a repeated key is found at any depth; JSON.parse alone would keep the last silently', () => {
  const line = '{"level":30,"pop":"ams","msg":"x","pop":"lhr","nested":{"a":1,"b":{"c":1,"c":2}}}';
  assert.equal(JSON.parse(line).pop, 'lhr', 'the instance id is lost to a plain parser');
  assert.deepEqual(duplicateKeys(line), ['pop', 'nested.b.c']);
  assert.deepEqual(duplicateKeys('{"a":{"x":1},"b":{"x":1},"list":[{"x":1},{"x":2}]}'), [], 'equal keys in different objects are fine');
});

test('the server logger names this instance "instance", so a line about another PoP ("subject") cannot collide with it', () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done(); } });
  const log = createLogger('info', 'ams', sink).child({ module: 'admin' });
  log.info({ subject: 'lhr', action: 'drain' }, 'override set');
  assert.equal(lines.length, 1);
  assert.deepEqual(duplicateKeys(lines[0]), []);
  const parsed = JSON.parse(lines[0]);
  assert.equal(parsed.instance, 'ams');
  assert.equal(parsed.subject, 'lhr');
  assert.equal(parsed.pop, undefined);
  // pino itself does not guard against a repeated key: the names must.
  const raw: string[] = [];
  pino({ base: { instance: 'ams' } }, new Writable({ write(chunk, _e, done) { raw.push(String(chunk)); done(); } })).info({ instance: 'lhr' }, 'clash');
  assert.deepEqual(duplicateKeys(raw[0]), ['instance']);
});
