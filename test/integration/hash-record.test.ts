// The active set's content hash, published as TXT (hash_record), agrees with
// the admin API and follows reloads.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
let config: string;
let server: StartedServer;

before(async () => {
  config = copyExampleConfig();
  server = await startServer({ args: ['--config', config, '--hash-record', '_config.cdn.example'] });
});
after(async () => { await server?.stop(); });

async function published(): Promise<string> {
  const { stdout } = await exec('dig', ['+short', '+time=2', '+tries=1', '@127.0.0.1', '-p', String(server.dnsPort), '_config.cdn.example', 'TXT']);
  return stdout.trim().replace(/"/g, '');
}

async function statusHash(): Promise<string> {
  return ((await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/status`)).json()) as { policy_hash: string }).policy_hash;
}

test('the TXT record carries the active set\'s hash and follows a reload', async () => {
  const before = await published();
  assert.match(before, /^[0-9a-f]{16}$/);
  assert.equal(before, await statusHash());
  const reloaded = server.waitForNextLog((l) => l.msg === 'configuration reloaded');
  const file = join(config, 'steering', 'video.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace('{ pop: mad, weight: 10 }', '{ pop: mad, weight: 11 }'));
  const line = await reloaded;
  const after = await published();
  assert.notEqual(after, before);
  assert.equal(after, line.hash);
  assert.equal(after, await statusHash());
});
