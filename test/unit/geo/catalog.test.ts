// The PoP catalog: the shipped example loads with its ids in order, and each
// kind of mistake is reported with its stable code and line.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { parseYamlText } from '../../../server/config/yaml-source.ts';
import { loadPopCatalog, popCatalogFromSource } from '../../../server/geo/catalog.ts';
import { REPO_ROOT } from '../../helpers/server.ts';

test('the shipped catalog: 16 PoPs on every inhabited continent, ordinals in file order', () => {
  const catalog = loadPopCatalog(join(REPO_ROOT, 'geo-data'));
  assert.deepEqual(catalog.ids, ['ams', 'fra', 'lhr', 'mad', 'iad', 'ord', 'sjc', 'gru', 'scl', 'jnb', 'los', 'sin', 'nrt', 'bom', 'syd', 'akl']);
  assert.deepEqual(new Set(catalog.pops.map((p) => p.continent)), new Set(['EU', 'NA', 'SA', 'AF', 'AS', 'OC']));
  assert.equal(catalog.ordinalOf.get('lhr'), 2);
  assert.equal(catalog.pops[2].name, 'London');
  assert.equal(catalog.capacity[catalog.ordinalOf.get('mad')!], 1); // schema default
  assert.deepEqual(catalog.pops[0].ipv6, ['2001:db8:1::1']);
});

function errorsOf(lines: string[]): Array<[string, number]> {
  try {
    popCatalogFromSource(parseYamlText('pops.yaml', lines.join('\n')));
  } catch (err) {
    if (err instanceof ConfigErrors) return err.errors.map((e) => [e.code, e.line]);
    throw err;
  }
  assert.fail('expected the catalog to be rejected');
}

const GOOD = '  - { id: ams, name: Amsterdam, lat: 52.37, lon: 4.90, country: NL, continent: EU, ipv4: [192.0.2.1] }';

test('unknown continent, bad coordinates and bad addresses have their own codes and lines', () => {
  assert.deepEqual(errorsOf([
    'pops:',
    GOOD,
    '  - { id: xx1, lat: 1, lon: 2, country: NL, continent: EA, ipv4: [192.0.2.2] }',
    '  - { id: xx2, lat: 91, lon: 2, country: NL, continent: EU, ipv4: [192.0.2.3] }',
    '  - { id: xx3, lat: 1, lon: -181, country: NL, continent: EU, ipv4: [192.0.2.4] }',
    '  - { id: xx4, lat: 1, lon: 2, country: NL, continent: EU, ipv4: [192.0.2.300] }',
    '  - { id: xx5, lat: 1, lon: 2, country: NL, continent: EU, ipv6: ["2001:db8::g"] }',
  ]), [
    ['POPSTEER_ERR_POP_UNKNOWN_CONTINENT', 3],
    ['POPSTEER_ERR_POP_BAD_COORDINATES', 4],
    ['POPSTEER_ERR_POP_BAD_COORDINATES', 5],
    ['POPSTEER_ERR_POP_BAD_ADDRESS', 6],
    ['POPSTEER_ERR_POP_BAD_ADDRESS', 7],
  ]);
});

test('duplicate ids and PoPs without any address are meaning errors', () => {
  assert.deepEqual(errorsOf([
    'pops:',
    GOOD,
    '  - { id: fra, lat: 50.1, lon: 8.7, country: DE, continent: EU, ipv4: [192.0.2.2] }',
    '  - { id: ams, lat: 52.3, lon: 4.9, country: NL, continent: EU, ipv4: [192.0.2.3] }',
    '  - { id: lhr, lat: 51.5, lon: -0.1, country: GB, continent: EU }',
  ]), [
    ['POPSTEER_ERR_POP_DUPLICATE_ID', 4],
    ['POPSTEER_ERR_POP_NO_ADDRESS', 5],
  ]);
});

test('unknown keys and missing fields are schema errors', () => {
  assert.deepEqual(errorsOf([
    'pops:',
    '  - { id: ams, lat: 52.37, lon: 4.90, country: NL, continent: EU, ipv4: [192.0.2.1], colour: red }',
    '  - { id: fra, lat: 50.1, country: DE, continent: EU, ipv4: [192.0.2.2] }',
  ]).map(([code]) => code), ['POPSTEER_ERR_POP_SCHEMA', 'POPSTEER_ERR_POP_SCHEMA']);
});
