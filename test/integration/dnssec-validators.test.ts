// DNSSEC with real validators (issue 21): the example configuration with
// cdn.example signed (a CSK made by `popsteer dnssec keygen`), behind unbound
// with the zone's DS as its trust anchor (stub zone on loopback, a fake root
// that is never reached). unbound must set AD on a steered answer for
// clients on three continents (ECS), a degraded answer served with a lowered
// TTL under a signature over the policy's largest, a static CNAME into a
// steered name, a steered CNAME to a partner, a wildcard expansion, a static
// record, NXDOMAIN, NODATA and the missing DS of the insecure lab
// delegation; delv must report "fully validated" for the same names, and
// kdig +dnssec must show the records. Answers go through a small UDP proxy in
// this test that can flip a byte of an RRSIG: with it on, unbound must
// refuse the answer (SERVFAIL). Without DO popsteer answers as it did unsigned.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { delv, dig, signExampleZone, startUnboundOnFreePort, stopChild, type Dig } from '../helpers/dnssec-lab.ts';
import { popOf } from '../helpers/pops.ts';
import { CLI, REPO_ROOT, startServer, testEnvironment, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);

/** The name whose answers the proxy tampers with while `tamper` is on. */
const TAMPERED = 'ns2.cdn.example';

let server: StartedServer;
let unbound: ChildProcess | undefined;
let proxy: Socket;
let unboundPort = 0;
let dsRecord = '';
let tamper = false;
let tampered = 0;
let tokenFile = '';
const TOKEN = 'dnssec-validators-token';

/** POSTs to the admin API with the token; asserts 200. */
async function admin(path: string, body: unknown): Promise<void> {
  const r = await fetch(`http://127.0.0.1:${server.adminPort}${path}`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, await r.text());
}

/** The TTL of the first record of `type` in dig's answer lines. */
const ttlOf = (lines: string[], type: string): number => Number(lines.find((l) => new RegExp(`\\sIN\\s${type}\\s`).test(l))!.split(/\s+/)[1]);

/** The names and types unbound and delv are asked about (with an ECS subnet for the steered ones). */
const VALIDATED: Array<[string, string]> = [
  ['www.cdn.example', 'A'], ['img7.assets.cdn.example', 'A'], ['status.cdn.example', 'A'], ['static.cdn.example', 'A'],
  ['no-such-name.cdn.example', 'A'], ['status.cdn.example', 'TXT'], ['lab.cdn.example', 'DS'],
];

/** Skips a (possibly compressed) name; returns the offset after it. */
function skipName(buf: Buffer, at: number): number {
  for (;;) {
    const len = buf[at];
    if (len >= 0xc0) return at + 2;
    if (len === 0) return at + 1;
    at += len + 1;
  }
}

/** The question name of a message, lower-cased, without the trailing dot. */
function questionName(buf: Buffer): string {
  const labels: string[] = [];
  for (let at = 12; buf[at] !== 0; at += buf[at] + 1) labels.push(buf.subarray(at + 1, at + 1 + buf[at]).toString('latin1').toLowerCase());
  return labels.join('.');
}

/** Flips the last octet of the first RRSIG in the answer section; returns whether there was one. */
function flipRrsig(buf: Buffer): boolean {
  let at = skipName(buf, 12) + 4;
  const answers = buf.readUInt16BE(6);
  for (let i = 0; i < answers; i++) {
    at = skipName(buf, at);
    const type = buf.readUInt16BE(at);
    const rdlen = buf.readUInt16BE(at + 8);
    const end = at + 10 + rdlen;
    if (type === 46) {
      buf[end - 1] ^= 0x01;
      return true;
    }
    at = end;
  }
  return false;
}

/** A UDP proxy to popsteer: replies for TAMPERED get one RRSIG octet flipped while `tamper` is on. */
async function startProxy(target: number): Promise<Socket> {
  const front = createSocket('udp4');
  front.on('message', (query, client) => {
    const back = createSocket('udp4');
    back.on('message', (reply) => {
      if (tamper && questionName(reply) === TAMPERED && flipRrsig(reply)) tampered++;
      front.send(reply, client.port, client.address);
      back.close();
    });
    back.send(query, target, '127.0.0.1');
  });
  front.bind(0, '127.0.0.1');
  await once(front, 'listening');
  return front;
}

before(async () => {
  const config = copyExampleConfig();
  dsRecord = await signExampleZone(config);
  // The partner pool's CNAME points into the zone: unbound follows it to a signed A and can set AD on the whole answer.
  const spill = join(config, 'steering', 'spill.yaml');
  writeFileSync(spill, readFileSync(spill, 'utf8').replace('cname: edge.partner-cdn.example.net.', 'cname: status.cdn.example.'));
  tokenFile = join(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-token-')), 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config, '--admin-token-file', tokenFile], env: { POPSTEER_ADMIN_TOKEN: '' } });
  proxy = await startProxy(server.dnsPort);
  ({ child: unbound, port: unboundPort } = await startUnboundOnFreePort(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-unbound-')), proxy.address().port, dsRecord));
});

after(async () => {
  await stopChild(unbound);
  proxy?.close();
  await server?.stop();
});

describe('unbound validates popsteer\'s signed answers', () => {
  test('a steered answer for clients on three continents (ECS): AD=1, three different PoPs', async () => {
    // Europe and North America by GeoLite2, Oceania by the example's custom network (203.0.113.0/24: Sydney).
    const europe = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=81.2.69.0/24');
    const america = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=216.160.83.0/24');
    const oceania = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=203.0.113.0/24');
    for (const r of [europe, america, oceania]) {
      assert.equal(r.status, 'NOERROR', r.text);
      assert.ok(r.flags.includes('ad'), `AD set:\n${r.text}`);
    }
    const address = (r: Dig): string => r.answers.find((l) => /\sIN\sA\s/.test(l))!.split(/\s+/).pop()!;
    const pops = [europe, america, oceania].map((r) => popOf(address(r)));
    assert.equal(new Set(pops).size, 3, `three continents, three PoPs: ${pops.join(', ')}`);
  });

  test('a static CNAME into the steered www: AD=1 on the CNAME and the steered A', async () => {
    const r = await dig(unboundPort, 'static.cdn.example', 'A', '+subnet=81.2.69.0/24');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.ok(r.flags.includes('ad'), r.text);
    assert.ok(r.answers.some((l) => /^static\.cdn\.example\.\s.*\sCNAME\s+www\.cdn\.example\.$/.test(l)), r.text);
    assert.ok(r.answers.some((l) => /^www\.cdn\.example\.\s.*\sIN\sA\s/.test(l)), r.text);
  });

  test('degraded (two PoPs drained): the lowered TTL under a signature over the largest, AD=1; the steered CNAME of the partner pool, AD=1 and fully validated', async () => {
    await admin('/v1/pops/iad/drain', { reason: 'dnssec test' });
    await admin('/v1/pops/ord/drain', { reason: 'dnssec test' });
    try {
      // A subnet no earlier test asked about: unbound's ECS cache holds nothing for it.
      const berlin = '+subnet=85.214.0.0/24';
      const direct = await dig(server.dnsPort, 'www.cdn.example', 'A', '+norec', berlin);
      assert.equal(ttlOf(direct.answers, 'A'), 20, `degraded_ttl served:\n${direct.text}`);
      assert.ok(direct.answers.some((l) => /\sRRSIG\sA 13 3 60 /.test(l)), `signed over ttl 60, the policy's largest:\n${direct.text}`);
      const r = await dig(unboundPort, 'www.cdn.example', 'A', berlin);
      assert.equal(r.status, 'NOERROR', r.text);
      assert.ok(r.flags.includes('ad'), r.text);
      assert.ok(ttlOf(r.answers, 'A') <= 20, r.text);
      // downloads: fewer than two of iad, ord, sjc healthy → the partner pool's CNAME (to an in-zone name here, so unbound can follow it).
      const spill = await dig(unboundPort, 'downloads.cdn.example', 'A', '+subnet=216.160.83.0/24');
      assert.equal(spill.status, 'NOERROR', spill.text);
      assert.ok(spill.flags.includes('ad'), spill.text);
      assert.ok(spill.answers.some((l) => /^downloads\.cdn\.example\.\s.*\sCNAME\s+status\.cdn\.example\.$/.test(l)), spill.text);
      assert.ok(spill.answers.some((l) => l.includes('203.0.113.80')), spill.text);
      assert.ok(ttlOf(spill.answers, 'CNAME') <= 15, spill.text);
      const delved = await delv(mkdtempSync(join(tmpdir(), 'popsteer-delv-')), server.dnsPort, dsRecord, 'downloads.cdn.example', 'A');
      assert.match(delved, /; fully validated\ndownloads\.cdn\.example\.\s+\d+\s+IN\s+CNAME\s+status\.cdn\.example\./, delved);
    } finally {
      await admin('/v1/pops/iad/undrain', { reason: 'done' });
      await admin('/v1/pops/ord/undrain', { reason: 'done' });
    }
  });

  test('a wildcard expansion (a CNAME to the steered www): AD=1', async () => {
    const r = await dig(unboundPort, 'img7.assets.cdn.example', 'A', '+subnet=81.2.69.0/24');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.ok(r.flags.includes('ad'), r.text);
    assert.ok(r.answers.some((l) => /\sCNAME\s/.test(l)) && r.answers.some((l) => /\sIN\sA\s/.test(l)), r.text);
  });

  test('a static record: AD=1', async () => {
    const r = await dig(unboundPort, 'status.cdn.example', 'A');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.ok(r.flags.includes('ad'), r.text);
    assert.ok(r.answers.some((l) => l.includes('203.0.113.80')), r.text);
  });

  test('NXDOMAIN, proven by NSEC: AD=1', async () => {
    const r = await dig(unboundPort, 'no-such-name.cdn.example', 'A');
    assert.equal(r.status, 'NXDOMAIN', r.text);
    assert.ok(r.flags.includes('ad'), r.text);
  });

  test('NODATA, proven by NSEC: AD=1', async () => {
    const r = await dig(unboundPort, 'status.cdn.example', 'TXT');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.equal(r.answers.length, 0, r.text);
    assert.ok(r.flags.includes('ad'), r.text);
  });

  test('the insecure lab delegation: its missing DS is proven (AD=1 on the DS NODATA)', async () => {
    const r = await dig(unboundPort, 'lab.cdn.example', 'DS');
    assert.equal(r.status, 'NOERROR', r.text);
    assert.equal(r.answers.length, 0, r.text);
    assert.ok(r.flags.includes('ad'), r.text);
  });

  test('a tampered RRSIG (one octet flipped by the proxy): unbound refuses the answer with SERVFAIL', async () => {
    const good = await dig(unboundPort, TAMPERED, 'AAAA');
    assert.ok(good.flags.includes('ad'), `untampered first:\n${good.text}`);
    tamper = true;
    try {
      const r = await dig(unboundPort, TAMPERED, 'A');
      assert.ok(tampered > 0, 'the proxy flipped an RRSIG octet');
      assert.equal(r.status, 'SERVFAIL', r.text);
    } finally {
      tamper = false;
    }
  });
});

describe('delv and the server directly', () => {
  test('delv: "fully validated" for every name unbound validated, with the DS as its trust anchor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsteer-delv-'));
    for (const [name, type] of VALIDATED) {
      const out = await delv(dir, server.dnsPort, dsRecord, name, type);
      assert.match(out, /; (negative response, )?fully validated/, `${name} ${type}:\n${out}`);
    }
  });

  test('kdig +dnssec shows the DNSKEY, the RRSIGs and the NSEC proof', async () => {
    const kdig = async (...args: string[]): Promise<string> => (await exec('kdig', ['@127.0.0.1', '-p', String(server.dnsPort), '+dnssec', '+norec', ...args])).stdout;
    const keys = await kdig('cdn.example', 'DNSKEY');
    assert.match(keys, /\sDNSKEY\s+257 3 13 /, keys);
    assert.match(keys, /\sRRSIG\s+DNSKEY 13 2 /, keys);
    const steered = await kdig('www.cdn.example', 'A');
    assert.match(steered, /\sRRSIG\s+A 13 3 60 /, steered);
    const nx = await kdig('no-such-name.cdn.example', 'A');
    assert.match(nx, /NXDOMAIN/, nx);
    assert.match(nx, /\sNSEC\s/, nx);
    assert.match(nx, /\sRRSIG\s+NSEC 13 /, nx);
  });

  test('without DO the answer carries no DNSSEC records; with DO an RRSIG follows the RRset', async () => {
    const plain = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+norec', 'status.cdn.example', 'A']);
    assert.doesNotMatch(plain.stdout, /RRSIG|NSEC/);
    const signed = await dig(server.dnsPort, 'status.cdn.example', 'A', '+norec');
    assert.ok(signed.answers.some((l) => /\sRRSIG\sA 13 3 30 /.test(l)), signed.text);
  });
});

describe('keys that are missing or unsafe stop start-up', () => {
  /** Runs `serve` on a config whose zone asks for signing; resolves with its exit code and standard error. */
  async function serveFails(prepare: (config: string) => Promise<void>): Promise<{ code: number | null; stderr: string }> {
    const config = copyExampleConfig();
    const zoneFile = join(config, 'zones', 'cdn.example.yaml');
    writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, 'zone: cdn.example\ndnssec: { keys: keys }'));
    await prepare(config);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', config, '--geo-data', join(REPO_ROOT, 'geo-data'), '--listen', '127.0.0.1:0',
      '--admin', 'off', '--state-file', join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json')], { env: testEnvironment(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const [code] = await once(child, 'exit') as [number | null];
    return { code, stderr };
  }

  test('no key yet: exit 2, the zone file\'s dnssec line and the keygen command', async () => {
    const { code, stderr } = await serveFails(async () => undefined);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /cdn\.example\.yaml:6:\d+: POPSTEER_ERR_ZONE_DNSSEC: \/dnssec: no key .*popsteer dnssec keygen --config <config dir> --zone cdn\.example"/);
  });

  test('a key readable by others: exit 2 and "chmod 600"', async () => {
    const { code, stderr } = await serveFails(async (config) => {
      await exec(process.execPath, [CLI, 'dnssec', 'keygen', '--config', config, '--zone', 'cdn.example'], { env: testEnvironment() });
      chmodSync(join(config, 'keys', 'cdn.example.csk.pem'), 0o644);
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /POPSTEER_ERR_ZONE_DNSSEC: .*readable by group or others.*chmod 600/);
  });
});
