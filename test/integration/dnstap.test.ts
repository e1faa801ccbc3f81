// dnstap against real readers. The collector is fstrm_capture (Debian's
// fstrm-bin) on a unix socket, with the bidirectional Frame Streams
// handshake; the file mode is read by dnstap-read (bind9-dnsutils) and
// dnstap-ldns. A table of queries (UDP, TCP, ECS, NXDOMAIN, TC=1 then the TCP
// retry) is sent from raw sockets, so the test knows each client's port and
// the exact bytes it received, and every frame is checked against them. Then
// the collector is stopped (SIGSTOP): every query is still answered and the
// drops are counted; after SIGCONT, and after a collector restart, frames flow
// again. Every wait is on an event: a log line, a flush line, a socket.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { TcpDnsConnection } from '../conformance/clients.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, ecs, query } from '../conformance/wire.ts';
import { Capture, questionName, readDnstapFile, type DnstapFrame } from '../helpers/dnstap.ts';
import { TestDnsClient } from '../helpers/dns-client.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const run = promisify(execFile);
const POP = 'ams';
const VERSION = 'popsteer 0.1.0';
const started: Array<{ stop(): Promise<unknown> }> = [];
after(async () => { for (const s of started.reverse()) await s.stop(); });

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'popsteer-dnstap-'));

async function serve(args: string[]): Promise<StartedServer> {
  const server = await startServer({ workers: 1, args: ['--pop', POP, ...args] });
  started.push(server);
  await server.waitForLog((l) => l.msg === 'dnstap output ready');
  return server;
}

async function capture(dir: string, name?: string): Promise<Capture> {
  const c = await Capture.start(dir, name);
  started.push(c);
  return c;
}

interface Exchange {
  label: string;
  transport: 'UDP' | 'TCP';
  clientPort: number;
  query: Uint8Array;
  reply: Buffer;
}

/** One UDP query from a fresh socket: its port and the exact reply bytes. */
async function overUdp(port: number, label: string, message: Uint8Array): Promise<Exchange> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    const reply = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    socket.send(message, port, '127.0.0.1');
    return { label, transport: 'UDP', clientPort: socket.address().port, query: message, reply: await reply };
  } finally {
    socket.close();
  }
}

async function overTcp(port: number, label: string, message: Uint8Array): Promise<Exchange> {
  const conn = await TcpDnsConnection.open(port);
  try {
    conn.send(message);
    const reply = await conn.next(10_000);
    assert.ok(reply, `${label}: a reply over TCP`);
    return { label, transport: 'TCP', clientPort: conn.socket.localPort!, query: message, reply };
  } finally {
    conn.close();
  }
}

/** The table of the issue: UDP, TCP, ECS, NXDOMAIN, and TC=1 followed by the TCP retry. */
async function sendTable(port: number): Promise<Exchange[]> {
  const uk = ecs(1, 24, 0, [81, 2, 69]);
  const truncating = query('long-txt.cdn.example', TYPE.TXT, { id: 5, edns: { udpSize: 512 } });
  const exchanges = [
    await overUdp(port, 'UDP, no ECS', query('www.cdn.example', TYPE.A, { id: 1, edns: {} })),
    await overUdp(port, 'UDP, ECS', query('www.cdn.example', TYPE.A, { id: 2, edns: { options: [uk] } })),
    await overTcp(port, 'TCP, ECS', query('www.cdn.example', TYPE.AAAA, { id: 3, edns: { options: [ecs(1, 24, 0, [1, 0, 16])] } })),
    await overUdp(port, 'NXDOMAIN', query('no-such-name.cdn.example', TYPE.A, { id: 4, edns: {} })),
    await overUdp(port, 'TC=1 over UDP', truncating),
  ];
  assert.equal(readReply(exchanges[4].reply).tc, true, 'the UDP reply is truncated');
  exchanges.push(await overTcp(port, 'TCP retry', truncating));
  assert.equal(readReply(exchanges[5].reply).tc, false, 'the TCP retry is complete');
  return exchanges;
}

const same = (a: Uint8Array | undefined, b: Uint8Array): boolean => a !== undefined && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const LOOPBACK = Buffer.from([127, 0, 0, 1]);

/** The AUTH_QUERY and AUTH_RESPONSE frames of one exchange, found by client port and bytes. */
function framesOf(frames: DnstapFrame[], e: Exchange): { query: DnstapFrame; response: DnstapFrame } {
  const mine = frames.filter((f) => f.message.query_port === e.clientPort && f.message.socket_protocol === e.transport);
  const q = mine.find((f) => f.message.type === 'AUTH_QUERY' && same(f.message.query_message, e.query));
  const r = mine.find((f) => f.message.type === 'AUTH_RESPONSE');
  assert.ok(q, `${e.label}: an AUTH_QUERY frame with the query's bytes from port ${e.clientPort}`);
  assert.ok(r, `${e.label}: an AUTH_RESPONSE frame to port ${e.clientPort}`);
  return { query: q, response: r };
}

function checkExchange(frames: DnstapFrame[], e: Exchange, dnsPort: number): void {
  const { query: q, response: r } = framesOf(frames, e);
  for (const f of [q, r]) {
    assert.equal(f.type, 'MESSAGE');
    assert.equal(Buffer.from(f.identity!).toString(), POP, 'identity is the PoP id');
    assert.equal(Buffer.from(f.version!).toString(), VERSION);
    assert.equal(f.message.socket_family, 'INET');
    assert.ok(same(f.message.query_address, LOOPBACK), `${e.label}: query_address 127.0.0.1`);
    assert.ok(same(f.message.response_address, LOOPBACK), `${e.label}: response_address 127.0.0.1`);
    assert.equal(f.message.response_port, dnsPort);
  }
  assert.ok(same(r.message.response_message, e.reply), `${e.label}: the logged response is byte for byte what the client received`);
  const queryTime = q.message.query_time_sec! * 1e9 + q.message.query_time_nsec!;
  const responseTime = r.message.response_time_sec! * 1e9 + r.message.response_time_nsec!;
  assert.ok(Math.abs(queryTime / 1e6 - Date.now()) < 600_000, `${e.label}: query_time is now-ish`);
  assert.ok(responseTime >= queryTime, `${e.label}: response after query`);
}

function extraOf(frame: DnstapFrame): Record<string, unknown> | null {
  return frame.extra ? JSON.parse(Buffer.from(frame.extra).toString('utf8')) as Record<string, unknown> : null;
}

test('dnstap to fstrm_capture: every exchange of the table, with addresses, ports, transport, the exact reply bytes and the decision', async () => {
  const dir = tempDir();
  const collector = await capture(dir);
  const server = await serve(['--dnstap', `unix:${collector.socket}`]);
  const exchanges = await sendTable(server.dnsPort);
  const frames = await collector.waitForFrames((f) => f.length >= exchanges.length * 2);
  assert.equal(frames.length, exchanges.length * 2, 'one AUTH_QUERY and one AUTH_RESPONSE per query');
  for (const e of exchanges) checkExchange(frames, e, server.dnsPort);

  const uk = framesOf(frames, exchanges[1]).response;
  assert.deepEqual(extraOf(uk), { policy: 'www.cdn.example', rule: extraOf(uk)!.rule, pop: 'lhr', class: extraOf(uk)!.class, client: '81.2.69.0/24' });
  assert.equal(typeof extraOf(uk)!.class, 'number');
  assert.equal(extraOf(framesOf(frames, exchanges[1]).query), null, 'the decision rides on the response only');
  assert.equal(extraOf(framesOf(frames, exchanges[0]).response)!.client, '127.0.0.1/32', 'without ECS the resolver decides');
  assert.equal(extraOf(framesOf(frames, exchanges[2]).response)!.pop, 'nrt', 'Japan → Tokyo, over TCP too');
  assert.equal(extraOf(framesOf(frames, exchanges[3]).response), null, 'no steering decision, no extra');

  // The capture file as Debian's readers see it: every frame parses.
  await collector.stop();
  const { stream } = readDnstapFile(collector.file);
  assert.equal(stream.contentType, 'protobuf:dnstap.Dnstap');
  const ldns = await run('dnstap-ldns', ['-q', '-r', collector.file]);
  assert.equal(ldns.stdout.trim().split('\n').length, frames.length, ldns.stdout);
});

test('dnstap file: dnstap-read and dnstap-ldns read every frame; the hex of each response is what the client received', async () => {
  const dir = tempDir();
  const file = join(dir, 'popsteer.fstrm');
  const server = await startServer({ workers: 1, args: ['--pop', POP, '--dnstap', `file:${file}`] });
  started.push(server);
  await server.waitForLog((l) => l.msg === 'dnstap output ready');
  const exchanges = await sendTable(server.dnsPort);
  // Stopping writes the last frames and STOP.
  assert.equal(await server.stop(), 0);
  const { stream, frames } = readDnstapFile(file);
  assert.ok(stream.stopped, 'the file ends with STOP');
  assert.equal(frames.length, exchanges.length * 2);
  for (const e of exchanges) checkExchange(frames, e, server.dnsPort);

  const read = await run('dnstap-read', ['-x', file]);
  const lines = read.stdout.trim().split('\n');
  assert.equal(lines.length, frames.length * 2, 'dnstap-read -x: a summary and a hex line per frame');
  for (const e of exchanges) {
    const hex = e.reply.toString('hex').toUpperCase();
    const at = lines.findIndex((l) => l === hex);
    assert.ok(at > 0, `${e.label}: dnstap-read shows the reply's bytes`);
    const summary = lines[at - 1];
    assert.match(summary, new RegExp(` AR 127\\.0\\.0\\.1:${e.clientPort} <- 127\\.0\\.0\\.1:${server.dnsPort} ${e.transport} ${e.reply.length}b `), summary);
  }
  const yaml = await run('dnstap-read', ['-y', file]);
  assert.equal(yaml.stdout.split('\n').filter((l) => l === 'type: MESSAGE').length, frames.length);
  assert.equal(yaml.stdout.split('\n').filter((l) => l === `identity: ${POP}`).length, frames.length);
  const ldns = await run('dnstap-ldns', ['-y', '-r', file]);
  assert.equal(ldns.stdout.split('\n').filter((l) => l.startsWith('type: MESSAGE')).length, frames.length, ldns.stdout.slice(0, 2000));
  const quiet = (await run('dnstap-ldns', ['-q', '-r', file])).stdout.trim().split('\n');
  assert.equal(quiet.filter((l) => / AQ 127\.0\.0\.1 UDP /.test(l)).length, 4);
  assert.equal(quiet.filter((l) => / AR 127\.0\.0\.1 TCP /.test(l)).length, 2);
  assert.ok(quiet.some((l) => l.includes('"no-such-name.cdn.example." IN A')));

  // The log replayed into diff: its client networks, weighted by queries.
  const replay = await runCli(['diff', '--from', 'policies', '--to', 'policies', '--clients-dnstap', file, '--name', 'www.cdn.example', '--json']);
  assert.equal(replay.code, 0, replay.stderr);
  const [report] = JSON.parse(replay.stdout) as Array<{ networks: number; shares: Array<{ answer: string; before_percent: number }> }>;
  assert.equal(report.networks, 3, '127.0.0.1/32 (four exchanges), 81.2.69.0/24 and 1.0.16.0/24');
  assert.deepEqual(Object.fromEntries(report.shares.map((x) => [x.answer, x.before_percent])), { ams: 66.7, lhr: 16.7, nrt: 16.7 });
});

test('dnstap-messages and dnstap-sample: only AUTH_QUERY, one query in two, each carrying the decision', async () => {
  const dir = tempDir();
  const file = join(dir, 'queries-only.fstrm');
  const server = await startServer({ workers: 1, args: ['--pop', POP, '--dnstap', `file:${file}`, '--dnstap-messages', 'auth_query', '--dnstap-sample', '0.5'] });
  started.push(server);
  await server.waitForLog((l) => l.msg === 'dnstap output ready');
  const sent = [];
  for (let id = 1; id <= 6; id++) sent.push(await overUdp(server.dnsPort, `query ${id}`, query('www.cdn.example', TYPE.A, { id, edns: { options: [ecs(1, 24, 0, [81, 2, 69])] } })));
  assert.equal(await server.stop(), 0);
  const { frames } = readDnstapFile(file);
  assert.deepEqual(frames.map((f) => f.message.type), ['AUTH_QUERY', 'AUTH_QUERY', 'AUTH_QUERY']);
  assert.deepEqual(frames.map((f) => f.message.query_port), [sent[0].clientPort, sent[2].clientPort, sent[4].clientPort], 'the first of every two queries');
  for (const f of frames) assert.equal(extraOf(f)!.pop, 'lhr', 'with no response logged, the query carries the decision');
});

const askedName = (f: DnstapFrame): string => questionName(f.message.query_message ?? new Uint8Array(12));

async function metric(server: StartedServer, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(' ').pop());
}

test('a stopped collector never holds up answers: drops are counted, and logging resumes after SIGCONT and after a restart', async () => {
  const dir = tempDir();
  const collector = await capture(dir);
  // A small queue, so the stopped collector is felt soon.
  const server = await serve(['--dnstap', `unix:${collector.socket}`, '--dnstap-queue-kb', '64']);
  collector.process.kill('SIGSTOP');
  const client = new TestDnsClient(server.dnsPort);
  try {
    const names = Array.from({ length: 20_000 }, (_, i) => `n${i}.cdn.example`);
    const replies = await client.queryAll(names, (n) => client.query(n, 'A', { timeoutMs: 10_000 }));
    assert.equal(replies.filter((r) => r.rcode === 'NXDOMAIN').length, names.length, 'every query answered while the collector is stopped');
    assert.ok(await metric(server, 'popsteer_dnstap_dropped_total') > 0, 'frames that did not fit were dropped and counted');
    assert.ok(await metric(server, 'popsteer_dnstap_frames_total') > 0);

    // Frames queued before the stop drain first, so the first queries after it may still find the
    // queue full: ask until one of them is logged.
    collector.process.kill('SIGCONT');
    let round = 0;
    await collector.waitForFrames((frames) => frames.some((f) => askedName(f).startsWith('after-sigcont-')),
      () => client.query(`after-sigcont-${round++}.cdn.example`));

    // The collector goes away and comes back on the same path: the writer reconnects.
    const lost = server.waitForNextLog((l) => l.msg === 'dnstap collector connection lost; reconnecting');
    const unreachable = server.waitForNextLog((l) => l.msg === 'dnstap collector unreachable; frames are dropped until it is back');
    await collector.stop();
    await lost;
    assert.equal(await metric(server, 'popsteer_dnstap_connected'), 0);
    await unreachable; // the first retry found no collector; retries go on
    await client.query('while-gone.cdn.example');
    const reconnected = server.waitForNextLog((l) => l.msg === 'dnstap output ready');
    const restarted = await capture(dir);
    await reconnected;
    assert.equal(await metric(server, 'popsteer_dnstap_connections_total'), 2);
    await restarted.waitForFrames((frames) => frames.some((f) => askedName(f).startsWith('after-restart-')),
      () => client.query(`after-restart-${round++}.cdn.example`));
  } finally {
    client.close();
  }
});

test('a dnstap setting that cannot work stops start-up with exit code 2 and says what to change', async () => {
  const dir = tempDir();
  const bad = await runCli(['serve', '--listen', '127.0.0.1:0', '--admin', 'off', '--dnstap', 'tcp:127.0.0.1:6000']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--dnstap: .*is not unix:\/path\/to\/collector\.sock or file:\/path\/to\/log\.fstrm/);
  const target = join(dir, 'elsewhere');
  writeFileSync(target, 'not to be overwritten');
  symlinkSync(target, join(dir, 'link.fstrm'));
  const link = await runCli(['serve', '--listen', '127.0.0.1:0', '--admin', 'off', '--geo-data', join(process.cwd(), 'geo-data'), '--state-file', join(dir, 'state.json'), '--dnstap', `file:${join(dir, 'link.fstrm')}`]);
  assert.equal(link.code, 2, link.stderr);
  assert.match(link.stderr, /dnstap: cannot open .*link\.fstrm for writing \(it is a symbolic link\)/);
  const messages = await runCli(['serve', '--admin', 'off', '--dnstap-messages', 'client_query']);
  assert.equal(messages.code, 2);
  assert.match(messages.stderr, /"client_query" is not one of auth_query, auth_response/);
});
