// Networks in CIDR notation, parsed in one place with one set of rules and
// messages: the settings (rrl_exempt, ecs_trust), the RRL limiter, the ECS
// trust check, geo-data/networks.yaml and policy client_cidr/resolver_cidr
// all call parseCidr. Host bits are an error everywhere, so a typo cannot
// cover more than intended, and the message offers the network meant.
//
// Two uses differ in one rule only. Networks compared family first
// (networkContains: rrl_exempt, ecs_trust) may be any IPv6 network, ::1/128
// and ::/0 included. Networks put in a trie ('trie': custom networks, policy
// CIDRs) share it with IPv4, which lives at ::/96 there (and ::ffff:0:0/96
// aliases it), so an IPv6 network overlapping those is refused.

import { formatAddress, maskAddress, parseAddressInto, prefixMatches } from './address.ts';

export interface CidrNetwork {
  family: 4 | 6;
  /** 16 bytes, IPv4 in the first 4; host bits zero. */
  address: Uint8Array;
  prefixLength: number;
}

export interface CidrProblem {
  problem: 'syntax' | 'host-bits' | 'ipv4-space';
  /** A sentence naming the text and what to write instead. */
  message: string;
}

/** How the network will be used: compared family first, or put in a trie shared with IPv4. */
type CidrUse = 'match' | 'trie';

/** IPv6 prefixes (/96) that hold IPv4 addresses in a trie (::/96) or alias them (::ffff:0:0/96). */
const IPV4_SPACES_IN_IPV6: readonly Uint8Array[] = [new Uint8Array(16), Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0])];

/** The network written as `text`, or what is wrong with it. */
export function parseCidr(text: string, use: CidrUse): CidrNetwork | CidrProblem {
  const slash = text.indexOf('/');
  const bitsText = slash < 0 ? '' : text.slice(slash + 1);
  const addressText = text.slice(0, Math.max(0, slash));
  const address = new Uint8Array(16);
  const family = slash < 0 ? 0 : parseAddressInto(addressText, address);
  if (family === 0 || !/^\d{1,3}$/.test(bitsText)) return syntaxProblem(text);
  // ::ffff:a.b.c.d reads as IPv4 (as dual-stack sockets report IPv4 peers).
  if (family === 4 && addressText.includes(':')) return ipv4SpaceProblem(text);
  const prefixLength = Number(bitsText);
  if (prefixLength > (family === 4 ? 32 : 128)) return syntaxProblem(text);
  const masked = address.slice();
  maskAddress(masked, prefixLength);
  if (masked.some((b, i) => b !== address[i])) {
    return { problem: 'host-bits', message: `"${text}" has host bits set beyond /${prefixLength}; did you mean ${formatAddress(family, masked)}/${prefixLength}?` };
  }
  if (use === 'trie' && family === 6 && IPV4_SPACES_IN_IPV6.some((space) => overlaps(address, prefixLength, space, 96))) return ipv4SpaceProblem(text);
  return { family, address, prefixLength };
}

/** Whether parseCidr refused the text. */
export function isCidrProblem(parsed: CidrNetwork | CidrProblem): parsed is CidrProblem {
  return 'problem' in parsed;
}

/** Is `address` (16 bytes, of `family`) inside `network`? */
export function networkContains(network: CidrNetwork, family: number, address: Uint8Array): boolean {
  return network.family === family && prefixMatches(address, network.address, network.prefixLength);
}

function syntaxProblem(text: string): CidrProblem {
  return { problem: 'syntax', message: `"${text}" is not a network in CIDR notation (e.g. 198.51.100.0/24 or 2001:db8:100::/48)` };
}

function ipv4SpaceProblem(text: string): CidrProblem {
  return { problem: 'ipv4-space', message: `"${text}" lies in the IPv4 space of IPv6 (::/96, ::ffff:0:0/96): write it as an IPv4 network (e.g. 192.0.2.0/24)` };
}

function overlaps(a: Uint8Array, aLength: number, b: Uint8Array, bLength: number): boolean {
  return prefixMatches(a, b, Math.min(aLength, bLength));
}
