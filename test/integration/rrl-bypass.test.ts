// The three ways around a rate limit keyed by (qname, qtype), against the
// real server at 5 replies/s: 2,000 random labels under the *.assets
// wildcard, 2,000 random names below the `lab` delegation, and 2,000 random
// query types at one name (NODATA). Each flood comes from its own client
// network (a UDP socket bound to its own 127.0.x.2) and must be limited like
// a flood of one fixed name: the burst, the rate over the flood's duration,
// and truncated or dropped replies for the rest.

import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { TYPE, query } from '../conformance/wire.ts';
import { countReplies } from '../helpers/udp-replies.ts';

const RATE = 5;
const FLOOD = 2000;
const BATCH = 50;

let server: StartedServer;

before(async () => {
  server = await startServer({ admin: false, args: ['--rrl-responses-per-second', String(RATE)] });
});
after(async () => { await server?.stop(); });

const label = (i: number): string => `r${((i + 1) * 2654435761 >>> 0).toString(36)}`;
/** Query types www has no records of: every one is answered NODATA (www has A, AAAA and HTTPS). */
const typeWithoutRecords = (i: number): number => 1000 + i;

interface FloodOutcome { full: number; truncated: number; seconds: number }

/** Sends FLOOD queries from a socket bound to `source`; counts the replies once all are in. */
async function flood(source: string, question: (i: number) => { name: string; type: number }): Promise<FloodOutcome> {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, source, resolve));
  const replies = countReplies(socket);
  try {
    const started = performance.now();
    for (let sent = 0; sent < FLOOD; sent += BATCH) {
      for (let i = sent; i < sent + BATCH; i++) {
        const q = question(i);
        socket.send(query(q.name, q.type, { id: i }), server.dnsPort, '127.0.0.1');
      }
      // Let the server drain its socket between batches: the flood must be limited, not lost in buffers.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seconds = (performance.now() - started) / 1000;
    await replies.settle(server.dnsPort);
    return { full: replies.full, truncated: replies.truncated, seconds };
  } finally {
    socket.close();
  }
}

test(`random labels under a wildcard, names below a delegation and types at one name are each limited like one fixed name (${RATE}/s)`, async (t) => {
  const floods = {
    'one fixed name (www A)': await flood('127.0.10.2', () => ({ name: 'www.cdn.example', type: TYPE.A })),
    'random labels under *.assets': await flood('127.0.11.2', (i) => ({ name: `${label(i)}.assets.cdn.example`, type: TYPE.A })),
    'random names below the lab delegation': await flood('127.0.12.2', (i) => ({ name: `${label(i)}.${label(i + FLOOD)}.lab.cdn.example`, type: TYPE.A })),
    'random types at www (NODATA)': await flood('127.0.13.2', (i) => ({ name: 'www.cdn.example', type: typeWithoutRecords(i) })),
  };
  for (const [what, outcome] of Object.entries(floods)) {
    t.diagnostic(`${what}: ${outcome.full} of ${FLOOD} answered in full, ${outcome.truncated} truncated, over ${outcome.seconds.toFixed(1)} s`);
  }
  for (const [what, outcome] of Object.entries(floods)) {
    // The burst (one second of tokens) plus the rate over the flood, plus a second of slack.
    const allowed = RATE + RATE * (outcome.seconds + 1);
    assert.ok(outcome.full <= allowed, `${what}: ${outcome.full} full answers in ${outcome.seconds.toFixed(1)} s (at most ${allowed.toFixed(0)})`);
    assert.ok(outcome.full >= RATE, `${what}: the burst is answered (${outcome.full})`);
    assert.ok(outcome.truncated > 0, `${what}: limited replies are slipped (TC=1) as well as dropped`);
  }
});
