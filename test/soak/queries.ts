// Wire-format query sets for floods and the soak, built with the bench's
// encoder: never-repeated random names, and ECS subnets that are all
// distinct (IPv4 /24s spread over the unicast space, one in ten an IPv6 /56).

import { encodeQuery, type SampledNetwork } from '../bench/peers/queries.ts';

type EcsSource = Pick<SampledNetwork, 'family' | 'sourcePrefix' | 'address'>;

/** The n-th distinct ECS subnet. */
export function distinctSubnet(n: number): EcsSource {
  if (n % 10 === 9) {
    const address = Buffer.alloc(7);
    address.writeUInt16BE(0x2a00 | ((n >> 16) & 0xff), 0);
    address.writeUInt32BE(Math.imul(n, 0x85ebca6b) >>> 0, 2);
    address[6] = n & 0xff;
    return { family: 2, sourcePrefix: 56, address };
  }
  // 1.0.0.0 – 223.255.255.0, walked with a stride so consecutive queries land far apart.
  const index = Math.imul(n, 2654435761) >>> 8;
  return { family: 1, sourcePrefix: 24, address: Buffer.from([1 + ((index >> 16) % 223), (index >> 8) & 0xff, index & 0xff]) };
}

/** `count` queries for `name`, each with its own ECS subnet (subnets offset … offset+count−1). */
export function subnetQueries(name: string, count: number, offset: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) out.push(encodeQuery(name, distinctSubnet(offset + i) as SampledNetwork, (offset + i) & 0xffff));
  return out;
}

/** Random-looking, never repeated names under cdn.example: every one an NXDOMAIN. */
export function randomNameQueries(count: number, offset: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const n = offset + i;
    out.push(encodeQuery(`q${Math.imul(n, 0x9e3779b1) >>> 0}-${n.toString(36)}.cdn.example`, null, n & 0xffff));
  }
  return out;
}

/**
 * The soak's traffic: every steered name of the example policies with ECS
 * from `networks` distinct subnets, plus static names and a few NXDOMAINs.
 */
export function soakMix(networks: number): Buffer[] {
  const steered = ['www.cdn.example', 'api.cdn.example', 'video.cdn.example', 'eu.cdn.example'];
  const out: Buffer[] = [];
  for (let i = 0; i < networks; i++) {
    const slot = i % 10;
    if (slot < 7) out.push(encodeQuery(steered[slot % steered.length], distinctSubnet(i) as SampledNetwork, i & 0xffff));
    else if (slot < 9) out.push(encodeQuery(slot === 7 ? 'status.cdn.example' : 'cdn.example', null, i & 0xffff));
    else out.push(encodeQuery(`nx-${i}.cdn.example`, null, i & 0xffff));
  }
  return out;
}
