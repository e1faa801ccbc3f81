// Scope merging: every address inside a returned scope must get the same
// class (checked by sampling inside each scope with plain location lookups),
// and merging must actually widen scopes beyond the GeoIP records.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPopCatalog } from '../../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { nearestOrderClasses } from '../../../server/geo/distance.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { buildClassTrie, lookupClass, newClassResult } from '../../../server/geo/scope.ts';
import type { GeoIndex } from '../../../server/geo/types.ts';
import { REPO_ROOT } from '../../helpers/server.ts';
import { sampleByDescent, sampleGlobalIpv6, seededRandom } from './helpers.ts';

const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
const db = loadGeoDatabase();
const nearest = nearestOrderClasses(db.index, catalog);
const classTrie = buildClassTrie(db.index, nearest.classOfLocation, nearest.classOfUnknown);

function classOfAddress(index: GeoIndex, family: 4 | 6, bytes: Uint8Array, classOfLocation: Int32Array, classOfUnknown: number): number {
  const found = lookupLocation(index, family, bytes, 128, newLocationResult());
  return found.location < 0 ? classOfUnknown : classOfLocation[found.location];
}

/** A random address inside prefix/scopeLength. */
function randomInside(prefix: Uint8Array, family: 4 | 6, scopeLength: number, random: () => number): Uint8Array {
  const out = prefix.slice();
  const bits = family === 4 ? 32 : 128;
  for (let bit = scopeLength; bit < bits; bit++) {
    const mask = 0x80 >> (bit & 7);
    if (random() < 0.5) out[bit >> 3] |= mask;
    else out[bit >> 3] &= ~mask;
  }
  return out;
}

test('every address inside a returned scope has the returned class (IPv4 /24 and IPv6 /56 sources)', () => {
  const random = seededRandom(0x5c09e);
  const result = newClassResult();
  for (let i = 0; i < 4_000; i++) {
    const family: 4 | 6 = i % 4 === 3 ? 6 : 4;
    const sample = family === 4 ? sampleByDescent(db.index, 4, random) : sampleGlobalIpv6(db.index, random);
    const sourceBits = family === 4 ? 24 : 56;
    const source = sample.bytes.slice();
    source.fill(0, sourceBits >> 3);
    lookupClass(db.index, classTrie, family, source, sourceBits, result);
    assert.ok(result.class >= 0, sample.text);
    // The scope's own network, then addresses drawn inside it.
    const network = randomInside(source, family, result.scopeLength, () => 0);
    assert.equal(classOfAddress(db.index, family, network, nearest.classOfLocation, nearest.classOfUnknown), result.class, `${sample.text}/${result.scopeLength}`);
    for (let k = 0; k < 16; k++) {
      const inside = randomInside(source, family, result.scopeLength, random);
      assert.equal(classOfAddress(db.index, family, inside, nearest.classOfLocation, nearest.classOfUnknown), result.class,
        `${sample.text}: scope /${result.scopeLength} holds an address of another class`);
    }
  }
});

test('a returned scope is the widest: the other half one bit wider is not uniformly the same class', () => {
  const random = seededRandom(0xa11);
  const result = newClassResult();
  const sibling = newClassResult();
  let checked = 0;
  for (let i = 0; i < 1_000; i++) {
    const sample = sampleByDescent(db.index, 4, random);
    const source = sample.bytes.slice();
    source[3] = 0;
    lookupClass(db.index, classTrie, 4, source, 24, result);
    if (result.scopeLength === 0) continue;
    const bit = result.scopeLength - 1;
    const other = randomInside(source, 4, result.scopeLength, () => 0);
    other[bit >> 3] ^= 0x80 >> (bit & 7);
    // Asked with the same prefix length, the other half answers "uniform at that length" only if it is.
    lookupClass(db.index, classTrie, 4, other, result.scopeLength, sibling);
    assert.ok(!(sibling.scopeLength === result.scopeLength && sibling.class === result.class),
      `${sample.text}/${result.scopeLength}: its sibling has the same class, so /${bit} was the right scope`);
    checked++;
  }
  assert.ok(checked > 900);
});

test('merging widens scopes beyond the GeoIP record prefix (median IPv4 scope at most /20)', () => {
  const random = seededRandom(0x24);
  const location = newLocationResult();
  const result = newClassResult();
  const scopes: number[] = [];
  let narrower = 0;
  for (let i = 0; i < 3_000; i++) {
    const sample = sampleByDescent(db.index, 4, random);
    const source = sample.bytes.slice();
    source[3] = 0;
    lookupLocation(db.index, 4, source, 24, location);
    lookupClass(db.index, classTrie, 4, source, 24, result);
    scopes.push(result.scopeLength);
    // The merged scope can only be as long as the record's network or shorter.
    if (result.scopeLength > location.prefixLength) narrower++;
  }
  assert.equal(narrower, 0);
  scopes.sort((a, b) => a - b);
  const median = scopes[scopes.length >> 1];
  assert.ok(median <= 20, `median scope /${median}`);
});

test('one PoP: the whole space is one class, scope 0', () => {
  const single = new Int32Array(db.index.locationCount);
  const trie = buildClassTrie(db.index, single, 0);
  const result = newClassResult();
  const bytes = Uint8Array.from([81, 2, 69, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(lookupClass(db.index, trie, 4, bytes, 24, result), { class: 0, scopeLength: 0 });
  assert.deepEqual(lookupClass(db.index, trie, 6, bytes, 56, result), { class: 0, scopeLength: 0 });
});

test('a source prefix shorter than the uniform network: the walk continues with zero bits and reports the longer scope', () => {
  const result = newClassResult();
  const source = new Uint8Array(16);
  source.set([81, 0, 0, 0]); // 81.0.0.0/8 holds many countries
  lookupClass(db.index, classTrie, 4, source, 8, result);
  assert.ok(result.scopeLength > 8, `scope /${result.scopeLength}`);
  const expected = classOfAddress(db.index, 4, source, nearest.classOfLocation, nearest.classOfUnknown);
  assert.equal(result.class, expected);
});
