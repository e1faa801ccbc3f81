// Generates a CDN-sized configuration for the scale benchmark: a PoP catalog,
// steering policies (mostly "nearest healthy" over per-customer pools of
// 8–64 PoPs, plus weighted, geofenced and failover ones), steered names and
// custom networks. Health targets are `external`, so nothing is probed.
// Deterministic for a given size and seed.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../../unit/geo/helpers.ts';

export interface ScaleSize {
  pops: number;
  policies: number;
  customNetworks: number;
  /** Steered names; spread over the policies (each policy serves names / policies of them). */
  names: number;
}

export interface GeneratedPop {
  id: string;
  lat: number;
  lon: number;
  country: string;
  continent: string;
  ipv4: string;
}

export type PolicyKind = 'nearest' | 'weighted' | 'geofence' | 'failover';

export interface GeneratedPolicy {
  /** File under steering/ holding only this policy. */
  file: string;
  kind: PolicyKind;
  names: string[];
  /** PoP ids of the main pool. */
  pool: string[];
  ttl: number;
}

export interface GeneratedConfig {
  configDir: string;
  geoDataDir: string;
  pops: GeneratedPop[];
  policies: GeneratedPolicy[];
  zone: string;
  /** Writes policy `i` again with another TTL (the reload step of the benchmark). */
  rewritePolicy(i: number, ttl: number): void;
}

// Metro areas PoPs are placed around (jittered): where CDNs put them.
const METROS: Array<[number, number, string, string]> = [
  [52.37, 4.90, 'NL', 'EU'], [50.11, 8.68, 'DE', 'EU'], [51.51, -0.13, 'GB', 'EU'], [48.86, 2.35, 'FR', 'EU'], [40.42, -3.70, 'ES', 'EU'],
  [45.46, 9.19, 'IT', 'EU'], [59.33, 18.07, 'SE', 'EU'], [52.23, 21.01, 'PL', 'EU'], [55.76, 37.62, 'RU', 'EU'], [41.01, 28.98, 'TR', 'AS'],
  [39.04, -77.49, 'US', 'NA'], [41.88, -87.63, 'US', 'NA'], [37.34, -121.89, 'US', 'NA'], [32.78, -96.80, 'US', 'NA'], [47.61, -122.33, 'US', 'NA'],
  [33.75, -84.39, 'US', 'NA'], [25.76, -80.19, 'US', 'NA'], [34.05, -118.24, 'US', 'NA'], [43.65, -79.38, 'CA', 'NA'], [19.43, -99.13, 'MX', 'NA'],
  [-23.55, -46.63, 'BR', 'SA'], [-33.45, -70.67, 'CL', 'SA'], [-34.60, -58.38, 'AR', 'SA'], [4.71, -74.07, 'CO', 'SA'], [-12.05, -77.04, 'PE', 'SA'],
  [-26.20, 28.05, 'ZA', 'AF'], [6.52, 3.38, 'NG', 'AF'], [-1.29, 36.82, 'KE', 'AF'], [30.04, 31.24, 'EG', 'AF'], [33.57, -7.59, 'MA', 'AF'],
  [1.35, 103.82, 'SG', 'AS'], [35.68, 139.65, 'JP', 'AS'], [19.08, 72.88, 'IN', 'AS'], [28.61, 77.21, 'IN', 'AS'], [22.32, 114.17, 'HK', 'AS'],
  [37.57, 126.98, 'KR', 'AS'], [13.76, 100.50, 'TH', 'AS'], [-6.21, 106.85, 'ID', 'AS'], [25.20, 55.27, 'AE', 'AS'], [14.60, 120.98, 'PH', 'AS'],
  [-33.87, 151.21, 'AU', 'OC'], [-37.81, 144.96, 'AU', 'OC'], [-36.85, 174.76, 'NZ', 'OC'], [-31.95, 115.86, 'AU', 'OC'],
];

export const ZONE = 'cdn.example';

function popsOf(count: number, random: () => number): GeneratedPop[] {
  return Array.from({ length: count }, (_, i) => {
    const [lat, lon, country, continent] = METROS[i % METROS.length];
    // The first lap sits on the metro; later laps spread around it (regional PoPs).
    const spread = i < METROS.length ? 0 : 4;
    return {
      id: `p${String(i).padStart(3, '0')}`,
      lat: Math.round((lat + (random() - 0.5) * spread) * 1e4) / 1e4,
      lon: Math.round((lon + (random() - 0.5) * spread) * 1e4) / 1e4,
      country, continent,
      ipv4: `198.18.${i >> 8}.${(i & 255) + (i >> 8 === 0 && (i & 255) === 0 ? 1 : 0)}`,
    };
  });
}

function sampleWithout<T>(items: T[], count: number, random: () => number): T[] {
  const copy = items.slice();
  for (let i = 0; i < count && i < copy.length; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, Math.min(count, copy.length));
}

/** The policy mix: 70% nearest, 10% each weighted, geofenced, failover. */
function kindOf(i: number): PolicyKind {
  const slot = i % 10;
  return slot < 7 ? 'nearest' : slot === 7 ? 'weighted' : slot === 8 ? 'geofence' : 'failover';
}

/**
 * Names are listed in `names:` when `namesPerPolicy` supports it (one policy,
 * many names); `onePolicyPerName` writes one policy per name instead (for
 * builds that have no `names:`).
 */
function policyYaml(p: GeneratedPolicy, key: string, onePolicyPerName: boolean): string {
  const pool = `[${p.pool.join(', ')}]`;
  const head = (name: string): string[] => {
    const lines = [`  - name: ${name}`];
    if (!onePolicyPerName && p.names.length > 1) lines.push(`    names: [${p.names.slice(1).join(', ')}]`);
    lines.push(`    ttl: ${p.ttl}`, '    unknown_location: self');
    return lines;
  };
  const body: string[] = [];
  if (p.kind === 'nearest') {
    body.push('    pools:', `      edge: { pops: ${pool} }`, '    rules:', '      - { name: nearest, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }', '    when_all_down: fail_open');
  } else if (p.kind === 'weighted') {
    body.push('    pools:', '      edge:', '        endpoints:');
    p.pool.slice(0, 4).forEach((id, k) => body.push(`          - { pop: ${id}, weight: ${10 * (k + 1)} }`));
    body.push('    rules:', '      - { name: canary, match: default, pool: edge, steps: [healthy, { weighted: { mode: sticky } }, { first: 1 }] }', '    when_all_down: fail_open');
  } else if (p.kind === 'geofence') {
    body.push('    pools:', `      edge: { pops: ${pool} }`, '    rules:',
      '      - { name: stay-in-continent, match: { continent: [EU, NA] }, pool: edge, steps: [{ geofence: { to: client_continent, else: keep_all } }, healthy, nearest, { first: 1 }] }',
      '      - { name: others, match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }', '    when_all_down: servfail');
  } else {
    const half = Math.max(1, Math.floor(p.pool.length / 2));
    body.push('    pools:', `      primary: { pops: [${p.pool.slice(0, half).join(', ')}] }`, `      backup: { pops: [${p.pool.slice(half).join(', ') || p.pool[0]}] }`, '    rules:',
      '      - { name: primary-then-backup, match: default, pools: [primary, backup], steps: [{ failover: { min_healthy: 1 } }, healthy, nearest, { first: 1 }] }',
      '    when_all_down: fail_open');
  }
  const lines = [`# generated by test/bench/scale/generate.ts (${key})`, 'policies:'];
  const names = onePolicyPerName ? p.names : [p.names[0]];
  for (const name of names) lines.push(...head(name), ...body);
  return `${lines.join('\n')}\n`;
}

export function generateConfig(dir: string, size: ScaleSize, options: { seed?: number; onePolicyPerName?: boolean } = {}): GeneratedConfig {
  const random = seededRandom(options.seed ?? 15);
  const configDir = join(dir, 'config');
  const geoDataDir = join(dir, 'geo-data');
  for (const d of [join(configDir, 'steering'), join(configDir, 'zones'), geoDataDir]) mkdirSync(d, { recursive: true });
  const pops = popsOf(size.pops, random);
  const ids = pops.map((p) => p.id);

  writeFileSync(join(geoDataDir, 'pops.yaml'), `pops:\n${pops.map((p) =>
    `  - { id: ${p.id}, name: ${p.id}, lat: ${p.lat}, lon: ${p.lon}, country: ${p.country}, continent: ${p.continent}, ipv4: [${p.ipv4}], ipv6: ["2001:db8:${(pops.indexOf(p) + 1).toString(16)}::1"] }`).join('\n')}\n`);
  writeFileSync(join(geoDataDir, 'probes.yaml'), [
    'defaults: { interval: 2s, timeout: 1s, fall: 2, rise: 3, initial_state: up }',
    'targets:', ...pops.map((p) => `  ${p.id}-monitor: { kind: external }`),
    'pops:', ...pops.map((p) => `  ${p.id}: { probes: [${p.id}-monitor] }`), ''].join('\n'));
  // Custom networks: distinct /24s of 10.0.0.0/8, a location or (one in ten) a pinned PoP.
  const networkLines = ['networks:'];
  const slots = sampleWithout(Array.from({ length: 65536 }, (_, i) => i), size.customNetworks, random);
  slots.forEach((slot, k) => {
    const cidr = `10.${slot >> 8}.${slot & 255}.0/24`;
    if (k % 10 === 0) networkLines.push(`  ${cidr}: { pop: ${ids[k % ids.length]}, name: pinned-${k} }`);
    else {
      const [lat, lon, country, continent] = METROS[Math.floor(random() * METROS.length)];
      networkLines.push(`  ${cidr}: { lat: ${(lat + (random() - 0.5) * 6).toFixed(3)}, lon: ${(lon + (random() - 0.5) * 6).toFixed(3)}, country: ${country}, continent: ${continent}, name: net-${k} }`);
    }
  });
  writeFileSync(join(geoDataDir, 'networks.yaml'), `${networkLines.join('\n')}\n`);

  writeFileSync(join(configDir, 'popsteer.yaml'), `pop: ${ids[0]}\ngeo_data: ../geo-data\n`);
  writeFileSync(join(configDir, 'zones', `${ZONE}.yaml`), [
    `zone: ${ZONE}`, 'ttl: 300',
    'soa: { mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60, ttl: 3600 }',
    'records:', '  "@": { NS: [ns1, ns2] }', '  ns1: { A: 192.0.2.53 }', '  ns2: { A: 198.51.100.53 }', ''].join('\n'));

  const policies: GeneratedPolicy[] = [];
  for (let i = 0; i < size.policies; i++) {
    const poolSize = Math.min(ids.length, 8 + Math.floor(random() * 57));
    const names: string[] = [];
    for (let n = i; n < size.names; n += size.policies) names.push(`c${n}.${ZONE}`);
    if (names.length === 0) names.push(`c${i}.${ZONE}`);
    policies.push({ file: join(configDir, 'steering', `p${String(i).padStart(4, '0')}.yaml`), kind: kindOf(i), names, pool: sampleWithout(ids, poolSize, random), ttl: 60 });
  }
  const write = (p: GeneratedPolicy): void => writeFileSync(p.file, policyYaml(p, `${size.pops}/${size.policies}`, options.onePolicyPerName ?? false));
  policies.forEach(write);
  return {
    configDir, geoDataDir, pops, policies, zone: ZONE,
    rewritePolicy(i, ttl) {
      policies[i].ttl = ttl;
      write(policies[i]);
    },
  };
}
