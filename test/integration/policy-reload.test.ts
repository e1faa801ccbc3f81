// Editing policies under a running server: a broken edit is rejected with
// its file:line and the old set keeps serving; a good edit takes effect
// within a second with no failed query while the swap happens under load.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, TestDnsClient } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

let configDir: string;
let server: StartedServer;
let client: TestDnsClient;
let original: string;
const UK = '81.2.69.0/24';

before(async () => {
  configDir = copyExampleConfig();
  original = readFileSync(join(configDir, 'steering', 'www.yaml'), 'utf8');
  server = await startServer({ workers: 2, admin: false, args: ['--pop', 'ams', '--config', configDir] });
  client = new TestDnsClient(server.dnsPort);
});
after(async () => {
  client.close();
  await server.stop();
});

const wwwFile = (): string => join(configDir, 'steering', 'www.yaml');

test('an invalid edit is rejected with the line to fix, and the old set keeps answering', async () => {
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: UK }))), 'lhr');
  const broken = original.replace('edge: { pops: all }', 'edge: { pops: [ams, atlantis] }');
  const rejected = server.waitForNextLog((l) => l.msg === 'reload rejected; the previous configuration keeps serving');
  writeFileSync(wwwFile(), broken);
  const line = await rejected;
  const errors = (line.errors as string[]).join('\n');
  const expectedLine = broken.split('\n').findIndex((l) => l.includes('atlantis')) + 1;
  assert.match(errors, new RegExp(`www\\.yaml:${expectedLine}:\\d+: POPSTEER_ERR_POLICY_UNKNOWN_POP`), errors);
  assert.match(errors, /unknown PoP "atlantis"/);
  for (let i = 0; i < 20; i++) {
    assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: UK }))), 'lhr', 'still the old set');
  }
});

test('a valid edit takes effect within one second, with no failed query during the swap', async () => {
  const restored = server.waitForNextLog((l) => String(l.msg).startsWith('configuration') && String(l.reason).includes('www.yaml'));
  writeFileSync(wwwFile(), original);
  await restored;
  // Eight clients query continuously while the policy changes under them.
  let running = true;
  let sent = 0;
  let failed = 0;
  let switchedAt = 0;
  const loops = Array.from({ length: 8 }, async () => {
    while (running) {
      sent++;
      try {
        const answer = firstAnswer(await client.query('www.cdn.example', 'A', { subnet: UK, timeoutMs: 1000 }));
        if (answer === null) failed++;
        else if (popOf(answer) === 'mad' && switchedAt === 0) switchedAt = performance.now();
      } catch {
        failed++;
      }
    }
  });
  await new Promise<void>((resolve) => setImmediate(resolve));
  const editedAt = performance.now();
  const reloaded = server.waitForNextLog((l) => l.msg === 'configuration reloaded' && String(l.reason).includes('www.yaml'));
  writeFileSync(wwwFile(), original.replace('edge: { pops: all }', 'edge: { pops: [mad] }'));
  await reloaded;
  const deadline = Date.now() + 3000;
  // A fast swap is over in a few dozen queries: keep the clients going until enough ran across it.
  while ((switchedAt === 0 || sent <= 100) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  running = false;
  await Promise.all(loops);
  assert.ok(switchedAt > 0, 'the edit took effect');
  const tookMs = switchedAt - editedAt;
  assert.ok(tookMs < 1000, `took ${tookMs.toFixed(0)} ms`);
  assert.equal(failed, 0, `${failed} of ${sent} queries failed during the swap`);
  assert.ok(sent > 100, `${sent} queries ran during the swap`);
});

test('SIGHUP reloads as well', async () => {
  const watched = server.waitForNextLog((l) => l.msg === 'configuration reloaded' && String(l.reason).includes('www.yaml'));
  writeFileSync(wwwFile(), original.replace('edge: { pops: all }', 'edge: { pops: [fra] }'));
  await watched;
  const hup = server.waitForNextLog((l) => String(l.msg).startsWith('configuration') && l.reason === 'SIGHUP');
  server.process.kill('SIGHUP');
  assert.equal((await hup).msg, 'configuration unchanged', 'SIGHUP reloads; the set on disk is the one already serving');
  assert.equal(popOf(firstAnswer(await client.query('www.cdn.example', 'A', { subnet: UK }))), 'fra');
});
