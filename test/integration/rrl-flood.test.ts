// Response rate limiting against the real server: a flood of identical
// queries from one client network (a UDP socket bound to 127.0.1.2) is cut to
// the configured rate, with every second limited reply slipped (TC=1, no
// records); meanwhile a well-behaved client in another network (127.0.2.3)
// asking the same name is answered every time, the flooding network still
// gets full answers over TCP, the metrics count dropped and slipped replies,
// and the server logs the limited network once, not per packet.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';
import { countReplies } from '../helpers/udp-replies.ts';

const RATE = 20;
const WINDOW_SECONDS = 2;
const FLOODER = '127.0.1.2';
const NEIGHBOUR = '127.0.2.3';
const FLOOD_QUERIES = 4000;
const FLOOD_BATCH = 50;

let server: StartedServer;

before(async () => {
  server = await startServer({
    args: ['--rrl-responses-per-second', String(RATE), '--rrl-window', String(WINDOW_SECONDS), '--rrl-slip', '2'],
  });
});
after(async () => { await server?.stop(); });

async function boundSocket(address: string): Promise<Socket> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a flood from one network is limited and slipped while another network keeps being answered', async (t) => {
  const flooder = await boundSocket(FLOODER);
  const neighbour = await boundSocket(NEIGHBOUR);
  const flood = { full: 0, slipped: 0, slippedWithRecords: 0 };
  flooder.on('message', (msg) => {
    const reply = readReply(msg);
    if (!reply.tc) flood.full++;
    else {
      flood.slipped++;
      if (reply.counts.an + reply.counts.ns + reply.counts.ar > 0) flood.slippedWithRecords++;
    }
  });
  const neighbourAnswers = new Map<number, number>();
  neighbour.on('message', (msg) => {
    const reply = readReply(msg);
    neighbourAnswers.set(reply.id, reply.tc ? -1 : reply.counts.an);
  });
  try {
    const started = performance.now();
    let neighbourSent = 0;
    for (let sent = 0; sent < FLOOD_QUERIES; sent += FLOOD_BATCH) {
      for (let i = 0; i < FLOOD_BATCH; i++) flooder.send(query('www.cdn.example', TYPE.A, { id: (sent + i) & 0xffff }), server.dnsPort, '127.0.0.1');
      // The neighbour asks the same name at a quarter of the rate.
      if (performance.now() - started >= neighbourSent * (4000 / RATE)) {
        neighbour.send(query('www.cdn.example', TYPE.A, { id: ++neighbourSent }), server.dnsPort, '127.0.0.1');
      }
      // Let the server drain its socket between batches (the flood must be limited, not lost in buffers).
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const seconds = (performance.now() - started) / 1000;
    // One more neighbour query after the flood, then wait for the last replies.
    neighbour.send(query('www.cdn.example', TYPE.A, { id: ++neighbourSent }), server.dnsPort, '127.0.0.1');
    const deadline = performance.now() + 3000;
    while (neighbourAnswers.size < neighbourSent && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));

    assert.ok(neighbourSent >= 3, `neighbour queries: ${neighbourSent}`);
    assert.equal(neighbourAnswers.size, neighbourSent, 'every query from the other network is answered');
    assert.ok([...neighbourAnswers.values()].every((an) => an >= 1), `full answers to the neighbour: ${[...neighbourAnswers.values()]}`);

    // The flooder gets the burst plus the rate over the flood, give or take a second of tokens.
    const allowed = RATE * (seconds + 1) + RATE;
    assert.ok(flood.full <= allowed, `full answers to the flooder: ${flood.full} in ${seconds.toFixed(1)} s (at most ${allowed})`);
    assert.ok(flood.full >= RATE, `the burst is answered: ${flood.full}`);
    const limited = FLOOD_QUERIES - flood.full;
    assert.ok(flood.slipped > limited * 0.4 && flood.slipped < limited * 0.6, `slip 2: about half of ${limited} limited replies arrive truncated, got ${flood.slipped}`);
    assert.equal(flood.slippedWithRecords, 0, 'slipped replies carry no records');

    const dropped = await metric('popsteer_dns_rrl_limited_total', 'action="dropped"');
    const slipped = await metric('popsteer_dns_rrl_limited_total', 'action="slipped"');
    assert.equal(slipped, flood.slipped, 'slipped metric = TC replies received');
    assert.equal(dropped + slipped, limited, 'dropped + slipped = queries not fully answered');

    t.diagnostic(`flood of ${FLOOD_QUERIES} in ${seconds.toFixed(1)} s at rate ${RATE}/s: ${flood.full} answered, ${slipped} slipped, ${dropped} dropped; neighbour ${neighbourAnswers.size}/${neighbourSent} answered`);
    const lines = server.logs.filter((l) => l.module === 'rrl');
    assert.ok(lines.length >= 1 && lines.length <= Math.ceil(seconds / WINDOW_SECONDS) + 1, `one line per window: ${lines.length} in ${seconds.toFixed(1)} s`);
    assert.ok(lines.every((l) => l.network === '127.0.1.0/24'), JSON.stringify(lines));
  } finally {
    flooder.close();
    neighbour.close();
  }
});

test('TCP is never rate-limited: the flooding network still gets full answers over TCP', async () => {
  const dig = promisify(execFile);
  const { stdout } = await dig('dig', ['+tcp', '+tries=1', '+time=2', '-b', FLOODER, '-p', String(server.dnsPort), '@127.0.0.1', 'www.cdn.example', 'A', '+noall', '+answer', '+comments']);
  assert.match(stdout, /status: NOERROR/);
  assert.doesNotMatch(stdout, /flags:[^;]* tc/);
  assert.match(stdout, /^www\.cdn\.example\.\s+\d+\s+IN\s+A\s+\d+\.\d+\.\d+\.\d+/m);
});

test('with RRL off (--rrl-responses-per-second 0) the same flood is answered in full', async () => {
  const plain = await startServer({ args: ['--rrl-responses-per-second', '0'] });
  const flooder = await boundSocket(FLOODER);
  flooder.setRecvBufferSize(4 * 1024 * 1024);
  const replies = countReplies(flooder);
  try {
    const count = 500;
    for (let sent = 0; sent < count; sent += FLOOD_BATCH) {
      for (let i = 0; i < FLOOD_BATCH; i++) flooder.send(query('www.cdn.example', TYPE.A, { id: sent + i }), plain.dnsPort, '127.0.0.1');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await replies.settle(plain.dnsPort);
    const text = await (await fetch(`http://127.0.0.1:${plain.adminPort}/metrics`)).text();
    const limited = [...text.matchAll(/^popsteer_dns_rrl_limited_total\{[^}]*\} (\S+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(limited, 0, 'nothing limited');
    assert.equal(replies.truncated, 0, 'no reply truncated');
    // Loopback under a busy machine may lose a datagram; none of the replies that came was cut.
    assert.ok(replies.full >= count * 0.95, `${replies.full} of ${count} answered in full`);
  } finally {
    flooder.close();
    await plain.stop();
  }
});
