// The conformance table against the Engine in-process: raw bytes in, raw
// bytes out, no sockets. Every reply is also decoded by dns-packet and dns2.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Engine, TRANSPORT_TCP, TRANSPORT_UDP } from '../../server/engine/engine.ts';
import { zonesOnlySnapshot } from './snapshot.ts';
import { CASES, CONFORMANCE_CONFIG, describeRecord, RCODE } from './cases.ts';
import { checkExpectation, checkInvariants } from './verify.ts';
import { CLASS_CH, TYPE, query } from './wire.ts';

const POP_ID = 'conformance-pop';
const CLIENT = { address: '127.0.0.1', family: 0 };

function engineFor(versionBind: string | null = null): Engine {
  return new Engine(zonesOnlySnapshot(CONFORMANCE_CONFIG), { popId: POP_ID, versionBind });
}

function ask(engine: Engine, packet: Uint8Array, transport: 'udp' | 'tcp'): Buffer | null {
  // A fresh copy, as a socket would hand over, so a parser that wrote into its input would be caught.
  const input = Buffer.from(packet);
  const size = engine.handle(input, input.length, transport === 'udp' ? TRANSPORT_UDP : TRANSPORT_TCP, CLIENT);
  assert.deepEqual(input, Buffer.from(packet), 'the query buffer is left untouched');
  return size === 0 ? null : Buffer.from(engine.writer.buf.subarray(0, size));
}

describe('conformance table, engine in-process', () => {
  const engine = engineFor();
  for (const c of CASES) {
    test(`${c.name} (${c.ref})`, () => {
      const transport = c.transport ?? 'udp';
      const reply = ask(engine, c.packet, transport);
      if (c.expect === 'drop') {
        assert.equal(reply, null, 'no reply');
        return;
      }
      assert.ok(reply, 'a reply');
      checkExpectation(c, checkInvariants(c.packet, reply, transport), { popId: POP_ID });
    });
  }
});

test('CHAOS TXT version.bind answers the configured string', () => {
  const engine = engineFor('popsteer-test 1.2');
  const packet = query('version.bind', TYPE.TXT, { klass: CLASS_CH });
  const reply = checkInvariants(packet, ask(engine, packet, 'udp')!, 'udp');
  assert.equal(reply.rcode, RCODE.NOERROR);
  assert.deepEqual(reply.answers.map(describeRecord), ['version.bind 0 TXT "popsteer-test 1.2"']);
});

test('a cookie refresh gives the same server cookie to the same client and another to another client', () => {
  const engine = engineFor();
  const packet = query('www.cdn.example', TYPE.A, { edns: { options: [{ code: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }] } });
  const cookieFor = (address: string): string => {
    const size = engine.handle(packet, packet.length, TRANSPORT_UDP, { address, family: 0 });
    const reply = checkInvariants(packet, engine.writer.buf.subarray(0, size), 'udp');
    return reply.opt!.options.find((o) => o.code === 10)!.data.subarray(16).toString('hex');
  };
  assert.equal(cookieFor('127.0.0.1'), cookieFor('127.0.0.1'));
  assert.notEqual(cookieFor('127.0.0.1'), cookieFor('127.0.0.2'));
});
