// Which resolvers' ECS is trusted: by default every resolver's; with
// --ecs-trust, only those networks', others are located by their own address
// (and get scope 0).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { firstAnswer, replyEcs, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const UK = '81.2.69.0/24';
let trustsLoopback: StartedServer;
let trustsOthers: StartedServer;

before(async () => {
  [trustsLoopback, trustsOthers] = await Promise.all([
    startServer({ admin: false, args: ['--pop', 'ams', '--ecs-trust', '127.0.0.0/8,::1/128'] }),
    startServer({ admin: false, args: ['--pop', 'ams', '--ecs-trust', '192.0.2.0/24'] }),
  ]);
});
after(async () => {
  await trustsLoopback?.stop();
  await trustsOthers?.stop();
});

async function ask(server: StartedServer): Promise<{ pop: string; scope: number | undefined }> {
  const client = new TestDnsClient(server.dnsPort);
  try {
    const reply = await client.query('www.cdn.example', 'A', { subnet: UK });
    return { pop: popOf(firstAnswer(reply)), scope: replyEcs(reply)?.scopePrefixLength };
  } finally {
    client.close();
  }
}

test('a trusted resolver\'s ECS decides', async () => {
  const { pop, scope } = await ask(trustsLoopback);
  assert.equal(pop, 'lhr');
  assert.ok(scope !== undefined && scope > 0);
});

test('an untrusted resolver is located by its own address, with scope 0', async () => {
  const { pop, scope } = await ask(trustsOthers);
  assert.equal(pop, 'ams', 'loopback has no location: this PoP');
  assert.equal(scope, 0);
});
