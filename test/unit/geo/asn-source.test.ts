// ASN sources in their three layouts: each read into the same networks, the
// longest prefix winning, mistakes named by file and line, and the share of
// networks a replacement changes.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../../../server/config/errors.ts';
import { changedShare, loadAsnSource, lookupAsn } from '../../../server/geo/asn-source.ts';
import { rangeToCidrs } from '../../../server/geo/asn-text.ts';
import { writeMmdb } from '../../fixtures/mmdb-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'popsteer-asn-source-'));
function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

test('a range becomes the fewest CIDRs that cover it exactly', () => {
  const cidrs = rangeToCidrs(0x08080400n, 0x080806ffn, 32).map(([base, length]) => `${base.toString(16)}/${length}`);
  assert.deepEqual(cidrs, ['8080400/23', '8080600/24']);
  assert.deepEqual(rangeToCidrs(0n, 0xffffffffn, 32), [[0n, 0]]);
});

test('the ranges layout (@ip-location-db/asn) with quoted organisations and both families', () => {
  const path = file('ranges.csv', [
    '8.8.4.0,8.8.4.255,15169,Google LLC',
    '8.8.5.0,8.8.5.255,3356,"Level 3 Communications, Inc."',
    '1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."',
    '2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,13335,"Cloudflare, Inc."',
    '9.9.9.0,9.9.9.255,0,not announced',
    '',
  ].join('\n'));
  const source = loadAsnSource([path]);
  assert.equal(source.files[0].layout, 'ranges');
  assert.deepEqual(lookupAsn(source, '8.8.4.4'), { asn: 15169, organization: 'Google LLC', network: '8.8.4.0/24', file: path });
  assert.equal(lookupAsn(source, '8.8.5.1')?.organization, 'Level 3 Communications, Inc.');
  assert.equal(lookupAsn(source, '2606:4700:10::1')?.network, '2606:4700::/32');
  assert.equal(lookupAsn(source, '::ffff:1.0.0.1')?.asn, 13335, 'an IPv4-mapped address is looked up as IPv4');
  assert.equal(lookupAsn(source, '9.9.9.9'), null, 'AS 0 means not announced');
  assert.equal(lookupAsn(source, '8.8.6.1'), null);
});

test('the prefixes layout: the longest prefix wins, whatever the order, "AS" prefix and spaces allowed', () => {
  const path = file('origins.txt', ['# exported from bird', '80.128.0.0/11,3320', '80.128.0.0/9 AS3209', '2003::/19,3320', ''].join('\n'));
  const source = loadAsnSource([path]);
  assert.equal(source.files[0].layout, 'prefixes');
  assert.equal(lookupAsn(source, '80.130.1.1')?.asn, 3320);
  assert.equal(lookupAsn(source, '80.130.1.1')?.network, '80.128.0.0/11');
  assert.equal(lookupAsn(source, '80.200.1.1')?.asn, 3209);
  assert.equal(lookupAsn(source, '2003:e1::1')?.asn, 3320);
});

test('several files make one source (separate IPv4 and IPv6 files)', () => {
  const v4 = file('v4.csv', 'ip_range_start,ip_range_end,asn,org\n1.0.0.0,1.0.0.255,13335,Cloudflare\n');
  const v6 = file('v6.csv', '2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,13335,Cloudflare\n');
  const source = loadAsnSource([v4, v6]);
  assert.equal(lookupAsn(source, '1.0.0.1')?.file, v4);
  assert.equal(lookupAsn(source, '2606:4700::1')?.file, v6);
});

test('an mmdb with autonomous_system_number (GeoLite2-ASN layout)', () => {
  const path = file('asn.mmdb', writeMmdb([
    { cidr: '80.128.0.0/11', record: { autonomous_system_number: 3320, autonomous_system_organization: 'Deutsche Telekom AG' } },
    { cidr: '8.8.8.0/24', record: { autonomous_system_number: 15169, autonomous_system_organization: 'GOOGLE' } },
    { cidr: '2001:4860::/32', record: { autonomous_system_number: 15169, autonomous_system_organization: 'GOOGLE' } },
  ], { databaseType: 'GeoLite2-ASN' }));
  const source = loadAsnSource([path]);
  assert.equal(source.files[0].layout, 'mmdb');
  assert.deepEqual(lookupAsn(source, '80.150.1.1'), { asn: 3320, organization: 'Deutsche Telekom AG', network: '80.128.0.0/11', file: path });
  assert.equal(lookupAsn(source, '2001:4860:4860::8888')?.asn, 15169);
  assert.equal(source.networks.count, 3, 'each network listed once');
});

test('mistakes name the file and line', () => {
  const cases: Array<[string, RegExp]> = [
    ['8.8.8.0,8.8.8.255,AS-GOOGLE\n', /"AS-GOOGLE" is not an AS number/],
    ['8.8.8.0/24,15169\n8.8.9.1/24,15169\n', /8\.8\.9\.1\/24.*host bits/],
    ['8.8.8.255,8.8.8.0,15169\n', /ends .* before it starts/],
    ['8.8.8.0,2001:db8::,15169\n', /same family/],
  ];
  for (const [content, message] of cases) {
    const path = file('bad.csv', content);
    assert.throws(() => loadAsnSource([path]), (err: ConfigError) => {
      assert.equal(err.code, 'POPSTEER_ERR_ASN_SOURCE');
      assert.equal(err.file, path);
      assert.equal(err.line, content.split('\n').length - 1);
      assert.match(err.message, message);
      return true;
    });
  }
  assert.throws(() => loadAsnSource([file('empty.csv', '# nothing\n')]), /no networks/);
  assert.throws(() => loadAsnSource([join(dir, 'missing.csv')]), /cannot read the ASN source/);
});

test('the share of networks a replacement changes', () => {
  const before = loadAsnSource([file('a.txt', '10.0.0.0/8,1\n11.0.0.0/8,2\n12.0.0.0/8,3\n13.0.0.0/8,4\n')]);
  const same = loadAsnSource([file('b.txt', '13.0.0.0/8,4\n12.0.0.0/8,3\n11.0.0.0/8,2\n10.0.0.0/8,1\n')]);
  const moved = loadAsnSource([file('c.txt', '10.0.0.0/8,1\n11.0.0.0/8,2\n12.0.0.0/8,3\n13.0.0.0/8,5\n')]);
  const truncated = loadAsnSource([file('d.txt', '10.0.0.0/8,1\n')]);
  assert.equal(changedShare(before, same), 0);
  assert.equal(changedShare(before, moved), 0.25);
  assert.equal(changedShare(before, truncated), 0.75);
});
