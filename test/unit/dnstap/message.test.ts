// The hand-written dnstap encoder against an independent decoder (protobufjs
// with dnstap.proto's field numbers): random field values, both message
// types; the Frame Streams control frames; the decision in the extra field.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecisionExtra } from '../../../server/dnstap/extra.ts';
import {
  CONTROL_ACCEPT, CONTROL_READY, CONTROL_START, ControlFrameReader, DNSTAP_CONTENT_TYPE, controlFrame,
} from '../../../server/dnstap/frame-streams.ts';
import { AUTH_QUERY, AUTH_RESPONSE, DnstapExchange, INET, INET6, SOCKET_TCP, SOCKET_UDP } from '../../../server/dnstap/message.ts';
import { decodeDnstap } from '../../helpers/dnstap.ts';

const bytes = (max: number) => fc.uint8Array({ maxLength: max });

test('every encoded frame decodes to the fields that were set, and frameSize() is its exact length', () => {
  fc.assert(fc.property(
    fc.record({
      ipv6: fc.boolean(), tcp: fc.boolean(), response: fc.boolean(), wildcard: fc.boolean(),
      queryPort: fc.integer({ min: 0, max: 65535 }), responsePort: fc.integer({ min: 0, max: 65535 }),
      seconds: fc.integer({ min: 0, max: 2 ** 40 }), nanoseconds: fc.integer({ min: 0, max: 999_999_999 }),
      query: bytes(600), reply: bytes(70_000), extra: bytes(300), address: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      identity: fc.string({ maxLength: 40 }),
    }),
    (c) => {
      const e = new DnstapExchange();
      e.identity = Buffer.from(c.identity);
      e.version = Buffer.from('popsteer test');
      e.extra = c.extra;
      e.extraLength = c.extra.length;
      e.family = c.ipv6 ? INET6 : INET;
      e.protocol = c.tcp ? SOCKET_TCP : SOCKET_UDP;
      e.queryAddress.set(c.address);
      e.responseAddress.set(c.address.map((b) => b ^ 0xff));
      e.responseAddressLength = c.wildcard ? 0 : c.ipv6 ? 16 : 4;
      e.queryPort = c.queryPort;
      e.responsePort = c.responsePort;
      e.querySeconds = c.seconds;
      e.queryNanoseconds = c.nanoseconds;
      e.responseSeconds = c.seconds + 1;
      e.responseNanoseconds = 999_999_999 - c.nanoseconds;
      e.query = c.query;
      e.queryLength = c.query.length;
      e.response = c.reply;
      e.responseLength = c.reply.length;
      const type = c.response ? AUTH_RESPONSE : AUTH_QUERY;
      const size = e.frameSize(type);
      const out = new Uint8Array(size + 8).fill(0xee);
      assert.equal(e.writeFrame(type, out, 3), size + 3);
      assert.equal(out[size + 3], 0xee, 'nothing written past frameSize');
      assert.equal(Buffer.from(out).readUInt32BE(3), size - 4, 'the Frame Streams length prefix');
      const frame = decodeDnstap(out.subarray(7, 3 + size));
      const m = frame.message;
      const addressLength = c.ipv6 ? 16 : 4;
      assert.equal(frame.type, 'MESSAGE');
      assert.equal(Buffer.from(frame.identity ?? []).toString(), c.identity);
      assert.deepEqual(Buffer.from(frame.extra ?? []), Buffer.from(c.extra));
      assert.equal(m.type, c.response ? 'AUTH_RESPONSE' : 'AUTH_QUERY');
      assert.equal(m.socket_family, c.ipv6 ? 'INET6' : 'INET');
      assert.equal(m.socket_protocol, c.tcp ? 'TCP' : 'UDP');
      assert.deepEqual(Buffer.from(m.query_address!), Buffer.from(c.address.subarray(0, addressLength)));
      assert.equal(m.response_address === undefined, c.wildcard);
      assert.equal(m.query_port, c.queryPort);
      assert.equal(m.response_port, c.responsePort);
      assert.equal(m.query_time_sec, c.seconds);
      assert.equal(m.query_time_nsec, c.nanoseconds);
      if (c.response) {
        assert.deepEqual(Buffer.from(m.response_message!), Buffer.from(c.reply));
        assert.equal(m.response_time_sec, c.seconds + 1);
        assert.equal(m.response_time_nsec, 999_999_999 - c.nanoseconds);
        assert.equal(m.query_message, undefined);
      } else {
        assert.deepEqual(Buffer.from(m.query_message!), Buffer.from(c.query));
        assert.equal(m.response_message, undefined);
      }
    },
  ), { numRuns: 300 });
});

test('control frames: READY and START carry the content type; ACCEPT is read back in pieces; oversized frames are refused', () => {
  const ready = controlFrame(CONTROL_READY, DNSTAP_CONTENT_TYPE);
  assert.equal(ready.readUInt32BE(0), 0, 'escape');
  assert.equal(ready.readUInt32BE(4), ready.length - 8);
  assert.equal(ready.readUInt32BE(8), CONTROL_READY);
  assert.equal(ready.toString('utf8', 20), DNSTAP_CONTENT_TYPE);
  assert.equal(controlFrame(CONTROL_START, DNSTAP_CONTENT_TYPE).readUInt32BE(8), CONTROL_START);

  const reader = new ControlFrameReader();
  const accept = controlFrame(CONTROL_ACCEPT, DNSTAP_CONTENT_TYPE);
  assert.deepEqual(reader.push(accept.subarray(0, 5)), []);
  assert.deepEqual(reader.push(accept.subarray(5)), [{ type: CONTROL_ACCEPT, contentTypes: [DNSTAP_CONTENT_TYPE] }]);

  const huge = Buffer.alloc(12);
  huge.writeUInt32BE(0, 0);
  huge.writeUInt32BE(100_000, 4);
  assert.throws(() => new ControlFrameReader().push(huge), /control frame of 100000 octets/);
  assert.throws(() => new ControlFrameReader().push(Buffer.from([0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9])), /data frame/);
});

test('the extra field is the decision as JSON, with the deciding network masked to its prefix', () => {
  const extra = new DecisionExtra((policy, rule, endpoint) => ({ policy: `p${policy}`, rule: `rule "${rule}"`, endpoint: endpoint >= 0 ? `pop${endpoint}` : '(none)' }));
  const text = (length: number): unknown => JSON.parse(Buffer.from(extra.bytes.subarray(0, length)).toString('utf8'));
  const ecsAddress = new Uint8Array(16);
  ecsAddress.set([81, 2, 69, 255]);
  const resolver = new Uint8Array(16);
  resolver.set([192, 0, 2, 53]);
  assert.deepEqual(text(extra.write({ policy: 1, rule: 2, endpoint: 3, class: 1234, ecsBits: 22, ecsFamily: 4, ecsAddress }, 4, resolver)),
    { policy: 'p1', rule: 'rule "2"', pop: 'pop3', class: 1234, client: '81.2.68.0/22' });
  assert.deepEqual(text(extra.write({ policy: 0, rule: 0, endpoint: -1, class: 0, ecsBits: -1, ecsFamily: 4, ecsAddress }, 4, resolver)),
    { policy: 'p0', rule: 'rule "0"', pop: '(none)', class: 0, client: '192.0.2.53/32' });
  const v6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(text(extra.write({ policy: 0, rule: 0, endpoint: 0, class: 7, ecsBits: 56, ecsFamily: 6, ecsAddress: v6 }, 4, resolver)),
    { policy: 'p0', rule: 'rule "0"', pop: 'pop0', class: 7, client: '2001:db8:1234:5600:0:0:0:0/56' });
});
