// `popsteer pop` against the real admin API: the override applies, shows in
// /v1/pops with its reason and expiry, moves answers, and is lifted again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'pop-cli-token';
let server: StartedServer;
let client: TestDnsClient;

before(async () => {
  server = await startServer({ env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client?.close();
  await server?.stop();
});

test('pop drain with an expiry, then undrain, through the real admin API', async () => {
  const admin = `127.0.0.1:${server.adminPort}`;
  const env = { POPSTEER_ADMIN_TOKEN: TOKEN };
  const drained = await runCli(['pop', 'drain', 'lhr', '--reason', 'fibre work', '--expires', '30m', '--admin', admin], { env });
  assert.equal(drained.code, 0, drained.stdout + drained.stderr);
  const pops = await (await fetch(`http://${admin}/v1/pops`)).json() as { pops: Array<{ id: string; override: { kind: string; reason: string; expires: string | null } | null }> };
  const lhr = pops.pops.find((p) => p.id === 'lhr')!;
  assert.equal(lhr.override?.kind, 'drain');
  assert.equal(lhr.override?.reason, 'fibre work');
  const expiresIn = Date.parse(String(lhr.override?.expires)) - Date.now();
  assert.ok(expiresIn > 29 * 60_000 && expiresIn <= 30 * 60_000, `expires in ${expiresIn} ms`);
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: '81.2.69.0/24' }))), 'ams');
  const undrained = await runCli(['pop', 'undrain', 'lhr', '--reason', 'done', '--admin', admin], { env });
  assert.equal(undrained.code, 0, undrained.stderr);
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: '81.2.69.0/24' }))), 'lhr');
});
