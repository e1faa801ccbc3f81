// One CIDR parser for settings, RRL, ECS trust, custom networks and policies:
// its rules and messages, and the one rule that differs by use.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCidrProblem, networkContains, parseCidr, type CidrNetwork, type CidrProblem } from '../../../server/lib/cidr.ts';
import { parseAddressInto } from '../../../server/lib/address.ts';

const problemOf = (text: string, use: 'match' | 'trie' = 'match'): CidrProblem['problem'] | 'ok' => {
  const parsed = parseCidr(text, use);
  return isCidrProblem(parsed) ? parsed.problem : 'ok';
};

test('IPv4 and IPv6 networks parse, the default rrl_exempt included', () => {
  for (const text of ['127.0.0.1/32', '::1/128', '198.51.100.0/24', '2001:db8:100::/48', '0.0.0.0/0', '::/0']) {
    assert.equal(problemOf(text), 'ok', text);
  }
  const v6 = parseCidr('2001:db8:100::/48', 'trie') as CidrNetwork;
  assert.equal(v6.family, 6);
  assert.equal(v6.prefixLength, 48);
});

test('bad syntax, host bits and IPv4-mapped text are refused with the same messages everywhere', () => {
  assert.deepEqual(['10.0.0.0', '10.0.0.0/33', '2001:db8::/129', 'x/8', '10.0.0.0/+8', '/8'].map((t) => problemOf(t)), Array(6).fill('syntax'));
  const hostBits = parseCidr('10.0.0.1/8', 'trie') as CidrProblem;
  assert.equal(hostBits.problem, 'host-bits');
  assert.equal(hostBits.message, '"10.0.0.1/8" has host bits set beyond /8; did you mean 10.0.0.0/8?');
  assert.match((parseCidr('2001:db8::1/64', 'match') as CidrProblem).message, /did you mean 2001:db8::\/64\?/);
  assert.equal(problemOf('::ffff:1.2.3.0/24'), 'ipv4-space');
});

test('only networks for a trie are refused for overlapping the IPv4 space of IPv6', () => {
  for (const text of ['::1/128', '::/0', '::/96', '::fffe:0:0/95']) {
    assert.equal(problemOf(text, 'match'), 'ok', text);
    assert.equal(problemOf(text, 'trie'), 'ipv4-space', text);
  }
  assert.equal(problemOf('64:ff9b::/96', 'trie'), 'ok');
  // ::ffff:0:0 itself reads as the IPv4 address 0.0.0.0, refused for either use.
  assert.equal(problemOf('::ffff:0:0/96', 'match'), 'ipv4-space');
});

test('networkContains compares family first, then the prefix', () => {
  const address = new Uint8Array(16);
  const loopback = parseCidr('::1/128', 'match') as CidrNetwork;
  const v4 = parseCidr('198.51.100.0/24', 'match') as CidrNetwork;
  assert.equal(networkContains(loopback, parseAddressInto('::1', address), address), true);
  assert.equal(networkContains(v4, parseAddressInto('198.51.100.9', address), address), true);
  assert.equal(networkContains(v4, parseAddressInto('198.51.101.9', address), address), false);
  // 198.51.100.9 is stored in the first 4 bytes; an IPv6 network over those bytes must not match it.
  const v6 = parseCidr('c633::/16', 'match') as CidrNetwork;
  assert.equal(networkContains(v6, parseAddressInto('198.51.100.9', address), address), false);
});
