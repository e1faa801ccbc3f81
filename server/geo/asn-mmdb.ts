// An ASN source in MaxMind DB form: any database whose records carry
// `autonomous_system_number` (GeoLite2-ASN, GeoIP2-ISP, and the ASN
// databases of other publishers in the same format). The search tree is
// walked once and every network with an AS number is listed; the IPv4
// aliases of an IPv6 tree (::ffff:0:0/96, 2002::/16) are not walked twice.

import { Reader } from 'maxmind';
import { ConfigError } from '../config/errors.ts';
import type { AsnFileContent, AsnNetworkList } from './asn-networks.ts';
import { MmdbDataReader, treeRecordReader } from './mmdb-format.ts';

const METADATA_MARKER = Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1');
const DATA_SECTION_SEPARATOR = 16;
const KEYS = ['autonomous_system_number', 'autonomous_system_organization'];

export function isMmdb(bytes: Buffer): boolean {
  return bytes.lastIndexOf(METADATA_MARKER) >= 0;
}

export function readAsnMmdb(path: string, bytes: Buffer, networks: AsnNetworkList): AsnFileContent {
  let reader: Reader<never>;
  try {
    reader = new Reader<never>(bytes);
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_ASN_SOURCE', path, null, '', `not a valid MaxMind DB file (truncated or corrupt?): ${(err as Error).message}`);
  }
  const { nodeCount, recordSize, searchTreeSize, ipVersion } = reader.metadata;
  try {
    return walk(bytes, nodeCount, recordSize, searchTreeSize, ipVersion, networks);
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_ASN_SOURCE', path, null, '', `corrupt or truncated database: ${(err as Error).message}`);
  }
}

function walk(bytes: Buffer, nodeCount: number, recordSize: number, searchTreeSize: number, ipVersion: number, networks: AsnNetworkList): AsnFileContent {
  const readRecord = treeRecordReader(bytes, recordSize, nodeCount);
  const dataStart = searchTreeSize + DATA_SECTION_SEPARATOR;
  const data = new MmdbDataReader(bytes, dataStart, bytes.lastIndexOf(METADATA_MARKER));
  const organizations = new Map<number, string>();
  const asnAt = new Map<number, number>();
  const fields = new Int32Array(KEYS.length);
  const asnOf = (offset: number): number => {
    let asn = asnAt.get(offset);
    if (asn === undefined) {
      data.mapFields(data.recordPosition(offset), KEYS, fields);
      asn = data.number(fields[0]);
      if (!(asn >= 1 && asn <= 4294967295)) asn = 0;
      else if (fields[1] >= 0 && !organizations.has(asn)) organizations.set(asn, data.string(fields[1]));
      asnAt.set(offset, asn);
    }
    return asn;
  };
  // The node at ::/96: reached again through the aliases, walked only there.
  let ipv4Node = 0;
  if (ipVersion === 6) {
    for (let d = 0; d < 96 && ipv4Node < nodeCount; d++) ipv4Node = readRecord(ipv4Node, 0);
  }
  const address = new Uint8Array(16);
  const visit = (node: number, depth: number): void => {
    for (let bit = 0; bit < 2; bit++) {
      if (bit === 1) address[depth >> 3] |= 0x80 >> (depth & 7);
      const record = readRecord(node, bit);
      if (record < nodeCount) {
        const aliasOfIpv4 = ipVersion === 6 && record === ipv4Node && depth + 1 !== 96;
        if (!aliasOfIpv4 && depth + 1 < 128) visit(record, depth + 1);
      } else if (record > nodeCount) {
        const asn = asnOf(record - nodeCount - DATA_SECTION_SEPARATOR);
        if (asn > 0) addNetwork(networks, address, depth + 1, ipVersion, asn);
      }
      if (bit === 1) address[depth >> 3] &= ~(0x80 >> (depth & 7));
    }
  };
  visit(0, 0);
  return { layout: 'mmdb', organizations };
}

/** The network at `length` bits of the tree, as an IPv4 network when it lies under ::/96 of an IPv6 tree. */
const v4 = new Uint8Array(16);

function addNetwork(networks: AsnNetworkList, address: Uint8Array, length: number, ipVersion: number, asn: number): void {
  if (ipVersion === 4) return networks.add(4, address, length, asn);
  const underIpv4 = length >= 96 && address.subarray(0, 12).every((b) => b === 0);
  if (underIpv4) {
    v4.set(address.subarray(12, 16));
    return networks.add(4, v4, length - 96, asn);
  }
  networks.add(6, address, length, asn);
}
