// Issue 2's protocol behaviours through real clients: each row runs with
// dig AND kdig against the real server (the CLI, on loopback), and a few run
// through dns2's UDP and TCP clients. Raw-packet cases that clients cannot
// send live in test/conformance.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import DNS from 'dns2';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { CONFORMANCE_CONFIG } from '../conformance/cases.ts';

const POP_ID = 'clients-pop';
const VERSION = 'popsteer-clients-test';

/** What dig and kdig both print, read into one shape. */
interface ClientView {
  status: string;
  flags: string[];
  question: string;
  answer: string[];
  authority: string[];
  additional: string[];
  udpSize: number | null;
  nsid: string | null;
  subnet: string | null;
  cookie: string | null;
  transport: string | null;
  text: string;
}

const SECTION = /^;; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:/;

export function readClientOutput(text: string): ClientView {
  const view: ClientView = { status: '', flags: [], question: '', answer: [], authority: [], additional: [], udpSize: null, nsid: null, subnet: null, cookie: null, transport: null, text };
  let section = '';
  for (const line of text.split('\n')) {
    const header = /status: (\w+)/.exec(line);
    if (header) {
      // A client that retries (TC, BADVERS) prints a second reply: keep the last.
      Object.assign(view, { status: header[1], question: '', answer: [], authority: [], additional: [] });
      section = '';
      continue;
    }
    const flags = /^;; [Ff]lags: ([a-z ]*);/.exec(line);
    if (flags) view.flags = flags[1].trim().split(/\s+/).filter(Boolean);
    const udp = /; EDNS: version: \d+, flags:[^;]*; udp: (\d+)/.exec(line) ?? /;; Version: \d+; flags: [^;]*; UDP size: (\d+) B/.exec(line);
    if (udp) view.udpSize = Number(udp[1]);
    const nsid = /NSID: .*"([^"]*)"/.exec(line);
    if (nsid) view.nsid = nsid[1];
    const subnet = /CLIENT-SUBNET: (\S+)/.exec(line);
    if (subnet) view.subnet = subnet[1];
    const cookie = /COOKIE: ([0-9A-Fa-f]+)/.exec(line);
    if (cookie) view.cookie = cookie[1].toLowerCase();
    const transport = /SERVER: .*\((UDP|TCP)\)/.exec(line) ?? /;; From .*\((UDP|TCP)\)/.exec(line);
    if (transport) view.transport = transport[1];
    const heading = SECTION.exec(line);
    if (heading) {
      section = heading[1];
      continue;
    }
    if (line.trim() === '' || (line.startsWith(';;') && section !== 'QUESTION')) {
      section = '';
      continue;
    }
    const record = line.replace(/^;+\s*/, '').trim().split(/\s+/).join(' ');
    if (section === 'QUESTION') view.question = record;
    else if (section === 'ANSWER') view.answer.push(record);
    else if (section === 'AUTHORITY') view.authority.push(record);
    else if (section === 'ADDITIONAL') view.additional.push(record);
  }
  return view;
}

function run(tool: 'dig' | 'kdig', port: number, args: string[]): Promise<ClientView> {
  const common = tool === 'dig' ? ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=3'] : ['@127.0.0.1', '-p', String(port), '+retry=0', '+time=3'];
  return new Promise((resolve) => {
    // Both exit non-zero on a failed transfer or a REFUSED AXFR; the output is what counts.
    execFile(tool, [...common, ...args], { timeout: 15000 }, (_err, stdout, stderr) => resolve(readClientOutput(`${stdout}\n${stderr}`)));
  });
}

interface Behaviour {
  name: string;
  /** Arguments for both clients, then per-client extras (null: the client cannot send this). */
  args: string[];
  dig?: string[] | null;
  kdig?: string[] | null;
  expect: (view: ClientView, tool: 'dig' | 'kdig') => void;
}

const has = (view: ClientView, flag: string): boolean => view.flags.includes(flag);
const SOA_CDN = /^cdn\.example\. 60 IN SOA ns1\.cdn\.example\. hostmaster\.cdn\.example\. 2026112201 /;

const BEHAVIOURS: Behaviour[] = [
  {
    name: 'AA=1, RA=0, RD copied, question echoed with its letter case, the A record',
    args: ['WwW.Cdn.Example', 'A'],
    expect: (v, tool) => {
      assert.equal(v.status, 'NOERROR');
      assert.deepEqual(v.flags.sort(), ['aa', 'qr', 'rd']);
      // kdig lower-cases the name before sending it, so only dig sends mixed case.
      const sent = tool === 'dig' ? 'WwW.Cdn.Example.' : 'www.cdn.example.';
      assert.equal(v.question, `${sent} IN A`);
      assert.deepEqual(v.answer, [`${sent} 30 IN A 192.0.2.10`]);
    },
  },
  { name: 'RD=0 is copied as 0', args: ['www.cdn.example', 'AAAA', '+norecurse'], expect: (v) => { assert.deepEqual(v.flags.sort(), ['aa', 'qr']); assert.deepEqual(v.answer, ['www.cdn.example. 30 IN AAAA 2001:db8:10::1']); } },
  {
    name: 'NXDOMAIN with the SOA, TTL min(SOA TTL, minimum) = 60',
    args: ['nope.cdn.example', 'A'],
    expect: (v) => { assert.equal(v.status, 'NXDOMAIN'); assert.ok(has(v, 'aa')); assert.equal(v.answer.length, 0); assert.equal(v.authority.length, 1); assert.match(v.authority[0], SOA_CDN); },
  },
  {
    name: 'NODATA: NOERROR with no answer and the SOA',
    args: ['www.cdn.example', 'MX'],
    expect: (v) => { assert.equal(v.status, 'NOERROR'); assert.ok(has(v, 'aa')); assert.equal(v.answer.length, 0); assert.match(v.authority[0], SOA_CDN); },
  },
  { name: 'REFUSED outside every served zone, never recursion', args: ['www.example.com', 'A'], expect: (v) => { assert.equal(v.status, 'REFUSED'); assert.ok(!has(v, 'ra') && !has(v, 'aa')); } },
  { name: 'an opcode other than QUERY is NOTIMP', args: ['www.cdn.example'], dig: ['+opcode=2'], kdig: null, expect: (v) => assert.equal(v.status, 'NOTIMP') },
  { name: 'NOTIFY is NOTIMP', args: ['cdn.example', 'NOTIFY'], dig: null, kdig: [], expect: (v) => assert.match(v.status, /^NOTIMPL?$/) },
  { name: 'EDNS version 1 is BADVERS, with an OPT', args: ['www.cdn.example', '+edns=1'], dig: ['+noednsnegotiation'], expect: (v) => { assert.equal(v.status, 'BADVERS'); assert.equal(v.udpSize, 1232); } },
  { name: 'unknown EDNS options are ignored', args: ['www.cdn.example', '+ednsopt=65001:abcd'], expect: (v) => { assert.equal(v.status, 'NOERROR'); assert.equal(v.answer.length, 1); } },
  { name: 'an OPT with payload 1232 when the query had one', args: ['www.cdn.example', '+edns=0', '+bufsize=4096'], expect: (v) => assert.equal(v.udpSize, 1232) },
  { name: 'no OPT when the query had none', args: ['www.cdn.example', '+noedns'], expect: (v) => { assert.equal(v.status, 'NOERROR'); assert.equal(v.udpSize, null); } },
  {
    name: 'without EDNS the long TXT set is truncated (TC=1) and the client retries over TCP, where it comes whole',
    args: ['long-txt.cdn.example', 'TXT', '+noedns'],
    expect: (v) => { assert.match(v.text, /[Tt]runcated/); assert.equal(v.transport, 'TCP'); assert.ok(!has(v, 'tc')); assert.equal(v.answer.length, 4); },
  },
  { name: 'told to ignore TC, the client shows the truncated UDP reply', args: ['long-txt.cdn.example', 'TXT', '+noedns', '+ignore'], expect: (v) => { assert.ok(has(v, 'tc')); assert.equal(v.transport, 'UDP'); assert.equal(v.answer.length, 0); } },
  { name: 'ANY is answered minimally (RFC 8482): one RRset', args: ['cdn.example', 'ANY'], expect: (v) => { assert.equal(v.status, 'NOERROR'); assert.ok(v.answer.length >= 1); assert.equal(new Set(v.answer.map((r) => r.split(' ')[3])).size, 1); } },
  { name: 'CHAOS TXT id.server answers the PoP id', args: ['id.server', 'TXT', '-c', 'CH'], expect: (v) => assert.deepEqual(v.answer, [`id.server. 0 CH TXT "${POP_ID}"`]) },
  { name: 'CHAOS TXT hostname.bind answers the PoP id', args: ['hostname.bind', 'TXT', '-c', 'CH'], expect: (v) => assert.deepEqual(v.answer, [`hostname.bind. 0 CH TXT "${POP_ID}"`]) },
  { name: 'CHAOS TXT version.bind is off by default: REFUSED', args: ['version.bind', 'TXT', '-c', 'CH'], expect: (v) => { assert.equal(v.status, 'REFUSED'); assert.equal(v.answer.length, 0); } },
  { name: 'NSID returns the PoP id', args: ['www.cdn.example', '+nsid'], expect: (v) => assert.equal(v.nsid, POP_ID) },
  { name: 'a client COOKIE is echoed with a server cookie', args: ['www.cdn.example', '+cookie'], expect: (v) => { assert.equal(v.status, 'NOERROR'); assert.equal(v.cookie?.length, 48); } },
  { name: 'ECS is echoed with scope 0 for a static name', args: ['www.cdn.example', '+subnet=192.0.2.0/24'], expect: (v) => assert.equal(v.subnet, '192.0.2.0/24/0') },
  {
    name: 'a wildcard (RFC 4592) answers with the query name as owner and its CNAME is chased',
    args: ['photo.assets.cdn.example', 'A'],
    expect: (v) => assert.deepEqual(v.answer, ['photo.assets.cdn.example. 300 IN CNAME www.cdn.example.', 'www.cdn.example. 30 IN A 192.0.2.10']),
  },
  {
    name: 'a CNAME chain is chased inside the zone',
    args: ['img.cdn.example', 'A'],
    expect: (v) => assert.deepEqual(v.answer, ['img.cdn.example. 300 IN CNAME static.cdn.example.', 'static.cdn.example. 300 IN CNAME www.cdn.example.', 'www.cdn.example. 30 IN A 192.0.2.10']),
  },
  {
    name: 'below a delegation: a referral with glue, AA=0',
    args: ['host.lab.cdn.example', 'A'],
    expect: (v) => {
      assert.equal(v.status, 'NOERROR');
      assert.ok(!has(v, 'aa'));
      assert.deepEqual(v.answer, []);
      assert.deepEqual(v.authority, ['lab.cdn.example. 300 IN NS ns1.lab.cdn.example.', 'lab.cdn.example. 300 IN NS ns.other-provider.example.']);
      assert.deepEqual(v.additional, ['ns1.lab.cdn.example. 300 IN A 192.0.2.200']);
    },
  },
  { name: 'several zones: the longest matching zone answers', args: ['www.child.example.test', 'A'], expect: (v) => { assert.ok(has(v, 'aa')); assert.deepEqual(v.answer, ['www.child.example.test. 300 IN A 192.0.2.20']); } },
  { name: 'AXFR over TCP is REFUSED', args: ['cdn.example', 'AXFR'], expect: (v) => assert.match(v.text, /Transfer failed|REFUSED/) },
  { name: 'a class other than IN and CH is REFUSED', args: ['www.cdn.example', 'A'], dig: ['-c', 'HS'], kdig: ['-c', 'CLASS4'], expect: (v) => assert.equal(v.status, 'REFUSED') },
  { name: 'a meta type in the question is NOTIMP', args: ['www.cdn.example'], dig: ['-t', 'MAILB'], kdig: ['-t', 'TYPE253'], expect: (v) => assert.match(v.status, /^NOTIMPL?$/) },
  // dig quotes the alpn list, kdig does not.
  { name: 'HTTPS (RFC 9460)', args: ['cdn.example', 'HTTPS'], expect: (v) => assert.deepEqual(v.answer.map((r) => r.replace(/"/g, '')), ['cdn.example. 300 IN HTTPS 1 . alpn=h3,h2']) },
  { name: 'SRV with the targets\' addresses', args: ['_https._tcp.origin.cdn.example', 'SRV'], expect: (v) => { assert.equal(v.answer.length, 2); assert.deepEqual(v.additional, ['origin-a.cdn.example. 300 IN A 203.0.113.10', 'origin-b.cdn.example. 300 IN A 203.0.113.11']); } },
];

let server: StartedServer;
let withVersion: StartedServer;
before(async () => {
  [server, withVersion] = await Promise.all([
    startServer({ admin: false, args: ['--config', CONFORMANCE_CONFIG, '--pop', POP_ID] }),
    startServer({ admin: false, args: ['--config', CONFORMANCE_CONFIG, '--pop', POP_ID, '--version-bind', VERSION] }),
  ]);
});
after(async () => { await Promise.all([server?.stop(), withVersion?.stop()]); });

for (const tool of ['dig', 'kdig'] as const) {
  describe(tool, () => {
    for (const b of BEHAVIOURS) {
      const extra = tool === 'dig' ? b.dig : b.kdig;
      if (extra === null) continue;
      test(b.name, async () => {
        const view = await run(tool, server.dnsPort, [...b.args, ...(extra ?? [])]);
        try {
          b.expect(view, tool);
        } catch (err) {
          (err as Error).message += `\n--- ${tool} output ---\n${view.text}`;
          throw err;
        }
      });
    }
    test('CHAOS TXT version.bind answers the configured string', async () => {
      const view = await run(tool, withVersion.dnsPort, ['version.bind', 'TXT', '-c', 'CH']);
      assert.deepEqual(view.answer, [`version.bind. 0 CH TXT "${VERSION}"`]);
    });
  });
}

/** dns2's TCP client has no timeout of its own: bound every call so a test always ends. */
function within<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('dns2 clients', () => {
  test('UDP: an A answer', async () => {
    const resolve = DNS.UDPClient({ dns: '127.0.0.1', port: server.dnsPort });
    const reply = await within(resolve('www.cdn.example', 'A'));
    assert.equal(reply.header.aa, 1);
    assert.equal(reply.header.ra, 0);
    assert.deepEqual(reply.answers.map((a) => a.address), ['192.0.2.10']);
  });
  test('UDP: NXDOMAIN with the SOA', async () => {
    const resolve = DNS.UDPClient({ dns: '127.0.0.1', port: server.dnsPort });
    const reply = await within(resolve('nope.cdn.example', 'A'));
    assert.equal(reply.header.rcode, 3);
    assert.deepEqual(reply.authorities.map((a) => [a.type, a.ttl]), [[6, 60]]);
  });
  test('TCP: the long TXT set whole, and a CNAME chain', async () => {
    const resolve = DNS.TCPClient({ dns: '127.0.0.1', port: server.dnsPort });
    const txt = await within(resolve('long-txt.cdn.example', 'TXT'));
    assert.equal(txt.header.tc, 0);
    assert.equal(txt.answers.length, 4);
    const chain = await within(resolve('img.cdn.example', 'A'));
    assert.deepEqual(chain.answers.map((a) => a.type), [5, 5, 1]);
  });
});
