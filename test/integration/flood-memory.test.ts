// Floods that would grow an unbounded per-name or per-network cache: 200,000
// random names (NXDOMAIN) and 100,000 distinct ECS subnets (steered answers),
// sent by dnsperf to the real server. The server's resident memory (VmRSS of
// its process, workers included) is read after a warm-up of the same kinds
// of queries and again after the floods; the growth must stay small. The
// caches that could grow are capped by construction: the steering decision
// cache holds one entry per compiled class, the answer template cache has a
// per-policy cap, the RRL table is fixed; this test checks the sum of them.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { dnsperfOnce, residentBytes, writeWireQueries } from '../soak/dnsperf-once.ts';
import { randomNameQueries, subnetQueries } from '../soak/queries.ts';

const WARM_UP_NAMES = 50_000;
const WARM_UP_SUBNETS = 50_000;
const FLOOD_NAMES = 200_000;
const FLOOD_SUBNETS = 100_000;
/** Allowed growth after warm-up: measured under 0.1 MB of ~393 MB; the margin absorbs GC timing when tests share the cores. */
const GROWTH_LIMIT_BYTES = 16 * 1024 * 1024;

let server: StartedServer;
const dir = mkdtempSync(join(tmpdir(), 'popsteer-flood-'));

before(async () => {
  // RRL on at a high rate: its fixed table is part of what is measured, and it must not limit this load
  // (all of it comes from 127.0.0.1): the test exempts loopback.
  server = await startServer({ args: ['--rrl-responses-per-second', '1000', '--rrl-exempt', '127.0.0.0/8'] });
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function flood(name: string, packets: Buffer[]): Promise<void> {
  const file = join(dir, `${name}.bin`);
  writeWireQueries(file, packets);
  const result = await dnsperfOnce(server.dnsPort, file);
  // Loopback loses a few queries under load when the test shares 2 cores; the point is what the server received.
  assert.ok(result.completed >= packets.length * 0.95, `${name}: ${result.completed} of ${packets.length} answered`);
  rmSync(file);
}

test('random-name and distinct-subnet floods do not grow the server\'s memory', async (t) => {
  const pid = server.process.pid!;
  await flood('warm-up-names', randomNameQueries(WARM_UP_NAMES, 0));
  await flood('warm-up-subnets', subnetQueries('www.cdn.example', WARM_UP_SUBNETS, 0));
  const warm = residentBytes(pid);

  await flood('names', randomNameQueries(FLOOD_NAMES, WARM_UP_NAMES));
  const afterNames = residentBytes(pid);
  await flood('subnets', subnetQueries('www.cdn.example', FLOOD_SUBNETS, WARM_UP_SUBNETS));
  const afterSubnets = residentBytes(pid);

  const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
  t.diagnostic(`VmRSS after warm-up ${mb(warm)} MB; after ${FLOOD_NAMES} random names ${mb(afterNames)} MB; after ${FLOOD_SUBNETS} distinct ECS subnets ${mb(afterSubnets)} MB; growth ${mb(afterSubnets - warm)} MB`);
  assert.ok(afterSubnets - warm < GROWTH_LIMIT_BYTES, `growth ${mb(afterSubnets - warm)} MB (limit ${mb(GROWTH_LIMIT_BYTES)} MB)`);

  const metrics = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const cacheEntries = Number(/^popsteer_steering_decision_cache_entries\{[^}]*\} (\S+)/m.exec(metrics)?.[1]);
  t.diagnostic(`steering decision cache entries: ${cacheEntries}`);
  assert.ok(cacheEntries < 10_000, `decision cache entries stay far below the subnets sent: ${cacheEntries}`);
});
