// Issue "where is the client": real server, real clients (dig and a dns-packet
// UDP client), ECS from various places, scopes that hold for every address
// inside them, and the resolver address when there is no usable ECS.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { firstAnswer, replyEcs, TestDnsClient } from '../helpers/dns-client.ts';
import { popById, popOf } from '../helpers/pops.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
let server: StartedServer;
let client: TestDnsClient;

before(async () => {
  server = await startServer({ workers: 2, args: ['--pop', 'ams'] });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client.close();
  await server.stop();
});

async function dig(...args: string[]): Promise<string> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), '+time=2', '+tries=1', ...args]);
  return stdout;
}

function digAnswer(out: string): string {
  const m = /www\.cdn\.example\.\s+\d+\s+IN\s+A\s+(\S+)/.exec(out);
  assert.ok(m, `no A record in:\n${out}`);
  return m[1];
}

function digScope(out: string): { source: number; scope: number } {
  const m = /CLIENT-SUBNET: [^/]+\/(\d+)\/(\d+)/.exec(out);
  assert.ok(m, `no CLIENT-SUBNET in:\n${out}`);
  return { source: Number(m[1]), scope: Number(m[2]) };
}

/** Random addresses inside prefix/len (IPv4), as /24 ECS subnets. */
function sampleInside(prefix: string, length: number, count: number): string[] {
  const base = prefix.split('.').map(Number).reduce((a, b) => a * 256 + b, 0);
  const size = 2 ** (32 - length);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const address = (base + Math.floor((i + 0.5) * size / count)) >>> 0;
    const slash24 = address - (address % 256);
    out.push(`${[24, 16, 8, 0].map((s) => (slash24 >>> s) & 255).join('.')}/24`);
  }
  return out;
}

describe('nearest PoP from the EDNS Client Subnet (dig +subnet)', () => {
  test('a UK /24 is answered by a European PoP, with the deciding network as scope', async () => {
    const out = await dig('www.cdn.example', 'A', '+subnet=81.2.69.0/24');
    const pop = popById(popOf(digAnswer(out)));
    assert.equal(pop.continent, 'EU');
    assert.equal(pop.id, 'lhr', 'London is the nearest PoP to a UK client');
    const { source, scope } = digScope(out);
    assert.equal(source, 24);
    const explained = JSON.parse((await runCli(['explain', '--name', 'www.cdn.example', '--client', '81.2.69.0/24', '--pop', 'ams', '--json'])).stdout);
    assert.equal(scope, explained.answer.ecs_scope, 'the scope is the network the decision was made for');
    assert.ok(scope >= 8 && scope <= 24, `scope /${scope} is a real network, not a copy of the source`);
  });

  test('Asian and Oceanian prefixes get the nearest PoP there', async () => {
    const cases: Array<[string, string]> = [['1.0.16.0/24', 'nrt'], ['1.128.0.0/24', 'syd'], ['2001:200::/32', 'nrt']];
    for (const [subnet, expected] of cases) {
      const out = await dig('www.cdn.example', 'A', `+subnet=${subnet}`);
      assert.equal(popOf(digAnswer(out)), expected, `${subnet} → ${expected}`);
    }
  });

  test('every /24 inside a returned scope gets the same answer', async () => {
    for (const subnet of ['81.2.69.0/24', '24.48.0.0/24', '200.160.2.0/24', '41.0.1.0/24']) {
      const reply = await client.query('www.cdn.example', 'A', { subnet });
      const ecs = replyEcs(reply);
      assert.ok(ecs, 'the reply echoes ECS');
      const answer = firstAnswer(reply);
      const scope = Math.min(ecs.scopePrefixLength, 24);
      const network = subnet.split('/')[0];
      const replies = await client.queryAll(sampleInside(maskV4(network, scope), scope, 32), (s) => client.query('www.cdn.example', 'A', { subnet: s }));
      for (const r of replies) assert.equal(firstAnswer(r), answer, `inside ${network}/${scope} every network gets ${answer}`);
    }
  });

  test('source prefixes longer than /24 are used only up to /24', async () => {
    const a = await client.query('www.cdn.example', 'A', { subnet: '81.2.69.160/32' });
    const b = await client.query('www.cdn.example', 'A', { subnet: '81.2.69.0/24' });
    assert.equal(firstAnswer(a), firstAnswer(b));
    assert.equal(replyEcs(a)!.sourcePrefixLength, 32, 'the source is echoed as sent');
  });
});

describe('falling back to the resolver address', () => {
  test('without ECS the resolver address decides (loopback has no location: this PoP)', async () => {
    const out = await dig('www.cdn.example', 'A');
    assert.equal(popOf(digAnswer(out)), 'ams');
    assert.doesNotMatch(out, /CLIENT-SUBNET/, 'no ECS in the reply to a query without one');
  });

  test('ECS with a special-use address falls back with the special-use block as scope, never 0; prefix 0 gets scope 0', async () => {
    const cases: Array<[string, number]> = [['10.1.2.0/24', 8], ['100.64.1.0/24', 10], ['192.0.2.0/24', 24], ['172.16.5.0/24', 12], ['fd00::/56', 7], ['0.0.0.0/0', 0]];
    for (const [subnet, scope] of cases) {
      const reply = await client.query('www.cdn.example', 'A', { subnet });
      assert.equal(popOf(firstAnswer(reply)), 'ams', `${subnet} → resolver address → this PoP`);
      assert.equal(replyEcs(reply)?.scopePrefixLength, scope, `${subnet}: scope /${scope}`);
    }
  });
});

function maskV4(address: string, length: number): string {
  const n = address.split('.').map(Number).reduce((a, b) => a * 256 + b, 0);
  const masked = length === 0 ? 0 : (n >>> (32 - length)) << (32 - length) >>> 0;
  return [24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.');
}
