// lookupLocation against maxmind's own reader, on addresses spread over the
// whole GeoLite2-City database; address parsing against Node's URL parser.

import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatAddress, parseAddressInto } from '../../../server/lib/address.ts';
import { countryText } from '../../../server/geo/codes.ts';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { sampleMixed } from './helpers.ts';

const db = loadGeoDatabase();
const { index } = db;

test('the City index has every data record as a location and IPv4 under ::/96', () => {
  assert.equal(index.databaseType, 'GeoLite2-City');
  assert.ok(index.locationCount > 100_000, `${index.locationCount} locations`);
  assert.ok(index.nodeCount >= db.reader.metadata.nodeCount);
});

test('lookupLocation gives the record and prefix length that maxmind gives, on 30,000 addresses', () => {
  const samples = sampleMixed(index, 30_000, 0x6e0);
  const result = newLocationResult();
  let found = 0;
  for (const sample of samples) {
    const [record, prefixLength] = db.reader.getWithPrefixLength(sample.text);
    lookupLocation(index, sample.family, sample.bytes, 128, result);
    const where = `${sample.text}: index ${result.location}/${result.prefixLength}, maxmind /${prefixLength}`;
    assert.equal(result.prefixLength, prefixLength, where);
    if (!record) {
      assert.equal(result.location, -1, where);
      continue;
    }
    found++;
    assert.ok(result.location >= 0, where);
    const loc = result.location;
    assert.equal(Number.isNaN(index.lat[loc]) ? undefined : index.lat[loc], record.location?.latitude, where);
    assert.equal(Number.isNaN(index.lon[loc]) ? undefined : index.lon[loc], record.location?.longitude, where);
    const country = record.country?.iso_code ?? record.registered_country?.iso_code ?? '';
    assert.equal(countryText(index.country[loc]), country, where);
  }
  // The sample must actually exercise records, not only empty space.
  assert.ok(found > 15_000, `only ${found} of ${samples.length} samples had a record`);
});

test('maxBits: bits after the source prefix are read as zero, like a lookup of the masked address', () => {
  const samples = sampleMixed(index, 3_000, 0x5c0);
  const masked = newLocationResult();
  const direct = newLocationResult();
  const zeroed = new Uint8Array(16);
  for (const sample of samples) {
    const sourceBits = sample.family === 4 ? 24 : 56;
    zeroed.set(sample.bytes);
    zeroed.fill(0, sourceBits >> 3);
    lookupLocation(index, sample.family, sample.bytes, sourceBits, masked);
    lookupLocation(index, sample.family, zeroed, 128, direct);
    assert.deepEqual(masked, direct, sample.text);
    const [, prefixLength] = db.reader.getWithPrefixLength(formatAddress(sample.family, zeroed));
    assert.equal(masked.prefixLength, prefixLength, sample.text);
  }
});

test('parseAddressInto: IPv4, IPv6, IPv4-mapped as IPv4, zone ids, and rejects malformed text', () => {
  const out = new Uint8Array(16);
  assert.equal(parseAddressInto('81.2.69.160', out), 4);
  assert.deepEqual([...out.subarray(0, 5)], [81, 2, 69, 160, 0]);
  assert.equal(parseAddressInto('::ffff:81.2.69.160', out), 4);
  assert.deepEqual([...out.subarray(0, 4)], [81, 2, 69, 160]);
  assert.equal(parseAddressInto('::ffff:5102:45a0', out), 4);
  assert.deepEqual([...out.subarray(0, 4)], [81, 2, 69, 160]);
  assert.equal(parseAddressInto('fe80::1%eth0', out), 6);
  assert.equal(formatAddress(6, out), 'fe80::1');
  assert.equal(parseAddressInto('::', out), 6);
  assert.equal(parseAddressInto('::1', out), 6);
  assert.equal(out[15], 1);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1::2::3', ':1', '1:', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '1.2.3.4:80', '1:2:3:4:5:6:7:8::']) {
    assert.equal(parseAddressInto(bad, out), 0, bad);
  }
});

test('parseAddressInto and formatAddress agree with the WHATWG URL parser on random IPv6 addresses', () => {
  const out = new Uint8Array(16);
  fc.assert(fc.property(fc.ipV6(), (text) => {
    const family = parseAddressInto(text, out);
    const reference = new URL(`http://[${text}]/`).hostname.slice(1, -1);
    if (family === 4) return reference.startsWith('::ffff:'); // mapped addresses come back as IPv4 on purpose
    assert.equal(family, 6, text);
    assert.equal(formatAddress(6, out), reference, text);
    assert.ok(isIPv6(reference));
    return true;
  }), { numRuns: 5_000, seed: 7 });
});

test('parseAddressInto agrees with dotted-quad text on random IPv4 addresses', () => {
  const out = new Uint8Array(16);
  fc.assert(fc.property(fc.ipV4(), (text) => {
    assert.equal(parseAddressInto(text, out), 4, text);
    assert.equal(formatAddress(4, out), text);
  }), { numRuns: 5_000, seed: 11 });
});
