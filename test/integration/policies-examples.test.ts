// Every example policy under policies/steering/ does what its comments say,
// proved through the real server with ECS queries (dns-packet client) and
// PoPs taken down through the persisted override state.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, records, TestDnsClient, type Decoded } from '../helpers/dns-client.ts';
import { popById, popOf, stateFileWith } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

interface Running { server: StartedServer; client: TestDnsClient }

function stateFile(overrides: Record<string, 'force-down' | 'drain'>): string {
  const file = join(mkdtempSync(join(tmpdir(), 'popsteer-test-state-')), 'state.json');
  writeFileSync(file, stateFileWith(overrides));
  return file;
}

async function start(args: string[]): Promise<Running> {
  const server = await startServer({ workers: 1, admin: false, args });
  return { server, client: new TestDnsClient(server.dnsPort) };
}

let normal: Running; // every PoP up, PoP ams, editable config
let someDown: Running; // fra, iad, ord down; PoP fra
let europeDown: Running; // ams, fra, lhr, mad down
let configDir: string;
let running: Running[] = [];

before(async () => {
  configDir = copyExampleConfig();
  const started = await Promise.allSettled([
    start(['--pop', 'ams', '--config', configDir]),
    start(['--pop', 'fra', '--state-file', stateFile({ fra: 'force-down', iad: 'force-down', ord: 'drain' })]),
    start(['--pop', 'ams', '--state-file', stateFile({ ams: 'force-down', fra: 'force-down', lhr: 'force-down', mad: 'force-down' })]),
  ]);
  running = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  [normal, someDown, europeDown] = running;
});
after(async () => {
  for (const r of running) {
    r.client.close();
    await r.server.stop();
  }
});

const UK = '81.2.69.0/24';
const US = '24.48.0.0/24';

/** 10,000 distinct public /24s spread over the IPv4 space (no special-use ranges). */
function spreadSubnets(count: number): string[] {
  const out: string[] = [];
  let x = 0x9e3779b9;
  while (out.length < count) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x297a2d39) >>> 0;
    const a = 1 + (x % 223);
    if ([10, 100, 127, 169, 172, 192, 198, 203].includes(a)) continue;
    out.push(`${a}.${(x >>> 8) & 255}.${(x >>> 16) & 255}.0/24`);
  }
  return [...new Set(out)];
}

function rcode(p: Decoded): string {
  return String((p as { rcode?: string }).rcode);
}

describe('www: nearest healthy PoP', () => {
  test('a UK client gets London; with London and the rest of Europe down, the next nearest up', async () => {
    assert.equal(popOf(firstAnswer(await normal.client.query('www.cdn.example', 'A', { subnet: UK }))), 'lhr');
    const far = popOf(firstAnswer(await europeDown.client.query('www.cdn.example', 'A', { subnet: UK })));
    assert.notEqual(popById(far).continent, 'EU');
    assert.equal(far, 'los', 'Lagos is the nearest PoP to the UK outside Europe');
  });

  test('answers while a candidate is down carry the shorter degraded TTL', async () => {
    const up = await normal.client.query('www.cdn.example', 'A', { subnet: UK });
    const degraded = await europeDown.client.query('www.cdn.example', 'A', { subnet: UK });
    assert.equal(records(up)[0].ttl, 60);
    assert.equal(records(degraded)[0].ttl, 20);
  });

  test('AAAA comes from the same decision', async () => {
    const reply = await normal.client.query('www.cdn.example', 'AAAA', { subnet: UK });
    assert.equal(popOf(firstAnswer(reply)), 'lhr');
  });
});

describe('video: weighted 45/45/10 with a sticky canary', () => {
  const subnets = spreadSubnets(10_000);
  let before: Map<string, string>;

  test('shares over 10,000 client networks are within 3 points of the weights', async () => {
    const replies = await normal.client.queryAll(subnets, (s) => normal.client.query('video.cdn.example', 'A', { subnet: s }), 128);
    before = new Map(subnets.map((s, i) => [s, popOf(firstAnswer(replies[i]))]));
    const share = (id: string): number => [...before.values()].filter((p) => p === id).length / subnets.length * 100;
    assert.ok(Math.abs(share('ams') - 45) <= 3, `ams ${share('ams').toFixed(1)}%`);
    assert.ok(Math.abs(share('fra') - 45) <= 3, `fra ${share('fra').toFixed(1)}%`);
    assert.ok(Math.abs(share('mad') - 10) <= 3, `mad ${share('mad').toFixed(1)}%`);
  });

  test('a client network keeps its PoP on every query', async () => {
    const sample = subnets.slice(0, 300);
    const again = await normal.client.queryAll(sample, (s) => normal.client.query('video.cdn.example', 'A', { subnet: s }));
    sample.forEach((s, i) => assert.equal(popOf(firstAnswer(again[i])), before.get(s)));
  });

  test('raising the canary weight from 10 to 15 moves only about 4% of networks, all of them to the canary', async () => {
    const file = join(configDir, 'steering', 'video.yaml');
    const edited = readFileSync(file, 'utf8').replace('{ pop: mad, weight: 10 }', '{ pop: mad, weight: 15 }');
    const reloaded = normal.server.waitForLog((l) => l.msg === 'configuration reloaded' && String(l.reason).includes('video.yaml'));
    writeFileSync(file, edited);
    await reloaded;
    const replies = await normal.client.queryAll(subnets, (s) => normal.client.query('video.cdn.example', 'A', { subnet: s }), 128);
    let moved = 0;
    subnets.forEach((s, i) => {
      const now = popOf(firstAnswer(replies[i]));
      if (now !== before.get(s)) {
        moved++;
        assert.equal(now, 'mad', `${s} moved from ${before.get(s)} to ${now}, not to the canary`);
      }
    });
    const percent = moved / subnets.length * 100;
    // 10/100 → 15/105 of the weight: about 4.3% of networks should move.
    assert.ok(percent > 2.5 && percent < 6.5, `${percent.toFixed(1)}% of networks moved`);
  });
});

describe('api: active/passive failover chain', () => {
  test('Frankfurt while up; Amsterdam when Frankfurt is down; SERVFAIL when the chain is down', async () => {
    assert.equal(popOf(firstAnswer(await normal.client.query('api.cdn.example', 'A', { subnet: US }))), 'fra');
    assert.equal(popOf(firstAnswer(await someDown.client.query('api.cdn.example', 'A', { subnet: US }))), 'ams');
    const dead = await europeDown.client.query('api.cdn.example', 'A', { subnet: US });
    assert.equal(rcode(dead), 'SERVFAIL');
  });
});

describe('eu: geofenced to EU PoPs for European clients', () => {
  test('a UK client gets an EU PoP (never London); a US client its nearest PoP', async () => {
    const uk = popOf(firstAnswer(await normal.client.query('eu.cdn.example', 'A', { subnet: UK })));
    assert.ok(['ams', 'fra', 'mad'].includes(uk), `UK → ${uk}`);
    assert.equal(uk, 'ams', 'Amsterdam is the nearest EU PoP to the UK');
    assert.equal(popOf(firstAnswer(await normal.client.query('eu.cdn.example', 'A', { subnet: US }))), 'iad');
  });

  test('with every EU PoP down, European clients get SERVFAIL rather than a PoP outside the EU', async () => {
    const reply = await europeDown.client.query('eu.cdn.example', 'A', { subnet: UK });
    assert.equal(rcode(reply), 'SERVFAIL');
    const us = await europeDown.client.query('eu.cdn.example', 'A', { subnet: US });
    assert.equal(popOf(firstAnswer(us)), 'iad', 'others are unaffected');
  });
});

describe('downloads: our PoPs, then the partner CDN by CNAME', () => {
  test('our nearest PoP while two are up; a CNAME to the partner when fewer are', async () => {
    assert.equal(popOf(firstAnswer(await normal.client.query('downloads.cdn.example', 'A', { subnet: US }))), 'iad');
    const spilled = await someDown.client.query('downloads.cdn.example', 'A', { subnet: US });
    const cname = records(spilled).find((a) => a.type === 'CNAME');
    assert.ok(cname, 'a CNAME answer');
    assert.equal(cname.data, 'edge.partner-cdn.example.net');
  });

  test('a query for type CNAME gets the CNAME when the client is steered to one, NODATA when it is steered to addresses', async () => {
    const spilled = await someDown.client.query('downloads.cdn.example', 'CNAME', { subnet: US });
    assert.equal(spilled.rcode, 'NOERROR');
    assert.deepEqual(records(spilled).map((r) => [r.type, r.data]), [['CNAME', 'edge.partner-cdn.example.net']]);
    const ours = await normal.client.query('downloads.cdn.example', 'CNAME', { subnet: US });
    assert.equal(ours.rcode, 'NOERROR');
    assert.deepEqual(records(ours), [], 'no answer: the name has addresses for this client');
    assert.ok((ours.authorities ?? []).some((r) => r.type === 'SOA'), 'NODATA carries the SOA');
  });
});

describe('local: this instance\'s own PoP', () => {
  test('every client gets the PoP that received the query', async () => {
    for (const subnet of [UK, US, '1.0.16.0/24']) {
      assert.equal(popOf(firstAnswer(await normal.client.query('local.cdn.example', 'A', { subnet }))), 'ams');
      assert.equal(popOf(firstAnswer(await someDown.client.query('local.cdn.example', 'A', { subnet }))), 'fra');
    }
  });
});
