// The ways people start popsteer: `npm start` really serves (and stops on
// SIGTERM), `popsteer --version` names the version and the runtime, and an
// older Node gets a clear message and exit code 2 instead of a raw
// ERR_UNKNOWN_FILE_EXTENSION.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT, runCli, testEnvironment } from '../helpers/server.ts';

const exec = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const scratch = mkdtempSync(join(tmpdir(), 'popsteer-entry-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('popsteer --version prints the version and the Node.js runtime', async () => {
  const { code, stdout } = await runCli(['--version']);
  assert.equal(code, 0);
  assert.equal(stdout, `popsteer ${VERSION} (Node.js ${process.version}, ${process.platform} ${process.arch})\n`);
});

test('npm start serves DNS, and stops on SIGTERM', async () => {
  const npm = spawn('npm', ['start', '--', '--listen', '127.0.0.1:0', '--admin', 'off', '--workers', '1', '--drain-ms', '0'], {
    cwd: REPO_ROOT,
    // npm's own cache and logs go to the scratch directory, not ~/.npm.
    env: testEnvironment({ POPSTEER_STATE_FILE: join(scratch, 'state', 'state.json'), npm_config_cache: join(scratch, 'npm-cache'), npm_config_logs_max: '0', npm_config_update_notifier: 'false' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(npm, 'exit');
  try {
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: npm.stdout! }).on('line', (text) => {
        if (!text.startsWith('{')) return;
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line.msg === 'DNS listening (UDP and TCP)') resolve(line);
      });
      void exited.then(([code]) => reject(new Error(`npm start exited with ${code}`)));
    });
    const port = String((listening.listen as string[])[0]).split(':').pop()!;
    const { stdout } = await exec('dig', ['+short', '+time=5', '+tries=2', '@127.0.0.1', '-p', port, 'id.server', 'CH', 'TXT']);
    assert.match(stdout, /^"[^"]+"\n$/, 'the server answers CHAOS id.server with its PoP id');
  } finally {
    npm.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, 'npm start exits cleanly on SIGTERM');
  }
});

const OLD_NODE = '/usr/bin/node';
const oldNodeVersion = existsSync(OLD_NODE) ? (await exec(OLD_NODE, ['--version'])).stdout.trim() : '';
const noOldNode = !oldNodeVersion ? `no ${OLD_NODE} on this machine` : Number(oldNodeVersion.slice(1).split('.')[0]) >= 24 ? `${OLD_NODE} is ${oldNodeVersion}, not older than 24` : false;

test(`an older Node (the system's ${oldNodeVersion || 'node'}) gets a clear message and exit code 2`, { skip: noOldNode }, async () => {
  const result = await exec(OLD_NODE, [join(REPO_ROOT, 'bin', 'popsteer.js'), '--version']).then(() => null, (err: { code: number; stderr: string }) => err);
  assert.ok(result, 'it must not succeed');
  assert.equal(result.code, 2);
  assert.match(result.stderr, /needs Node\.js 24 or later, and this is v\d+/);
  assert.doesNotMatch(result.stderr, /ERR_UNKNOWN_FILE_EXTENSION/);
});
