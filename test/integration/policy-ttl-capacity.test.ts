// TTLs derived from health (gdnsd-style: the time until a candidate's state
// could next change, clamped) and capacity steps (a PoP whose declared load
// is above its mark hands a share of client networks to the next PoP).

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, records, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'capacity-test-token';
let target: Server;
let server: StartedServer;
let client: TestDnsClient;

before(async () => {
  target = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  const port = (target.address() as { port: number }).port;
  // The downloads PoPs are probed every 10 s and go down after 3 failures:
  // while they are up, no state can change for 21–31 s.
  const geoData = mkdtempSync(join(tmpdir(), 'popsteer-geo-'));
  cpSync(join(REPO_ROOT, 'geo-data'), geoData, { recursive: true });
  writeFileSync(join(geoData, 'probes.yaml'), [
    'defaults: { interval: 10s, timeout: 1s, fall: 3, rise: 2 }',
    'targets:',
    `  local: { kind: http, host: 127.0.0.1, port: ${port}, path: /healthz }`,
    'pops:',
    '  iad: { probes: [local] }',
    '  ord: { probes: [local] }',
    '  sjc: { probes: [local] }',
    '',
  ].join('\n'));
  const config = copyExampleConfig();
  const downloads = join(config, 'steering', 'spill.yaml');
  writeFileSync(downloads, readFileSync(downloads, 'utf8').replace('    degraded_ttl: 15\n', '    degraded_ttl: 15\n    ttl_from_health: { max: 40, min: 5 }\n'));
  const www = join(config, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('steps: [healthy, nearest, { first: 1 }]', 'steps: [healthy, nearest, { capacity: { mark: 0.8 } }, { first: 1 }]'));
  server = await startServer({ args: ['--config', config, '--geo-data', geoData, '--pop', 'ams'], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client?.close();
  await server?.stop();
  target?.close();
});

test('ttl_from_health: the TTL is the time until a candidate could change state, clamped', async () => {
  const reply = await client.query('downloads.cdn.example', 'A', { subnet: '24.48.0.0/24' });
  const ttl = records(reply)[0].ttl;
  assert.ok(ttl >= 20 && ttl <= 31, `TTL ${ttl}: next probe (0–10 s) + 2 more failures × 10 s + 1 s timeout`);
  const www = await client.query('www.cdn.example', 'A', { subnet: '24.48.0.0/24' });
  assert.equal(records(www)[0].ttl, 60, 'policies without ttl_from_health keep their TTL');
});

async function setLoad(pop: string, load: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/load`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pop, load }),
  });
  assert.equal(response.status, 200, await response.text());
}

test('capacity: a PoP loaded above its mark hands (load − mark) / load of its networks to the next PoP, stickily', async () => {
  const sample = readFileSync(join(REPO_ROOT, 'policies/samples/geolite2-networks.txt'), 'utf8').split('\n').filter((l) => /^\d/.test(l));
  const before = await client.queryAll(sample, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  const fraNetworks = sample.filter((_, i) => popOf(firstAnswer(before[i])) === 'fra');
  assert.ok(fraNetworks.length >= 150, `${fraNetworks.length} networks go to Frankfurt`);

  await setLoad('fra', 0.7); // below the mark: nothing moves
  const calm = await client.queryAll(fraNetworks, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  assert.ok(calm.every((r) => popOf(firstAnswer(r)) === 'fra'));

  await setLoad('fra', 1.6); // (1.6 − 0.8) / 1.6 = half of its networks move on
  const loaded = await client.queryAll(fraNetworks, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  const moved = loaded.filter((r) => popOf(firstAnswer(r)) !== 'fra').length / fraNetworks.length;
  assert.ok(moved > 0.38 && moved < 0.62, `${(moved * 100).toFixed(0)}% moved`);
  const again = await client.queryAll(fraNetworks, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  again.forEach((r, i) => assert.equal(firstAnswer(r), firstAnswer(loaded[i]), 'a network keeps its PoP while the load holds'));

  await setLoad('fra', 0);
  const back = await client.queryAll(fraNetworks, (s) => client.query('www.cdn.example', 'A', { subnet: s }));
  assert.ok(back.every((r) => popOf(firstAnswer(r)) === 'fra'), 'all come back when the load drops');
});

test('the load feed refuses unknown PoPs and callers without the token', async () => {
  const unknown = await fetch(`http://127.0.0.1:${server.adminPort}/v1/load`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ pop: 'atlantis', load: 1 }),
  });
  assert.equal(unknown.status, 404);
  const anonymous = await fetch(`http://127.0.0.1:${server.adminPort}/v1/load`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pop: 'fra', load: 1 }),
  });
  assert.equal(anonymous.status, 401);
});
