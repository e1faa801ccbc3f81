// The geo module's public surface: load (slow path) and lookups (fast path).

export type {
  ClassResult, CustomNetwork, CustomNetworkSet, GeoIndex, LocationResult, NearestOrders, PackedStrings, Pop, PopCatalog,
} from './types.ts';
export { CONTINENT_CODES, continentNumber, countryNumber, countryText, stringAt } from './codes.ts';
export { formatAddress, maskAddress, parseAddressInto } from './address.ts';
export { lookupLocation, newLocationResult } from './lookup.ts';
export { buildClassTrie, lookupClass, newClassResult, MIXED } from './scope.ts';
export { distanceKm, EARTH_RADIUS_KM, nearestOrderClasses, orderPops } from './distance.ts';
export { loadPopCatalog, popCatalogFromSource, POPS_FILE } from './catalog.ts';
export { customNetworksFromSource, loadCustomNetworks, NETWORKS_FILE, parseCidr } from './networks.ts';
export { DEFAULT_CITY_DATABASE, explainAddress, loadGeoDatabase } from './database.ts';
export type { AddressExplanation, GeoDatabase, GeoDatabaseOptions } from './database.ts';
export { watchGeoDatabase } from './watch.ts';
export type { GeoWatchOptions } from './watch.ts';
