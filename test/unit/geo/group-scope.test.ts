// Scopes read through the shared group trie (lookupGroupClass): sound
// (every address inside a returned scope gets the returned class, checked
// with plain location lookups), never narrower than the GeoIP record, and
// merged past the groups where the policy's classes allow. The groups here
// are the finest possible, one per GeoIP location, so every bit of width
// beyond a record comes from the class-level merging.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPopCatalog } from '../../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { nearestOrderClasses } from '../../../server/geo/distance.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { buildClassTrie, lookupGroupClass, newClassResult } from '../../../server/geo/scope.ts';
import { REPO_ROOT } from '../../helpers/server.ts';
import { sampleByDescent, sampleGlobalIpv6, seededRandom } from './helpers.ts';

const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
const db = loadGeoDatabase();
const nearest = nearestOrderClasses(db.index, catalog);
const locationCount = db.index.locationCount;
const groupTrie = buildClassTrie(db.index, Int32Array.from({ length: locationCount }, (_, i) => i), locationCount);
// The policy: nearest order class per location ("group"), the last entry for addresses without data.
const classOfGroup = Int32Array.from({ length: locationCount + 1 }, (_, g) => (g < locationCount ? nearest.classOfLocation[g] : nearest.classOfUnknown));

function classOfAddress(family: 4 | 6, bytes: Uint8Array): number {
  const found = lookupLocation(db.index, family, bytes, 128, newLocationResult());
  return found.location < 0 ? nearest.classOfUnknown : nearest.classOfLocation[found.location];
}

function randomInside(prefix: Uint8Array, family: 4 | 6, scopeLength: number, random: () => number): Uint8Array {
  const out = prefix.slice();
  for (let bit = scopeLength; bit < (family === 4 ? 32 : 128); bit++) {
    const mask = 0x80 >> (bit & 7);
    if (random() < 0.5) out[bit >> 3] |= mask;
    else out[bit >> 3] &= ~mask;
  }
  return out;
}

test('every address inside a scope from the group trie has the returned class; never narrower than the GeoIP record', () => {
  const random = seededRandom(0x9a0);
  const result = newClassResult();
  const location = newLocationResult();
  const scopes: number[] = [];
  const records: number[] = [];
  for (let i = 0; i < 4_000; i++) {
    const family: 4 | 6 = i % 4 === 3 ? 6 : 4;
    const sample = family === 4 ? sampleByDescent(db.index, 4, random) : sampleGlobalIpv6(db.index, random);
    const sourceBits = family === 4 ? 24 : 56;
    const source = sample.bytes.slice();
    source.fill(0, sourceBits >> 3);
    lookupGroupClass(db.index, groupTrie, { get: (g) => classOfGroup[g] }, family, source, sourceBits, result);
    assert.equal(result.class, classOfAddress(family, source), sample.text);
    lookupLocation(db.index, family, source, sourceBits, location);
    assert.ok(result.scopeLength <= Math.max(location.prefixLength, sourceBits), `${sample.text}: /${result.scopeLength} is narrower than its record /${location.prefixLength}`);
    if (family === 4) {
      scopes.push(result.scopeLength);
      records.push(location.prefixLength);
    }
    for (let k = 0; k < 16; k++) {
      const inside = randomInside(source, family, result.scopeLength, random);
      assert.equal(classOfAddress(family, inside), result.class, `${sample.text}: scope /${result.scopeLength} holds an address of another class`);
    }
  }
  // Merging across groups happened: with one group per location, the records alone are the lower bound.
  const median = (values: number[]): number => values.sort((a, b) => a - b)[values.length >> 1];
  assert.ok(median(scopes) < median(records), `median IPv4 scope /${median(scopes)}, median record /${median(records)}`);
});
