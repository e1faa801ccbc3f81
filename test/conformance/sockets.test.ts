// The conformance table over real sockets: the real server (the CLI) on
// loopback, each row sent over UDP or TCP as the row says. A row
// that expects no reply is followed by a good query on the same socket, whose
// answer must be the first thing back.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { CASES, CONFORMANCE_CONFIG } from './cases.ts';
import { TcpDnsConnection, udpFirstReply } from './clients.ts';
import { readReply } from './reply.ts';
import { checkExpectation, checkInvariants } from './verify.ts';
import { TYPE, query } from './wire.ts';

const POP_ID = 'conformance-pop';
const PROBE_ID = 0x5a5a;
const probe = query('www.cdn.example', TYPE.A, { id: PROBE_ID });

// UDP rows run twice: over batched system calls (the native module, the
// default) and over Node's dgram (the fallback); TCP rows once.
for (const udpIo of ['batch', 'dgram'] as const) {
  describe(`conformance table over UDP (${udpIo}) and TCP`, () => {
    let server: StartedServer;
    before(async () => {
      server = await startServer({ admin: false, args: ['--config', CONFORMANCE_CONFIG, '--pop', POP_ID, '--udp-io', udpIo] });
    });
    after(async () => { await server?.stop(); });

    test(`the server reports UDP on ${udpIo}`, () => {
      const listening = server.logs.find((l) => l.msg === 'DNS listening (UDP and TCP)');
      assert.equal(listening?.udp_io, udpIo);
    });

    for (const c of CASES) {
      if (c.sockets === false) continue;
      const transport = c.transport ?? 'udp';
      if (transport === 'tcp' && udpIo === 'dgram') continue;
      test(`${transport.toUpperCase()}: ${c.name}`, async () => {
        let reply: Buffer | null;
        let tcp: TcpDnsConnection | null = null;
        if (transport === 'udp') {
          reply = await udpFirstReply(server.dnsPort, c.expect === 'drop' ? [c.packet, probe] : [c.packet]);
        } else {
          tcp = await TcpDnsConnection.open(server.dnsPort);
          tcp.send(c.packet);
          if (c.expect === 'drop') tcp.send(probe);
          reply = await tcp.next();
        }
        try {
          assert.ok(reply, 'a reply within 2 s');
          if (c.expect === 'drop') {
            assert.equal(readReply(reply).id, PROBE_ID, 'the first reply is to the good query that followed: the bad one got none');
            return;
          }
          checkExpectation(c, checkInvariants(c.packet, reply, transport), { popId: POP_ID });
        } finally {
          tcp?.close();
        }
      });
    }
  });
}
