// The PoP that received the query as a steering signal: preferred when it is
// up and close to the best candidate (prefer_self_within_km), the fallback for
// clients without a location, and shown in explain when it decided.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { runCli, startServer, type StartedServer } from '../helpers/server.ts';

const UK = '81.2.69.0/24';
let config: string;
let inAmsterdam: StartedServer;
let inMadrid: StartedServer;

before(async () => {
  config = copyExampleConfig();
  const www = join(config, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('steps: [healthy, nearest, { first: 1 }]', 'steps: [healthy, nearest, { prefer_self_within_km: 500 }, { first: 1 }]'));
  [inAmsterdam, inMadrid] = await Promise.all([
    startServer({ admin: false, args: ['--config', config, '--pop', 'ams'] }),
    startServer({ admin: false, args: ['--config', config, '--pop', 'mad'] }),
  ]);
});
after(async () => {
  await inAmsterdam?.stop();
  await inMadrid?.stop();
});

async function ask(server: StartedServer, subnet?: string): Promise<string> {
  const client = new TestDnsClient(server.dnsPort);
  try {
    return popOf(firstAnswer(await client.query('www.cdn.example', 'A', subnet ? { subnet } : {})));
  } finally {
    client.close();
  }
}

test('this PoP answers when it is within 500 km of the best candidate; otherwise the nearest does', async () => {
  assert.equal(await ask(inAmsterdam, UK), 'ams', 'Amsterdam is ~360 km from London: the anycast route chose well enough');
  assert.equal(await ask(inMadrid, UK), 'lhr', 'Madrid is ~1,260 km from London: the nearest PoP wins');
});

test('a client without a location gets the PoP that received the query', async () => {
  assert.equal(await ask(inAmsterdam), 'ams');
  assert.equal(await ask(inMadrid), 'mad');
});

test('explain says when this PoP decided', async () => {
  const r = await runCli(['explain', '--config', config, '--geo-data', 'geo-data', '--pop', 'ams', '--name', 'www.cdn.example', '--client', UK, '--json']);
  const trace = JSON.parse(r.stdout);
  assert.equal(trace.outcome.self_preferred, true);
  assert.match(trace.answer.records[0], /\(ams\)/);
  const text = await runCli(['explain', '--config', config, '--geo-data', 'geo-data', '--pop', 'ams', '--name', 'www.cdn.example', '--client', UK]);
  assert.match(text.stdout, /this PoP preferred \(self\)/);
});
