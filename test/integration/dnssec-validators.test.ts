// DNSSEC with real validators (issue 21): the example configuration with
// cdn.example signed (a CSK made by `popsteer dnssec keygen`), behind unbound
// with the zone's DS as its trust anchor (stub zone on loopback, a fake root
// that is never reached). unbound must set AD on a steered answer for
// clients on two continents (ECS), a wildcard expansion, a static record,
// NXDOMAIN, NODATA and the missing DS of the insecure lab delegation;
// delv must report "fully validated". Answers go through a small UDP proxy in
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
import { delv, dig, freeUdpPort, signExampleZone, startUnbound, stopChild, type Dig } from '../helpers/dnssec-lab.ts';
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
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config] });
  proxy = await startProxy(server.dnsPort);
  unboundPort = await freeUdpPort();
  unbound = await startUnbound(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-unbound-')), unboundPort, proxy.address().port, dsRecord);
});

after(async () => {
  await stopChild(unbound);
  proxy?.close();
  await server?.stop();
});

describe('unbound validates popsteer\'s signed answers', () => {
  test('a steered answer for clients on two continents (ECS): AD=1, different PoPs', async () => {
    const europe = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=81.2.69.0/24');
    const america = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=216.160.83.0/24');
    for (const r of [europe, america]) {
      assert.equal(r.status, 'NOERROR', r.text);
      assert.ok(r.flags.includes('ad'), `AD set:\n${r.text}`);
    }
    const address = (r: Dig): string => r.answers.find((l) => /\sIN\sA\s/.test(l))!.split(/\s+/).pop()!;
    assert.notEqual(popOf(address(europe)), popOf(address(america)), 'the two continents get different PoPs');
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
  test('delv: "fully validated" for a steered name, with the DS as its trust anchor', async () => {
    const out = await delv(mkdtempSync(join(tmpdir(), 'popsteer-delv-')), server.dnsPort, dsRecord, 'www.cdn.example', 'A');
    assert.match(out, /; fully validated/, out);
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
