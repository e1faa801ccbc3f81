// Signatures that travel inside a published revision (issue 21), on a real
// 3-server NATS JetStream cluster: `popsteer publish` runs where the zone's
// private key is and signs there; the revision carries the signatures
// (keys/cdn.example.signatures) and never the key. An instance started from
// an unsigned configuration, with no key anywhere, applies the revision and
// serves the published signatures: unbound with the zone's DS as trust
// anchor sets AD on steered answers for two continents, NXDOMAIN and NODATA,
// delv reports "fully validated". A revision whose answers the signatures do
// not cover (a zone edited after signing, put in the bucket directly) is
// refused and the signed set keeps serving. Moved (by its clock file) to a
// day before the signatures expire, the instance cannot re-sign: it says so
// and reports itself unfit; a new publish brings a later window and it is
// fit again.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from 'nats';
import { decodeRevision, encodeRevision, newRevision, newRevisionKey, type RevisionRecord } from '../../server/fleet/revision-record.ts';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { delv, dig, signExampleZone, startUnboundOnFreePort, stopChild } from '../helpers/dnssec-lab.ts';
import { startNatsCluster, type NatsCluster } from '../helpers/nats.ts';
import { popOf } from '../helpers/pops.ts';
import { REPO_ROOT, runCli, startServer, type StartedServer } from '../helpers/server.ts';

const WAIT_MS = 60_000;
const DAY = 86_400_000;
const GEO = join(REPO_ROOT, 'geo-data');

let hub: NatsCluster;
let server: StartedServer;
let unbound: ChildProcess | undefined;
let unboundPort = 0;
let dsRecord = '';
/** Where the keys are: the publisher's copy of the example, cdn.example signed. */
let publisherDir = '';
const stateDir = mkdtempSync(join(tmpdir(), 'popsteer-state-'));
const clockDir = mkdtempSync(join(tmpdir(), 'popsteer-clock-'));
/** The instance's clock and the publisher's (POPSTEER_CLOCK_FILE), moved by the tests. */
const instanceClock = join(clockDir, 'instance');
const publisherClock = join(clockDir, 'publisher');
let published = 0;
let expiresAt = 0;

before(async () => {
  writeFileSync(instanceClock, String(Date.now()));
  writeFileSync(publisherClock, String(Date.now()));
  publisherDir = copyExampleConfig();
  dsRecord = await signExampleZone(publisherDir);
  hub = await startNatsCluster();
  // The instance's own configuration is the unsigned example, and it has no key anywhere.
  server = await startServer({
    args: ['--pop', 'ams', '--config', copyExampleConfig(), '--fleet', hub.urls, '--fleet-insecure-loopback', '--state-file', join(stateDir, 'state.json')],
    env: { POPSTEER_CLOCK_FILE: instanceClock },
  });
  await server.waitForLog((l) => l.msg === 'fleet: following overrides and instances', WAIT_MS);
});
after(async () => {
  await stopChild(unbound);
  await server?.stop();
  await hub?.stop();
});

const applied = (revision: number): Promise<Record<string, unknown>> =>
  server.waitForLog((l) => l.msg === 'fleet: policy revision applied' && l.revision === revision, WAIT_MS);

/** Runs `popsteer publish` on the publisher's directory with its clock; returns its output and the revision number. */
async function publish(message: string): Promise<{ revision: number; stdout: string }> {
  const r = await runCli(['publish', '--config', publisherDir, '--geo-data', GEO, '--fleet', hub.urls, '--fleet-insecure-loopback', '--message', message],
    { env: { POPSTEER_CLOCK_FILE: publisherClock } });
  assert.equal(r.code, 0, r.stderr);
  const match = /revision (\d+):/.exec(r.stdout);
  assert.ok(match, r.stdout);
  return { revision: Number(match[1]), stdout: r.stdout };
}

/** The record of `revision` as the bucket holds it, and its size. */
async function storedRecord(revision: number): Promise<{ record: RevisionRecord; bytes: number }> {
  const nc = await connect({ servers: hub.urls.split(',') });
  try {
    const kv = await nc.jetstream().views.kv('popsteer-revisions');
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (entry?.revision === revision) return { record: decodeRevision(entry.value)!, bytes: entry.value.length };
    }
  } finally {
    await nc.close();
  }
  throw new Error(`no revision ${revision} in the bucket`);
}

async function fitness(): Promise<{ status: number; reasons: string[] }> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/fitness`);
  return { status: response.status, reasons: (await response.json() as { reasons: string[] }).reasons };
}

test('publish signs where the keys are: the revision carries the signatures, never the private key', async (t) => {
  const out = await publish('signed cdn.example');
  published = out.revision;
  const signed = /signed cdn\.example: (\d+) signatures, valid until (\S+), (\d+) bytes compressed/.exec(out.stdout);
  assert.ok(signed, out.stdout);
  expiresAt = Date.parse(signed[2]);
  assert.ok(Number(signed[1]) > 100, `signatures for every RRset the set can answer: ${signed[1]}`);
  const { record, bytes } = await storedRecord(published);
  t.diagnostic(`example set, signed: ${signed[1]} signatures, ${signed[3]} bytes compressed; revision record ${bytes} bytes (NATS takes 1 MB)`);
  const paths = record.files.map((f) => f.path);
  assert.ok(paths.includes('keys/cdn.example.signatures'), paths.join(' '));
  assert.ok(!paths.some((p) => p.endsWith('.pem')), `no key file travels: ${paths.join(' ')}`);
  assert.ok(!record.files.some((f) => Buffer.from(f.data, 'base64').toString('latin1').includes('PRIVATE KEY')), 'no private key travels');
  await applied(published);
  assert.deepEqual(readdirSync(join(stateDir, 'revisions', String(published), 'keys')), ['cdn.example.signatures']);
});

test('the keyless instance serves them: unbound AD=1 on steered answers (two continents), NXDOMAIN and NODATA; delv fully validated', async () => {
  ({ child: unbound, port: unboundPort } = await startUnboundOnFreePort(mkdtempSync(join(tmpdir(), 'popsteer-dnssec-unbound-')), server.dnsPort, dsRecord));
  const europe = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=81.2.69.0/24');
  const america = await dig(unboundPort, 'www.cdn.example', 'A', '+subnet=216.160.83.0/24');
  const address = (text: string[]): string => text.find((l) => /\sIN\sA\s/.test(l))!.split(/\s+/).pop()!;
  for (const r of [europe, america]) assert.ok(r.status === 'NOERROR' && r.flags.includes('ad'), r.text);
  assert.notEqual(popOf(address(europe.answers)), popOf(address(america.answers)));
  const nx = await dig(unboundPort, 'no-such-name.cdn.example', 'A');
  assert.ok(nx.status === 'NXDOMAIN' && nx.flags.includes('ad'), nx.text);
  const nodata = await dig(unboundPort, 'status.cdn.example', 'TXT');
  assert.ok(nodata.status === 'NOERROR' && nodata.answers.length === 0 && nodata.flags.includes('ad'), nodata.text);
  const out = await delv(mkdtempSync(join(tmpdir(), 'popsteer-delv-')), server.dnsPort, dsRecord, 'www.cdn.example', 'A');
  assert.match(out, /; fully validated/, out);
  // The window served is the published one, not one this instance's clock would make.
  const direct = await dig(server.dnsPort, 'cdn.example', 'SOA', '+norec');
  const rrsig = direct.answers.find((l) => /\sRRSIG\sSOA\s/.test(l));
  assert.ok(rrsig, direct.text);
  assert.equal(rrsig.split(/\s+/)[8], new Date(expiresAt).toISOString().replace(/[-:T]/g, '').slice(0, 14));
});

test('a revision whose answers the signatures do not cover is refused; the signed set keeps serving', async () => {
  // Past publish, as another writer could: the zone edited after signing, the old signatures kept.
  const { record } = await storedRecord(published);
  const files = record.files.map((f) => (f.path !== 'zones/cdn.example.yaml' ? f
    : { path: f.path, data: Buffer.from(Buffer.from(f.data, 'base64').toString('utf8').replace('A: [203.0.113.80]', 'A: [203.0.113.81]')).toString('base64') }));
  const stale = newRevision(files, { author: 'direct put', message: 'edited after signing', canary: [], rollbackOf: null, at: Date.now() });
  const nc = await connect({ servers: hub.urls.split(',') });
  const refusedLine = server.waitForNextLog((l) => String(l.msg).startsWith('fleet: policy revision refused here'), WAIT_MS);
  const revision = await (await nc.jetstream().views.kv('popsteer-revisions')).put(newRevisionKey(), encodeRevision(stale));
  await nc.close();
  const refused = await refusedLine;
  assert.equal(refused.revision, revision);
  assert.match(JSON.stringify(refused.errors), /the published signature by key \d+ over status\.cdn\.example\. type 1 \(ttl 30\) is missing; .*publish it again/);
  const r = await dig(unboundPort, 'status.cdn.example', 'A');
  assert.ok(r.flags.includes('ad') && r.answers.some((l) => l.includes('203.0.113.80')), r.text);
});

test('a day before they expire the instance cannot re-sign: it says so and is unfit; a new publish makes it fit', async () => {
  assert.equal((await fitness()).status, 200);
  const stuck = server.waitForNextLog((l) => l.level === 40 && /came with the published policy set/.test(String(l.msg)), WAIT_MS);
  const unfit = server.waitForNextLog((l) => l.msg === 'unfit: DNSSEC signatures expire within the safety margin', WAIT_MS);
  writeFileSync(instanceClock, String(expiresAt - DAY));
  await Promise.all([stuck, unfit]);
  const f = await fitness();
  assert.equal(f.status, 503);
  assert.ok(f.reasons.some((reason) => reason.startsWith(`DNSSEC signatures expire at ${new Date(expiresAt).toISOString()}`)), JSON.stringify(f.reasons));
  // Where the keys are, on the same day: a later window.
  writeFileSync(publisherClock, String(expiresAt - DAY));
  const again = await publish('signed again');
  assert.match(again.stdout, new RegExp(`valid until ${new Date(expiresAt + 13 * DAY).toISOString()}`), again.stdout);
  await applied(again.revision);
  const after = await fitness();
  assert.equal(after.status, 200, JSON.stringify(after.reasons));
});
