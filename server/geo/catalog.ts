// PoP catalog loader: geo-data/pops.yaml → PopCatalog (ordinals in file
// order). Schema first, then meaning; every error names file:line and has a
// stable code.

import { join } from 'node:path';
import { ConfigError, ConfigErrors } from '../config/errors.ts';
import { readYamlFile, type YamlSource } from '../config/yaml-source.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import { continentNumber, countryNumber } from './codes.ts';
import type { Pop, PopCatalog } from './types.ts';

export const POPS_FILE = 'pops.yaml';

/** Schema errors on these fields get a more specific code than POPSTEER_ERR_POP_SCHEMA. */
const CODE_BY_FIELD: Record<string, string> = {
  continent: 'POPSTEER_ERR_POP_UNKNOWN_CONTINENT',
  lat: 'POPSTEER_ERR_POP_BAD_COORDINATES',
  lon: 'POPSTEER_ERR_POP_BAD_COORDINATES',
  ipv4: 'POPSTEER_ERR_POP_BAD_ADDRESS',
  ipv6: 'POPSTEER_ERR_POP_BAD_ADDRESS',
};

/** Re-codes schema errors by the field they are about (the last non-index pointer segment). */
export function recodeByField(errors: ConfigError[], codeByField: Record<string, string>): ConfigError[] {
  return errors.map((e) => {
    const field = e.pointer.split('/').filter((s) => s !== '' && !/^\d+$/.test(s)).pop() ?? '';
    const code = codeByField[field];
    return code ? new ConfigError(code, e.file, { line: e.line, column: e.column }, e.pointer, e.message) : e;
  });
}

interface PopDocument {
  pops: Array<{ id: string; name?: string; lat: number; lon: number; country: string; continent: string; ipv4: string[]; ipv6: string[]; capacity: number }>;
}

/** Loads <geoDataDir>/pops.yaml; throws ConfigErrors listing every problem. */
export function loadPopCatalog(geoDataDir: string): PopCatalog {
  return popCatalogFromSource(readYamlFile(join(geoDataDir, POPS_FILE)));
}

export function popCatalogFromSource(source: YamlSource): PopCatalog {
  const schemaErrors = recodeByField(validateAgainstSchema('pops', source, 'POPSTEER_ERR_POP_SCHEMA'), CODE_BY_FIELD);
  if (schemaErrors.length > 0) throw new ConfigErrors(schemaErrors);
  const doc = source.data as PopDocument;
  const errors: ConfigError[] = [];
  const ordinalOf = new Map<string, number>();
  const pops: Pop[] = [];
  doc.pops.forEach((entry, ordinal) => {
    const pointer = `/pops/${ordinal}`;
    const where = (p: string) => source.position(p);
    const first = ordinalOf.get(entry.id);
    if (first !== undefined) {
      errors.push(new ConfigError('POPSTEER_ERR_POP_DUPLICATE_ID', source.file, where(`${pointer}/id`), `${pointer}/id`,
        `PoP id "${entry.id}" is already used by entry ${first} (line ${where(`/pops/${first}`)?.line ?? '?'}); ids must be unique`));
    } else {
      ordinalOf.set(entry.id, ordinal);
    }
    if (entry.ipv4.length === 0 && entry.ipv6.length === 0) {
      errors.push(new ConfigError('POPSTEER_ERR_POP_NO_ADDRESS', source.file, where(pointer), pointer,
        `PoP "${entry.id}" has no service address (give ipv4 and/or ipv6)`));
    }
    pops.push({
      id: entry.id,
      name: entry.name ?? entry.id,
      lat: entry.lat,
      lon: entry.lon,
      country: entry.country,
      continent: entry.continent,
      ipv4: entry.ipv4,
      ipv6: entry.ipv6.map((a) => a.toLowerCase()),
      capacity: entry.capacity,
      ordinal,
    });
  });
  if (errors.length > 0) throw new ConfigErrors(errors);
  const count = pops.length;
  return Object.freeze({
    file: source.file,
    pops: Object.freeze(pops.map((p) => Object.freeze(p))),
    count,
    ids: pops.map((p) => p.id),
    lat: Float64Array.from(pops, (p) => p.lat),
    lon: Float64Array.from(pops, (p) => p.lon),
    country: Uint16Array.from(pops, (p) => countryNumber(p.country)),
    continent: Uint8Array.from(pops, (p) => continentNumber(p.continent)),
    capacity: Float64Array.from(pops, (p) => p.capacity),
    ordinalOf,
  });
}
