// The override state file and the GeoIP index cache against the real server:
// with the defaults of a fresh clone a drain survives a restart (state/ and
// state/cache/ are made with mode 0700), and a state file or directory that a
// local user could redirect (a symbolic link, a planted temporary file, a
// directory others may write) is refused with a clear error instead of
// followed.

import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'state-files-test-token';
const scratch = mkdtempSync(join(tmpdir(), 'popsteer-state-files-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function drain(server: StartedServer, pop: string, reason: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops/${pop}/drain`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason }),
  });
  await response.arrayBuffer();
  return response.status;
}

async function overrideOf(server: StartedServer, pop: string): Promise<{ kind: string; reason: string } | null> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops`);
  const json = (await response.json()) as { pops: Array<{ id: string; override: { kind: string; reason: string } | null }> };
  return json.pops.find((p) => p.id === pop)!.override;
}

/** Starting must fail with exit 2 and an error naming `path`; a server that starts anyway is stopped and the test fails. */
async function assertRefused(args: string[], path: string, problem: RegExp): Promise<void> {
  let started: StartedServer | null = null;
  try {
    started = await startServer({ args, env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  } catch (err) {
    const message = (err as Error).message;
    assert.match(message, /server exited with 2/, message);
    assert.ok(message.includes(path), `the error names ${path}: ${message}`);
    assert.match(message, /POPSTEER_ERR_UNSAFE_PATH/);
    assert.match(message, problem);
    return;
  }
  await started.stop();
  assert.fail(`the server started with ${path} although it must refuse it`);
}

test('from a fresh clone with the default paths, a drain survives a restart; state/ and its cache/ are made with mode 0700', async () => {
  const clone = join(scratch, 'clone');
  mkdirSync(clone);
  for (const dir of ['policies', 'geo-data']) cpSync(join(REPO_ROOT, dir), join(clone, dir), { recursive: true });
  // As a developer runs it: from the clone, no --state-file, no --cache-dir, no XDG_CACHE_HOME.
  const options = { cwd: clone, defaultPaths: true, args: ['--geo-data', join(clone, 'geo-data')], env: { POPSTEER_ADMIN_TOKEN: TOKEN, XDG_CACHE_HOME: '' } };
  const first = await startServer(options);
  try {
    assert.equal(await drain(first, 'lhr', 'fibre work'), 200);
    assert.ok(!first.logs.some((l) => String(l.msg).includes('cannot write the health state file')), 'the state file was written');
  } finally {
    await first.stop();
  }
  const stateDir = join(clone, 'state');
  assert.equal(statSync(stateDir).mode & 0o777, 0o700, 'state/ made private');
  assert.equal(statSync(join(stateDir, 'cache')).mode & 0o777, 0o700, 'state/cache/ made private');
  assert.ok(readdirSync(join(stateDir, 'cache')).some((name) => name.endsWith('.geoindex')), 'the GeoIP index was cached there, not under $HOME');
  assert.equal(JSON.parse(readFileSync(join(stateDir, 'popsteer-state.json'), 'utf8')).overrides.lhr.kind, 'drain');

  const second = await startServer(options);
  try {
    await second.waitForLog((l) => l.msg === 'health override restored' && l.subject === 'lhr');
    assert.deepEqual(await overrideOf(second, 'lhr').then((o) => o && [o.kind, o.reason]), ['drain', 'fibre work']);
  } finally {
    await second.stop();
  }
});

test('a state file that is a symbolic link stops start-up with exit 2 naming it, and its target is left alone', async () => {
  const dir = mkdtempSync(join(scratch, 'link-'));
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  const stateFile = join(dir, 'state.json');
  symlinkSync(victim, stateFile);
  await assertRefused(['--state-file', stateFile], stateFile, /symbolic link/);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
});

test('a state directory that others may write stops start-up with exit 2 and the chmod to run', async () => {
  const dir = mkdtempSync(join(scratch, 'open-'));
  chmodSync(dir, 0o777);
  await assertRefused(['--state-file', join(dir, 'state.json')], dir, /writable by group or others \(mode 777\); chmod go-w/);
});

test('a planted link at a temporary-file name is never followed: the drain is saved and the link target untouched', async () => {
  const dir = mkdtempSync(join(scratch, 'planted-'));
  const stateFile = join(dir, 'state.json');
  const victim = join(scratch, `victim-${Date.now()}.txt`);
  writeFileSync(victim, 'precious\n');
  const server = await startServer({ args: ['--state-file', stateFile], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  try {
    // The names an attacker could predict: the file plus the server's pid, or plain .tmp.
    for (const name of [`${stateFile}.${server.process.pid}.tmp`, `${stateFile}.tmp`]) symlinkSync(victim, name);
    assert.equal(await drain(server, 'ams', 'planted link test'), 200);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the link target was not written');
    assert.equal(JSON.parse(readFileSync(stateFile, 'utf8')).overrides.ams.kind, 'drain');
    assert.ok(lstatSync(stateFile).isFile() && !lstatSync(stateFile).isSymbolicLink());
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
  } finally {
    await server.stop();
  }
  assert.ok(existsSync(victim));
});

test('a state file swapped for a link while serving is refused on the next write, logged with the reason, and not followed', async () => {
  const dir = mkdtempSync(join(scratch, 'swapped-'));
  const stateFile = join(dir, 'state.json');
  const victim = join(scratch, `victim-swapped-${Date.now()}.txt`);
  writeFileSync(victim, 'precious\n');
  const server = await startServer({ args: ['--state-file', stateFile], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  try {
    assert.equal(await drain(server, 'ams', 'first'), 200);
    rmSync(stateFile);
    symlinkSync(victim, stateFile);
    const refused = server.waitForNextLog((l) => String(l.msg).includes('cannot write the health state file'));
    assert.equal(await drain(server, 'fra', 'second'), 200);
    const line = await refused;
    assert.match(String(line.err), /symbolic link/);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  } finally {
    await server.stop();
  }
});
