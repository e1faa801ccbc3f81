// Query sets for dnsperf, sampled from the GeoLite2-City database.
//
// Debian 12's dnsperf (2.10) has no per-line EDNS option syntax in its text
// input: -E adds ONE option to every packet. Its -B mode, however, reads raw
// wire-format queries (each preceded by a 2-byte length, as on TCP), so every
// query can carry its own ECS option. All three sets are written that way.

import { readFileSync, writeFileSync } from 'node:fs';
import { Reader, type CityResponse } from 'maxmind';
import { CLASS_IN, EDNS_OPTION_ECS, TYPE_A, TYPE_OPT } from '../../../server/dns/constants.ts';
import { formatAddress } from '../../../server/lib/address.ts';
import { seededRandom } from '../../unit/geo/helpers.ts';
import { nearestPop, type Scenario } from './scenario.ts';

export interface SampledNetwork {
  /** "203.0.113.0/24" or "2001:db8:1::/48": the ECS source the queries carry. */
  subnet: string;
  family: 1 | 2;
  sourcePrefix: number;
  /** The network's address bytes, truncated to the source prefix (RFC 7871 §6). */
  address: Buffer;
  lat: number;
  lon: number;
  /** The reference answer: the PoP nearest to the database's location. */
  expectedPopId: string;
  expectedAddress: string;
}

export interface QuerySets {
  /** One www A query per sampled network, each with its own ECS option. */
  ecs: string;
  /** www A with EDNS and no ECS: servers locate the resolver (127.0.0.1). */
  noEcs: string;
  /** ECS www queries mixed with static names, NXDOMAIN names and names outside the zones. */
  mixed: string;
  samples: SampledNetwork[];
  mixShares: { steered: number; staticName: number; nxdomain: number; outOfZone: number };
}

const IPV4_PREFIX = 24;
const IPV6_PREFIX = 48;
// Where the 2019 database has IPv6 networks: the RIRs' main allocations.
const IPV6_REGIONS = [0x2001, 0x2400, 0x2600, 0x2800, 0x2a00, 0x2c00];
const EDNS_UDP_SIZE = 1232;

/**
 * Samples `count` distinct networks that the database locates (latitude and
 * longitude present): IPv4 /24s and IPv6 /48s, `ipv6Share` of them IPv6.
 */
export function sampleNetworks(scenario: Scenario, count: number, ipv6Share: number, seed = 8): SampledNetwork[] {
  const reader = new Reader<CityResponse>(readFileSync(scenario.mmdb));
  const random = seededRandom(seed);
  const seen = new Set<string>();
  const samples: SampledNetwork[] = [];
  const wantV6 = Math.round(count * ipv6Share);
  const wantV4 = count - wantV6;
  const draw = (family: 1 | 2, want: number): void => {
    const maxTries = want * 400;
    let found = 0;
    for (let attempt = 0; attempt < maxTries && found < want; attempt++) {
      const bytes = Buffer.alloc(family === 1 ? 4 : 16);
      let text: string;
      if (family === 1) {
        bytes[0] = 1 + Math.floor(random() * 223); // unicast 1–223
        bytes[1] = Math.floor(random() * 256);
        bytes[2] = Math.floor(random() * 256);
        text = formatAddress(4, bytes);
      } else {
        const region = IPV6_REGIONS[Math.floor(random() * IPV6_REGIONS.length)];
        // Inside the region's /12 (0x2001 is a /16 by itself).
        const high = region === 0x2001 ? region : region | Math.floor(random() * 16);
        bytes.writeUInt16BE(high, 0);
        bytes.writeUInt16BE(Math.floor(random() * 65536), 2);
        bytes.writeUInt16BE(Math.floor(random() * 65536), 4);
        text = formatAddress(6, bytes);
      }
      const prefix = family === 1 ? IPV4_PREFIX : IPV6_PREFIX;
      const subnet = `${text}/${prefix}`;
      if (seen.has(subnet)) continue;
      const location = reader.get(text)?.location;
      if (location?.latitude === undefined || location.longitude === undefined) continue;
      seen.add(subnet);
      const pop = nearestPop(scenario.pops, location.latitude, location.longitude);
      samples.push({
        subnet, family, sourcePrefix: prefix, address: bytes.subarray(0, prefix / 8),
        lat: location.latitude, lon: location.longitude, expectedPopId: pop.id, expectedAddress: pop.ipv4,
      });
      found++;
    }
    if (found < want) throw new Error(`only ${found} of ${want} located ${family === 1 ? 'IPv4' : 'IPv6'} networks found in ${maxTries} tries`);
  };
  draw(1, wantV4);
  draw(2, wantV6);
  // Interleave the families as a resolver population would.
  for (let i = samples.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [samples[i], samples[j]] = [samples[j], samples[i]];
  }
  return samples;
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) {
    const bytes = Buffer.from(label, 'ascii');
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** A wire-format query: no RD (we ask authoritative servers), EDNS, optional ECS. */
export function encodeQuery(name: string, ecs: SampledNetwork | null, id = 0): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(1, 4); // QDCOUNT
  header.writeUInt16BE(1, 10); // ARCOUNT: the OPT record
  const question = Buffer.alloc(4);
  question.writeUInt16BE(TYPE_A, 0);
  question.writeUInt16BE(CLASS_IN, 2);
  let option = Buffer.alloc(0);
  if (ecs) {
    option = Buffer.alloc(8 + ecs.address.length);
    option.writeUInt16BE(EDNS_OPTION_ECS, 0);
    option.writeUInt16BE(4 + ecs.address.length, 2);
    option.writeUInt16BE(ecs.family, 4);
    option[6] = ecs.sourcePrefix;
    option[7] = 0; // scope: must be 0 in queries
    ecs.address.copy(option, 8);
  }
  const opt = Buffer.alloc(11);
  // opt[0] = 0: root owner name
  opt.writeUInt16BE(TYPE_OPT, 1);
  opt.writeUInt16BE(EDNS_UDP_SIZE, 3);
  opt.writeUInt32BE(0, 5); // extended RCODE, version 0, no DO
  opt.writeUInt16BE(option.length, 9);
  return Buffer.concat([header, encodeName(name), question, opt, option]);
}

/** dnsperf -B input: every packet preceded by its 2-byte length. */
function writeBinaryDataFile(path: string, packets: Buffer[]): void {
  const framed: Buffer[] = [];
  for (const packet of packets) {
    const length = Buffer.alloc(2);
    length.writeUInt16BE(packet.length, 0);
    framed.push(length, packet);
  }
  writeFileSync(path, Buffer.concat(framed));
}

export function writeQuerySets(scenario: Scenario, dir: string, networkCount: number): QuerySets {
  const samples = sampleNetworks(scenario, networkCount, 0.2);
  const steeredName = `${scenario.steeredLabel}.${scenario.zone}`;
  const staticName = `${scenario.nameservers[0].name}.${scenario.zone}`;
  const files = { ecs: `${dir}/queries-ecs.bin`, noEcs: `${dir}/queries-no-ecs.bin`, mixed: `${dir}/queries-mixed.bin` };
  writeBinaryDataFile(files.ecs, samples.map((s) => encodeQuery(steeredName, s)));
  writeBinaryDataFile(files.noEcs, [encodeQuery(steeredName, null)]);
  // Mixed: out of every 20 queries, 14 steered (own ECS), 2 a static name,
  // 2 NXDOMAIN inside the zone, 2 outside every zone (REFUSED).
  const mixShares = { steered: 14 / 20, staticName: 2 / 20, nxdomain: 2 / 20, outOfZone: 2 / 20 };
  const mixed: Buffer[] = [];
  for (let i = 0; i < samples.length; i++) {
    const slot = i % 20;
    if (slot < 14) mixed.push(encodeQuery(steeredName, samples[i]));
    else if (slot < 16) mixed.push(encodeQuery(staticName, null));
    else if (slot < 18) mixed.push(encodeQuery(`nx-${i}.${scenario.zone}`, samples[i]));
    else mixed.push(encodeQuery(i % 2 ? `www.example.org` : `cdn.example.net`, null));
  }
  writeBinaryDataFile(files.mixed, mixed);
  return { ...files, samples, mixShares };
}

/** Reads the first A record's address from a response, or null. */
export function firstAddressOf(response: Buffer): { rcode: number; address: string | null } {
  const rcode = response[3] & 0x0f;
  const qdcount = response.readUInt16BE(4);
  const ancount = response.readUInt16BE(6);
  let offset = 12;
  const skipName = (): void => {
    while (offset < response.length) {
      const len = response[offset];
      if (len === 0) { offset += 1; return; }
      if ((len & 0xc0) === 0xc0) { offset += 2; return; }
      offset += 1 + len;
    }
  };
  for (let i = 0; i < qdcount; i++) { skipName(); offset += 4; }
  for (let i = 0; i < ancount && offset < response.length; i++) {
    skipName();
    const type = response.readUInt16BE(offset);
    const rdlength = response.readUInt16BE(offset + 8);
    offset += 10;
    if (type === TYPE_A && rdlength === 4) return { rcode, address: formatAddress(4, response.subarray(offset, offset + 4)) };
    offset += rdlength;
  }
  return { rcode, address: null };
}
