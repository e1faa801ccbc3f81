// Signatures that never expire in service (issue 21), on a real server whose
// clock the test sets (POPSTEER_CLOCK_FILE: the build thread signs with it,
// the main thread judges the window with it). cdn.example is signed on
// 2026-01-10 (window to 01-24). Moved to 6.5 days before expiry, the server
// re-signs in the background through the reload path and dig shows the new
// expiration (01-31) with the content hash unchanged. With the key made
// unreadable (refused as readable by others), the refresh fails; 1.5 days
// before expiry /v1/fitness answers 503 with a reason naming the expiry, the
// gauge popsteer_dnssec_signature_expiry_seconds says how long is left, the
// log says why, and the old signatures keep serving; past the expiry the
// reason says "expired". The key fixed, the next check re-signs and the
// instance is fit again.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { CLI, startServer, testEnvironment, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 10, 12);

let server: StartedServer;
let config: string;
let clockFile: string;

/** Moves the server's clock (the server watches the file and checks at once). */
function setClock(ms: number): void {
  writeFileSync(clockFile, String(ms));
}

/** The RRSIG expiration dig shows for the zone's SOA, as YYYYMMDDHHMMSS. */
async function soaExpiration(): Promise<string> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+time=5', '+tries=2', '+dnssec', '+norec', 'cdn.example', 'SOA']);
  const rrsig = stdout.split('\n').find((l) => /\tRRSIG\tSOA /.test(l));
  assert.ok(rrsig, stdout);
  return rrsig.split(/\s+/)[8];
}

async function fitness(): Promise<{ status: number; fit: boolean; reasons: string[] }> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/fitness`);
  const body = await response.json() as { fit: boolean; reasons: string[] };
  return { status: response.status, ...body };
}

async function expiryGauge(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('popsteer_dnssec_signature_expiry_seconds{'));
  assert.ok(line, 'the gauge is exported for a signed zone');
  assert.match(line, /\{pop="ams"\} /);
  return Number(line.split(' ')[1]);
}

const msg = (text: string) => (l: Record<string, unknown>): boolean => l.msg === text;

before(async () => {
  config = copyExampleConfig();
  clockFile = join(mkdtempSync(join(tmpdir(), 'popsteer-clock-')), 'now');
  setClock(T0);
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^zone: cdn\.example$/m, 'zone: cdn.example\ndnssec: { keys: keys }'));
  await exec(process.execPath, [CLI, 'dnssec', 'keygen', '--config', config, '--zone', 'cdn.example'], { env: testEnvironment() });
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config], env: { POPSTEER_CLOCK_FILE: clockFile } });
});
after(async () => {
  await server.stop();
});

test('signed on the clock\'s day: 14-day window, fit, the gauge counts down from the clock', async () => {
  assert.equal(await soaExpiration(), '20260124000000');
  assert.equal(await expiryGauge(), 13.5 * 86400);
  const f = await fitness();
  assert.equal(f.status, 200, JSON.stringify(f));
});

test('within 7 days of expiry: re-signed in the background, same content hash, new window served', async () => {
  const hash = (await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/status`)).json() as { policy_hash: string }).policy_hash;
  const refreshed = server.waitForNextLog(msg('DNSSEC signatures refreshed'));
  setClock(T0 + 7 * DAY); // 2026-01-17 12:00, 6.5 days left
  await refreshed;
  assert.equal(await soaExpiration(), '20260131000000');
  assert.equal(await expiryGauge(), 13.5 * 86400);
  assert.equal((await fitness()).status, 200);
  const after = (await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/status`)).json() as { policy_hash: string }).policy_hash;
  assert.equal(after, hash, 'the configuration is the same: only the signatures changed');
});

test('re-signing fails (key readable by others): unfit 1.5 days before expiry, then expired; fit again once fixed', async () => {
  const key = join(config, 'keys', 'cdn.example.csk.pem');
  chmodSync(key, 0o644);
  const failed = server.waitForNextLog(msg('DNSSEC re-signing failed; the old signatures keep serving'));
  const unfitLine = server.waitForNextLog(msg('unfit: DNSSEC signatures expire within the safety margin'));
  setClock(Date.UTC(2026, 0, 29, 12)); // 1.5 days before 01-31
  const [failure, unfit] = await Promise.all([failed, unfitLine]);
  assert.match(JSON.stringify(failure.errors), /cdn\.example\.csk\.pem/);
  assert.match(String(unfit.reason), /expire at 2026-01-31T00:00:00\.000Z, in 36\.0 h/);
  const f = await fitness();
  assert.equal(f.status, 503);
  assert.equal(f.fit, false);
  assert.ok(f.reasons.some((r) => /^DNSSEC signatures expire at 2026-01-31T00:00:00\.000Z/.test(r)), JSON.stringify(f.reasons));
  assert.equal(await expiryGauge(), 1.5 * 86400);
  assert.equal(await soaExpiration(), '20260131000000', 'the old signatures keep serving');

  const failedAgain = server.waitForNextLog(msg('DNSSEC re-signing failed; the old signatures keep serving'));
  setClock(Date.UTC(2026, 0, 31, 6));
  await failedAgain;
  assert.ok((await fitness()).reasons.some((r) => r.startsWith('DNSSEC signatures expired at 2026-01-31T00:00:00.000Z')));
  assert.equal(await expiryGauge(), -6 * 3600);

  chmodSync(key, 0o600);
  const refreshed = server.waitForNextLog(msg('DNSSEC signatures refreshed'));
  setClock(Date.UTC(2026, 0, 31, 6, 1));
  await refreshed;
  assert.equal(await soaExpiration(), '20260214000000');
  const again = await fitness();
  assert.equal(again.status, 200, JSON.stringify(again));
});
