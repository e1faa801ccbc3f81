// Which endpoint serves which part of the world under the active policies and
// the live health: every GeoIP location with coordinates falls into a cell of
// a latitude/longitude grid; each cell takes the endpoint that most of its
// locations are steered to. The steering runs on the compiled tables with the
// real decision function, once per decision class (not per location), so a
// map of the whole database takes milliseconds.

import type { GeoIndex } from '../geo/types.ts';
import { SLOT_EPOCH } from '../health/table.ts';
import { OUTCOME_SERVFAIL, Resolution, isUp, resolve } from '../steering/decide.ts';
import { classAt, classesOf } from '../steering/lazy-classes.ts';
import type { CompiledPolicy } from '../steering/types.ts';

interface MapEndpoint {
  id: string;
  /** Null for endpoints that are not a catalog PoP (explicit addresses, CNAME). */
  lat: number | null;
  lon: number | null;
  up: boolean;
  /** Grid cells this endpoint serves. */
  cells: number;
}

export interface WorldMap {
  name: string;
  /** Grid cell size in degrees. */
  cellDegrees: number;
  healthEpoch: number;
  endpoints: MapEndpoint[];
  /** Flat triples: latitude index (0 = 90°S), longitude index (0 = 180°W), endpoint index (-1 = SERVFAIL). */
  cells: number[];
}

const MAP_RANDOM = 0.5;

/** The endpoint (index, or -1 for SERVFAIL) decision class `c` answers with first under `health`, made on first use. */
function firstEndpointOf(policy: CompiledPolicy, health: Int32Array, byClass: number[], c: number): number {
  let endpoint = byClass[c];
  if (endpoint === undefined) {
    const r = new Resolution();
    // Sticky weighting keys on the client network; a fixed key per class keeps the map stable.
    resolve(policy, classAt(policy, c), health, c, MAP_RANDOM, r);
    endpoint = byClass[c] = r.outcome === OUTCOME_SERVFAIL || r.count === 0 ? -1 : r.chosen[0];
  }
  return endpoint;
}

export function buildWorldMap(policy: CompiledPolicy, geo: GeoIndex, health: Int32Array, cellDegrees: number): WorldMap {
  // Classes are made on first sight (steering/lazy-classes.ts): the map makes those of every group with coordinates.
  const classes = classesOf(policy);
  const groupOf = policy.groups.groupOfLocation;
  const byClass: number[] = [];
  const rows = Math.ceil(180 / cellDegrees);
  const columns = Math.ceil(360 / cellDegrees);
  const slots = policy.endpoints.length + 1; // + SERVFAIL
  const votes = new Int32Array(rows * columns * slots);
  const occupied = new Uint8Array(rows * columns);
  for (let l = 0; l < geo.locationCount; l++) {
    const lat = geo.lat[l];
    const lon = geo.lon[l];
    if (Number.isNaN(lat) || Number.isNaN(lon)) continue;
    const cls = policy.plan.uniform ? 0 : l < groupOf.length ? classes.classOf(0, groupOf[l]) : -1;
    const endpoint = cls >= 0 ? firstEndpointOf(policy, health, byClass, cls) : -1;
    const row = Math.min(rows - 1, Math.floor((lat + 90) / cellDegrees));
    const column = Math.min(columns - 1, Math.floor((lon + 180) / cellDegrees));
    const cell = row * columns + column;
    occupied[cell] = 1;
    votes[cell * slots + endpoint + 1]++;
  }
  const cellCounts = new Int32Array(policy.endpoints.length);
  const cells: number[] = [];
  for (let cell = 0; cell < occupied.length; cell++) {
    if (occupied[cell] === 0) continue;
    let best = 0;
    for (let s = 1; s < slots; s++) if (votes[cell * slots + s] > votes[cell * slots + best]) best = s;
    const endpoint = best - 1;
    if (endpoint >= 0) cellCounts[endpoint]++;
    cells.push(Math.floor(cell / columns), cell % columns, endpoint);
  }
  return {
    name: policy.name,
    cellDegrees,
    healthEpoch: health[SLOT_EPOCH],
    endpoints: policy.endpoints.map((e, i) => ({
      id: e.id,
      lat: Number.isNaN(e.lat) ? null : e.lat,
      lon: Number.isNaN(e.lon) ? null : e.lon,
      up: isUp(health, e.healthSubject),
      cells: cellCounts[i],
    })),
    cells,
  };
}
