// Reloads asked for while another waits in the build thread's queue, not
// yet started, join it (server/builds.ts): a burst of file events builds
// once. A reload asked for after the build began is a build of its own, so
// it reads the files as they are then.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Builder } from '../../../server/builds.ts';
import { createLogger } from '../../../server/log/logger.ts';
import type { LoadResult } from '../../../server/policy/load.ts';
import { REPO_ROOT } from '../../helpers/server.ts';

test('reloads asked for together build once; one asked for once the build began builds again and sees the later edit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-coalesce-'));
  const configDir = join(dir, 'config');
  cpSync(join(REPO_ROOT, 'policies'), configDir, { recursive: true });
  const started: string[] = [];
  let began: () => void = () => {};
  const builder = new Builder({
    configDir, geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase: [], asnMaxChange: 0.2, pop: 'ams', hashRecord: null, dnssecValidityDays: 14,
    cacheDir: join(dir, 'cache'), watchGeo: false,
  }, { started: (reason) => { started.push(reason); began(); }, geoBuilt: () => {}, geoRejected: () => {} }, createLogger('silent', 'test'));
  try {
    await builder.start();
    started.length = 0;
    const burst = [builder.compile('edit 1'), builder.compile('edit 2'), builder.compile('edit 3')];
    assert.equal(burst[1], burst[0], 'the second joins the first, queued and not started');
    assert.equal(burst[2], burst[0]);
    const [first] = await Promise.all(burst);
    assert.deepEqual(started, ['edit 1'], 'one build for the burst');

    const www = join(configDir, 'steering', 'www.yaml');
    const text = readFileSync(www, 'utf8');
    const running = new Promise<void>((resolve) => { began = resolve; });
    const before = builder.compile('before the edit');
    await running;
    writeFileSync(www, text.replace(/ttl: \d+/, 'ttl: 47'));
    const after = builder.compile('after the edit');
    assert.notEqual(after, before, 'a build already started is not joined');
    const [, b] = await Promise.all([before, after]);
    assert.deepEqual(started, ['edit 1', 'before the edit', 'after the edit']);
    const wwwTtl = (r: LoadResult): number | undefined => r.policies.find((p) => p.name === 'www.cdn.example')?.ttl;
    assert.equal(wwwTtl(b), 47, 'the later build read the edit');
    assert.notEqual(wwwTtl(first), 47);
  } finally {
    await builder.stop();
  }
});
