// Client networks in CIDR notation for the RRL exempt list and the trusted
// ECS resolvers. Parsed once at
// start-up (settings) and again in each worker; host bits are an error, as
// in the custom networks file, so a typo cannot exempt more than intended.

import { maskAddress, parseAddressInto, prefixMatches } from '../geo/address.ts';

export interface CidrNetwork {
  family: 4 | 6;
  /** 16 bytes, IPv4 in the first 4. */
  address: Uint8Array;
  prefixLength: number;
}

/** The network, or a sentence saying what is wrong with the text. */
export function parseNetwork(text: string): CidrNetwork | string {
  const slash = text.indexOf('/');
  const bitsText = slash < 0 ? '' : text.slice(slash + 1);
  const address = new Uint8Array(16);
  const family = slash < 0 ? 0 : parseAddressInto(text.slice(0, slash), address);
  if (family === 0 || !/^\d{1,3}$/.test(bitsText) || Number(bitsText) > (family === 4 ? 32 : 128)) {
    return `"${text}" is not a network in CIDR notation (e.g. 198.51.100.0/24 or 2001:db8:100::/56)`;
  }
  const prefixLength = Number(bitsText);
  const masked = address.slice();
  maskAddress(masked, prefixLength);
  if (masked.some((b, i) => b !== address[i])) return `"${text}" has host bits set beyond /${prefixLength}`;
  return { family, address, prefixLength };
}

/** Is `address` (16 bytes, of `family`) inside `network`? */
export function networkContains(network: CidrNetwork, family: number, address: Uint8Array): boolean {
  return network.family === family && prefixMatches(address, network.address, network.prefixLength);
}
