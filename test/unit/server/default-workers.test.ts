// The default number of DNS workers leaves one core to the kernel's network
// stack (settings.ts defaultWorkers; the measurement is in README
// "Performance"), and an explicit setting still wins.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { defaultWorkers, resolveSettings } from '../../../server/config/settings.ts';

const work = mkdtempSync(join(tmpdir(), 'popsteer-workers-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('one worker fewer than the cores, never fewer than one', () => {
  assert.equal(defaultWorkers(1), 1);
  assert.equal(defaultWorkers(2), 1);
  assert.equal(defaultWorkers(4), 3);
  assert.equal(defaultWorkers(64), 63);
});

test('serve without --workers takes that default for this machine', () => {
  const { settings } = resolveSettings([], {}, work);
  assert.equal(settings.workers, defaultWorkers(availableParallelism()));
});

test('--workers and POPSTEER_WORKERS still set any count', () => {
  assert.equal(resolveSettings(['--workers', '2'], {}, work).settings.workers, 2);
  assert.equal(resolveSettings([], { POPSTEER_WORKERS: '3' }, work).settings.workers, 3);
});
