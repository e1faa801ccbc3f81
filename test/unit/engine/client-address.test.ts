// Which address decides, with one reused DecidingAddress over many queries:
// ECS bits past the cap are cleared, and a new resolver is parsed afresh
// even though the text of the previous one is kept to skip re-parsing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryView } from '../../../server/dns/query.ts';
import { FAMILY_IPV4, FAMILY_IPV6 } from '../../../server/dns/constants.ts';
import { chooseDecidingAddress, DecidingAddress } from '../../../server/engine/client-address.ts';

function viewWithEcs(family: number, sourcePrefix: number, bytes: number[]): QueryView {
  const view = new QueryView();
  view.ecsPresent = true;
  view.ecsFamily = family;
  view.ecsSourcePrefix = sourcePrefix;
  view.ecsAddress.fill(0);
  view.ecsAddress.set(bytes);
  return view;
}

test('ECS past the /24 and /56 caps: the extra bits are cleared, partial octets masked', () => {
  const out = new DecidingAddress();
  chooseDecidingAddress(viewWithEcs(FAMILY_IPV4, 32, [81, 2, 69, 160]), '192.0.2.1', null, out);
  assert.equal(out.fromEcs, true);
  assert.equal(out.bits, 24);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [81, 2, 69, 0]);

  chooseDecidingAddress(viewWithEcs(FAMILY_IPV4, 20, [81, 2, 0xff, 0xff]), '192.0.2.1', null, out);
  assert.equal(out.bits, 20);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [81, 2, 0xf0, 0]);

  const v6 = [0x20, 0x01, 0x02, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 2, 3, 4, 5, 6];
  chooseDecidingAddress(viewWithEcs(FAMILY_IPV6, 64, v6), '192.0.2.1', null, out);
  assert.equal(out.bits, 56);
  assert.deepEqual([...out.bytes], [...v6.slice(0, 7), 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(out.words[1], new Int32Array(out.bytes.buffer, 0, 4)[1], 'words view the same bytes');
});

test('without ECS the resolver decides, parsed again whenever its address changes', () => {
  const out = new DecidingAddress();
  const noEcs = new QueryView();
  chooseDecidingAddress(noEcs, '198.51.100.7', null, out);
  assert.equal(out.family, 4);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [198, 51, 100, 7]);
  chooseDecidingAddress(noEcs, '198.51.100.7', null, out);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [198, 51, 100, 7]);
  chooseDecidingAddress(noEcs, '2001:db8::53', null, out);
  assert.equal(out.family, 6);
  assert.equal(out.bits, 128);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
  assert.equal(out.bytes[15], 0x53);
  chooseDecidingAddress(noEcs, '203.0.113.9', null, out);
  assert.equal(out.family, 4);
  assert.deepEqual([...out.bytes.subarray(0, 5)], [203, 0, 113, 9, 0]);
});

test('an untrusted resolver decides with its own address even when it sends ECS', () => {
  const out = new DecidingAddress();
  const trustOnly = (family: 4 | 6, address: Uint8Array): boolean => family === 4 && address[0] === 10;
  chooseDecidingAddress(viewWithEcs(FAMILY_IPV4, 24, [81, 2, 69]), '10.0.0.1', trustOnly, out);
  assert.equal(out.fromEcs, true);
  chooseDecidingAddress(viewWithEcs(FAMILY_IPV4, 24, [81, 2, 69]), '192.0.2.1', trustOnly, out);
  assert.equal(out.fromEcs, false);
  assert.equal(out.ecsFallback, true);
  assert.deepEqual([...out.bytes.subarray(0, 4)], [192, 0, 2, 1]);
});
