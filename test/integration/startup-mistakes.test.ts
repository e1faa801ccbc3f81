// Start-up mistakes against the real command: a second instance on a DNS
// address that is already served is refused (exit 2, naming the address)
// unless --share-listen asks for it; an admin address that is taken, or that
// cannot be bound after the DNS workers started, ends the process with exit
// 2 and leaves nothing running; an admin address beyond loopback needs
// --admin-expose; an open-file limit too low for the connection caps lowers
// them (or, with no room at all, is exit 2); every command's exit status for
// bad usage is the one its help promises.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { CLI, REPO_ROOT, runCli, startServer, type StartedServer } from '../helpers/server.ts';
import { TestDnsClient } from '../helpers/dns-client.ts';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

const GEO = ['--geo-data', join(REPO_ROOT, 'geo-data')];

let first: StartedServer;

before(async () => { first = await startServer({ admin: false }); });
after(async () => { await first?.stop(); });

interface Outcome {
  /** Exit code, or null when the server came up instead ("DNS listening"). */
  code: number | null;
  stderr: string;
  logs: Array<Record<string, unknown>>;
  /** The process, still running when it came up. */
  child: ReturnType<typeof spawn>;
}

/** Runs `popsteer serve` until it exits or reports DNS listening, whichever comes first (both are events). */
async function serveUntilUpOrExit(args: string[], openFileLimit?: number): Promise<Outcome> {
  const state = mkdtempSync(join(tmpdir(), 'popsteer-state-'));
  const command = [process.execPath, CLI, 'serve', ...GEO, '--drain-ms', '0', '--workers', '1', '--state-file', join(state, 's.json'), ...args];
  if (openFileLimit !== undefined) command.unshift('prlimit', `--nofile=${openFileLimit}:${openFileLimit}`, '--');
  const child = spawn(command[0], command.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const logs: Array<Record<string, unknown>> = [];
  const up = new Promise<null>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (text) => {
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        logs.push(line);
        if (line.msg === 'DNS listening (UDP and TCP)') resolve(null);
      } catch { /* not a log line */ }
    });
  });
  const exited = once(child, 'exit').then(([code]) => code as number);
  const code = await Promise.race([up, exited]);
  return { code, stderr, logs, child };
}

async function stopChild(child: ReturnType<typeof spawn>): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  return (await exited)[0] as number | null;
}

test('a second instance on a DNS address already served is refused, exit 2 naming the address', async () => {
  const address = `127.0.0.1:${first.dnsPort}`;
  const second = await serveUntilUpOrExit(['--listen', address, '--admin', 'off']);
  try {
    assert.equal(second.code, 2, `the second instance came up sharing ${address}`);
    assert.match(second.stderr, new RegExp(`POPSTEER_ERR_ADDRESS_IN_USE: /listen: ${address.replace(/\./g, '\\.')} \\(UDP\\) is already served by another process`));
    assert.match(second.stderr, /--share-listen/, 'says how to share it on purpose');
    assert.ok(!second.logs.some((l) => l.msg === 'geo data loaded'), 'refused before the long load');
  } finally {
    await stopChild(second.child);
  }
});

test('--share-listen starts a second instance on the same address (a handover) and says so', async () => {
  const address = `127.0.0.1:${first.dnsPort}`;
  const second = await serveUntilUpOrExit(['--listen', address, '--admin', 'off', '--share-listen']);
  try {
    assert.equal(second.code, null, `exited ${second.code}: ${second.stderr}`);
    const sharing = second.logs.find((l) => l.msg === 'sharing DNS addresses with another process (--share-listen): queries are split between the two until one stops');
    assert.deepEqual(sharing?.listen, [address]);
  } finally {
    assert.equal(await stopChild(second.child), 0);
  }
  // The first instance serves on, alone again.
  const client = new TestDnsClient(first.dnsPort);
  try {
    assert.equal((await client.query('www.cdn.example', 'A')).rcode, 'NOERROR');
  } finally {
    client.close();
  }
});

test('an admin address held by another process: exit 2 naming it, nothing left serving', async () => {
  const holder: Server = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  const port = (holder.address() as { port: number }).port;
  try {
    const outcome = await serveUntilUpOrExit(['--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${port}`]);
    if (outcome.code === null) {
      // Came up without its admin API: one SIGTERM must still end it.
      const code = await stopChild(outcome.child);
      assert.fail(`serving DNS without its admin address; exited ${code} after SIGTERM`);
    }
    assert.equal(outcome.code, 2);
    assert.match(outcome.stderr, new RegExp(`POPSTEER_ERR_ADMIN_ADDRESS: /admin: 127\\.0\\.0\\.1:${port} is already in use`));
  } finally {
    holder.close();
  }
});

test('an admin address that fails to bind after the DNS workers started: exit 2, workers and all stopped', async () => {
  // 192.0.2.1 (TEST-NET-1) is on no interface here: the early check cannot see it, the bind fails.
  const state = mkdtempSync(join(tmpdir(), 'popsteer-state-'));
  const r = await runCli(['serve', ...GEO, '--listen', '127.0.0.1:0', '--workers', '2', '--drain-ms', '0', '--state-file', join(state, 's.json'),
    '--admin', '192.0.2.1:8053', '--admin-expose']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /POPSTEER_ERR_ADMIN_ADDRESS: \/admin: cannot listen on 192\.0\.2\.1:8053: EADDRNOTAVAIL/);
  assert.match(r.stdout, /DNS listening/, 'the workers had started');
  assert.match(r.stdout, /the admin API is reachable beyond this machine \(--admin-expose\), over plain HTTP/, 'the exposure was warned about');
});

test('an admin address beyond loopback without --admin-expose is refused, exit 2', async () => {
  const r = await runCli(['serve', ...GEO, '--listen', '127.0.0.1:0', '--admin', '0.0.0.0:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /POPSTEER_ERR_SETTING: \/admin: --admin: 0\.0\.0\.0:0 is reachable beyond this machine/);
  assert.match(r.stderr, /--admin-expose/);
});

test('under a low open-file limit the connection caps are lowered to fit, with a warning naming the limit; too low a limit is exit 2', async () => {
  // 1,100 descriptors: 1,000 TCP + 64 admin + 512 kept (256 + the probes' max_in_flight of 256) do not fit.
  const low = await startServer({ openFileLimit: 1100 });
  try {
    const warning = low.logs.find((l) => String(l.msg).startsWith('connection caps lowered'));
    assert.ok(warning, 'a warning at start-up');
    assert.match(String(warning.msg), /open-file limit \(RLIMIT_NOFILE\) is 1100/);
    assert.deepEqual([warning.tcpMaxConnections, warning.adminMaxConnections], [524, 64]);
    const metrics = await (await fetch(`http://127.0.0.1:${low.adminPort}/metrics`)).text();
    assert.match(metrics, /^popsteer_connection_limit\{listener="dns_tcp"[^}]*\} 524$/m);
  } finally {
    await low.stop();
  }
  const none = await serveUntilUpOrExit(['--listen', '127.0.0.1:0', '--admin', 'off'], 400);
  try {
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /RLIMIT_NOFILE\) is 400, which leaves no descriptors for connections/);
  } finally {
    await stopChild(none.child);
  }
});

test('every command exits as its help says for bad usage', async () => {
  const cases: Array<{ args: string[]; code: number; help: RegExp }> = [
    { args: ['serve', '--bogus'], code: 2, help: /exit code 2|Exit status/ },
    { args: ['validate', '--bogus'], code: 2, help: /2 bad usage/ },
    { args: ['explain', '--bogus'], code: 2, help: /2 bad usage/ },
    { args: ['explain'], code: 2, help: /2 bad usage/ },
    { args: ['diff', '--bogus'], code: 2, help: /2 bad usage/ },
    { args: ['diff'], code: 2, help: /2 bad usage/ },
    { args: ['pop', 'drain'], code: 2, help: /2 bad usage/ },
    { args: ['anycast', '--bogus'], code: 2, help: /2 bad usage/ },
    { args: ['bogus'], code: 2, help: /2 bad usage/ },
  ];
  const helpChecked = new Set<string>();
  for (const c of cases) {
    const r = await runCli(c.args);
    assert.equal(r.code, c.code, `popsteer ${c.args.join(' ')}: ${r.stderr.split('\n')[0]}`);
    if (helpChecked.has(c.args[0])) continue;
    helpChecked.add(c.args[0]);
    const help = await runCli(c.args[0] === 'bogus' ? ['--help'] : [c.args[0], '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, c.help, `popsteer ${c.args[0]} --help states the exit status`);
  }
});
