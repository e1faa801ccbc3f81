// Custom networks: checked at load with codes and lines, spliced into the
// real GeoLite2 trie so that they beat GeoIP, longest prefix first.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, ConfigErrors } from '../../../server/config/errors.ts';
import { parseAddressInto } from '../../../server/lib/address.ts';
import { loadPopCatalog } from '../../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../../server/geo/database.ts';
import { nearestOrderClasses } from '../../../server/geo/distance.ts';
import { lookupLocation, newLocationResult } from '../../../server/geo/lookup.ts';
import { loadCustomNetworks } from '../../../server/geo/networks.ts';
import { stringAt } from '../../../server/geo/codes.ts';
import { REPO_ROOT } from '../../helpers/server.ts';
import { countArrayScans } from '../../helpers/array-scans.ts';
import { networksYaml } from '../../bench/networks-gen.ts';

const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function geoDataWith(networksYaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'networks.yaml'), networksYaml);
  return dir;
}

function loadErrors(networksYaml: string): ConfigError[] {
  try {
    loadCustomNetworks(geoDataWith(networksYaml), catalog);
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors;
    if (err instanceof ConfigError) return [err];
    throw err;
  }
  assert.fail('expected the custom networks to be rejected');
}

test('the shipped networks.yaml loads', () => {
  const set = loadCustomNetworks(join(REPO_ROOT, 'geo-data'), catalog);
  assert.ok(set.networks.length >= 3);
});

test('no networks.yaml: no custom networks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  dirs.push(dir);
  assert.equal(loadCustomNetworks(dir, catalog).networks.length, 0);
});

test('custom networks beat GeoIP, longest prefix first, IPv4 and IPv6', () => {
  const networks = loadCustomNetworks(geoDataWith([
    'networks:',
    '  81.2.69.128/25: { lat: 10, lon: 20, country: FR, continent: EU, name: inner }',
    '  81.2.0.0/16: { lat: 1, lon: 2, country: DE, continent: EU, name: outer }',
    '  81.2.69.0/24: { pop: sin, name: pinned }',
    '  2001:4860::/32: { pop: syd }',
    '',
  ].join('\n')), catalog);
  const db = loadGeoDatabase(undefined, { networks });
  const bytes = new Uint8Array(16);
  const result = newLocationResult();
  const where = (text: string, maxBits = 128) => {
    const family = parseAddressInto(text, bytes) as 4 | 6;
    lookupLocation(db.index, family, bytes, maxBits, result);
    const loc = result.location;
    return { label: stringAt(db.index.strings, db.index.label[loc]), prefix: result.prefixLength, pop: db.index.fixedPop[loc], lat: db.index.lat[loc] };
  };
  assert.deepEqual(where('81.2.69.200'), { label: 'inner', prefix: 25, pop: -1, lat: 10 });
  assert.deepEqual(where('81.2.69.5'), { label: 'pinned', prefix: 25, pop: catalog.ordinalOf.get('sin'), lat: catalog.pops[catalog.ordinalOf.get('sin')!].lat });
  // The /16 is split around the longer networks: 81.2.0.0/18 and 81.2.128.0/17 are still "outer".
  assert.deepEqual(where('81.2.1.1'), { label: 'outer', prefix: 18, pop: -1, lat: 1 });
  assert.deepEqual(where('81.2.200.1'), { label: 'outer', prefix: 17, pop: -1, lat: 1 });
  assert.equal(where('2001:4860:4860::8888').pop, catalog.ordinalOf.get('syd'));
  assert.equal(where('2001:4860:4860::8888').prefix, 32);
  // The IPv4-mapped and 6to4 aliases of IPv4 space see IPv4 custom networks too.
  assert.equal(where('::ffff:81.2.69.200').label, 'inner');
  assert.equal(where('2002:5102:4580::1').label, 'inner');
  // Outside every custom network: GeoIP as maxmind's own reader sees it.
  const outside = new Uint8Array(16);
  for (const text of ['81.3.1.1', '8.8.8.8', '2a00:1450::1', '2002:0808:0808::1']) {
    const family = parseAddressInto(text, outside) as 4 | 6;
    const found = lookupLocation(db.index, family, outside, 128, newLocationResult());
    const [record, prefixLength] = db.reader.getWithPrefixLength(text);
    assert.equal(found.prefixLength, prefixLength, text);
    assert.equal(db.index.lat[found.location], record?.location?.latitude, text);
    assert.equal(db.index.customNetwork[found.location], -1, text);
  }
  // A pinned network's nearest order starts with its PoP.
  const orders = nearestOrderClasses(db.index, catalog);
  parseAddressInto('81.2.69.5', bytes);
  lookupLocation(db.index, 4, bytes, 32, result);
  assert.equal(catalog.ids[orders.orders[orders.classOfLocation[result.location]][0]], 'sin');
});

test('errors name the file, the line and a stable code', () => {
  const errors = loadErrors([
    'networks:',
    '  81.2.0.0/16: { lat: 1, lon: 2 }',
    '  10.0.0.1/8: { lat: 1, lon: 2 }',
    '  not-a-cidr: { lat: 1, lon: 2 }',
    '  198.51.100.0/24: { pop: nowhere }',
    '  2001:db8::/32: { lat: 1, lon: 2 }',
    '  2001:0db8::/32: { lat: 1, lon: 2 }',
    '  "::ffff:1.2.3.0/120": { lat: 1, lon: 2 }',
    '  203.0.113.0/33: { lat: 1, lon: 2 }',
    '',
  ].join('\n'));
  const byCode = errors.map((e) => [e.code, e.line]);
  assert.deepEqual(byCode, [
    ['POPSTEER_ERR_NETWORK_HOST_BITS', 3],
    ['POPSTEER_ERR_NETWORK_BAD_CIDR', 4],
    ['POPSTEER_ERR_NETWORK_UNKNOWN_POP', 5],
    ['POPSTEER_ERR_NETWORK_DUPLICATE', 7],
    ['POPSTEER_ERR_NETWORK_IPV4_SPACE', 8],
    ['POPSTEER_ERR_NETWORK_BAD_CIDR', 9],
  ]);
  assert.match(errors[0].message, /did you mean 10\.0\.0\.0\/8/);
  assert.ok(errors.every((e) => e.file.endsWith('networks.yaml')));
  assert.match(errors[0].format(), /networks\.yaml:3:\d+: POPSTEER_ERR_NETWORK_HOST_BITS/);
});

test('schema errors: coordinates out of range and unknown keys, with their lines', () => {
  const errors = loadErrors(['networks:', '  192.0.2.0/24: { lat: 1, lon: 2 }', '  198.51.100.0/24: { lat: 95, lon: 2 }', '  203.0.113.0/24: { lat: 1, lon: 2, colour: red }', ''].join('\n'));
  assert.deepEqual(errors.map((e) => [e.code, e.line]), [
    ['POPSTEER_ERR_NETWORK_BAD_COORDINATES', 3],
    ['POPSTEER_ERR_NETWORK_SCHEMA', 4],
  ]);
});

test('YAML syntax errors name the file and line', () => {
  const errors = loadErrors(['networks:', '  192.0.2.0/24: { lat: 1, lon: 2 }', '  198.51.100.0/24: { lat: 1, lon: 2', '  203.0.113.0/24: { lat: 1, lon: 2 }', ''].join('\n'));
  assert.equal(errors[0].code, 'POPSTEER_ERR_YAML_SYNTAX');
  assert.ok(errors[0].line >= 3, `line ${errors[0].line}`);
  assert.ok(errors[0].file.endsWith('networks.yaml'));
});

test('each network keeps the line it is written on, whether its key is plain or quoted', () => {
  const set = loadCustomNetworks(geoDataWith([
    'networks:',
    '  # a comment',
    '  192.0.2.0/24: { lat: 1, lon: 2 }',
    '',
    '  "198.51.100.0/24": { pop: ams }',
    '  2001:db8:100::/48:',
    '    pop: sin',
    '',
  ].join('\n')), catalog);
  assert.deepEqual(set.networks.map((n) => [n.cidr, n.line]), [['192.0.2.0/24', 3], ['198.51.100.0/24', 5], ['2001:db8:100::/48', 6]]);
});

test('a repeated network key is a YAML error at the second one, as in every other file', () => {
  const errors = loadErrors(['networks:', '  192.0.2.0/24: { lat: 1, lon: 2 }', '  192.0.2.0/24: { lat: 3, lon: 4 }', ''].join('\n'));
  assert.deepEqual(errors.map((e) => [e.code, e.line]), [['POPSTEER_ERR_YAML_SYNTAX', 3]]);
});

test('an alias in networks.yaml is read as YAML defines it (the quick reader passes it to the full one)', () => {
  const set = loadCustomNetworks(geoDataWith(['networks:', '  192.0.2.0/24: &office { pop: ams }', '  198.51.100.0/24: *office', ''].join('\n')), catalog);
  assert.deepEqual(set.networks.map((n) => [n.cidr, catalog.ids[n.pop]]), [['192.0.2.0/24', 'ams'], ['198.51.100.0/24', 'ams']]);
});

test('loading scales linearly: twice the entries visit about twice the elements (a scan per entry would be four times)', () => {
  const visited = (count: number): number => {
    const dir = geoDataWith(networksYaml(count, catalog.ids));
    const { value, visited: elements } = countArrayScans(() => loadCustomNetworks(dir, catalog));
    assert.equal(value.networks.length, count);
    return elements;
  };
  visited(10); // the schema validator compiles once per process
  const small = visited(2000);
  const large = visited(4000);
  assert.ok(small > 2000, `the counter sees the load's scans (${small})`);
  assert.ok(large < 2.5 * small, `2,000 entries: ${small} elements visited; 4,000: ${large} (${(large / small).toFixed(2)}×)`);
});
