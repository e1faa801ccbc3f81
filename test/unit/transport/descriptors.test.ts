// The open-file limit and the connection caps fitted under it: the limit as
// /proc/self/limits states it, caps kept when they fit, the TCP cap lowered
// (and the admin cap with it when small) when they do not, and a clear error
// when not even one connection fits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitConnectionCaps, openFileLimit, parseOpenFileLimit } from '../../../server/transport/descriptors.ts';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            4096                 524288               files
Max locked memory         8388608              8388608              bytes
`;

test('the soft open-file limit is read from /proc/self/limits; unlimited or absent is null', () => {
  assert.equal(parseOpenFileLimit(LIMITS), 4096);
  assert.equal(parseOpenFileLimit(LIMITS.replace('4096   ', 'unlimited')), null);
  assert.equal(parseOpenFileLimit('Limit Soft Hard\n'), null);
  const own = openFileLimit();
  assert.ok(own === null || own > 0, `this process: ${own}`);
});

test('caps that fit with the reserve are kept', () => {
  assert.deepEqual(fitConnectionCaps({ tcp: 1000, admin: 64 }, 4096, 512), { caps: { tcp: 1000, admin: 64 }, lowered: '' });
  assert.deepEqual(fitConnectionCaps({ tcp: 1000, admin: 64 }, null, 512), { caps: { tcp: 1000, admin: 64 }, lowered: '' });
});

test('caps that do not fit are lowered under the limit, and the reason names the limit to raise', () => {
  const fitted = fitConnectionCaps({ tcp: 1000, admin: 64 }, 1024, 512);
  assert.deepEqual(fitted.caps, { tcp: 448, admin: 64 });
  assert.ok(fitted.caps.tcp + fitted.caps.admin + 512 <= 1024);
  assert.match(fitted.lowered, /open-file limit \(RLIMIT_NOFILE\) is 1024/);
  assert.match(fitted.lowered, /raise the limit to 1576/);
  // A tight limit also trims the admin cap, leaving most of the room to DNS.
  const tight = fitConnectionCaps({ tcp: 1000, admin: 64 }, 600, 512);
  assert.deepEqual(tight.caps, { tcp: 77, admin: 11 });
});

test('a limit that leaves no room for one connection is an error saying what to raise', () => {
  assert.throws(() => fitConnectionCaps({ tcp: 1000, admin: 64 }, 500, 512), /RLIMIT_NOFILE\) is 500.*raise it .*to at least 1576/);
});
