// Starts the real popsteer server (the CLI, as users run it) on ephemeral
// loopback ports and waits for its "listening" log lines — an event, not a
// sleep. Shared by every integration test. Every server and CLI run gets a
// temporary state file and a shared temporary GeoIP index cache unless the
// test asks for the defaults, so the suite writes nothing into the
// repository or $HOME. Every JSON line a server logs is checked for repeated
// keys: stop() fails the test that saw one.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after } from 'node:test';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { duplicateKeys } from './log-lines.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../server/cli/popsteer.ts', import.meta.url));

export interface StartedServer {
  process: ChildProcess;
  dnsPort: number;
  adminPort: number | null;
  /** Every JSON log line seen so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line (seen before or after the call) that matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the first matching log line written after this call. */
  waitForNextLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  workers?: number;
  admin?: boolean;
  cwd?: string;
  /** Runs the server under this open-file limit (RLIMIT_NOFILE, soft and hard), through prlimit(1). */
  openFileLimit?: number;
  /** Leave the state file and cache directory to popsteer's defaults (tests of the defaults run in a temporary clone). */
  defaultPaths?: boolean;
}

/**
 * The GeoIP index cache every test server shares: `make test` makes a fresh
 * temporary directory per run (POPSTEER_TEST_CACHE_DIR) and removes it after;
 * a single test file run alone uses one under the system's temporary directory.
 */
export const TEST_CACHE_DIR = process.env.POPSTEER_TEST_CACHE_DIR || join(tmpdir(), `popsteer-test-cache-${process.geteuid?.() ?? 0}`);

/** The environment a test's popsteer process runs with: the shared cache, no home-directory defaults. */
export function testEnvironment(extra: NodeJS.ProcessEnv = {}, defaultPaths = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!defaultPaths && env.POPSTEER_CACHE_DIR === undefined) env.POPSTEER_CACHE_DIR = TEST_CACHE_DIR;
  return env;
}

const START_TIMEOUT_MS = 150_000;

/** Lines with a repeated key, across every server this test process started. */
const linesWithRepeatedKeys: string[] = [];
/** Servers still running, with the promise of their exit. */
const running = new Map<ChildProcess, Promise<unknown>>();
// Servers a test stopped some other way are checked when the file's tests end.
// This hook runs before the file's own after hooks, and a hook that throws
// skips the ones after it: before failing, it stops every server still
// running, so that none outlives the test process.
after(async () => {
  if (linesWithRepeatedKeys.length > 0) await stopEveryServer();
  assertNoRepeatedKeys();
});

async function stopEveryServer(): Promise<void> {
  await Promise.all([...running].map(async ([child, exited]) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  }));
}

export async function startServer(options: StartOptions = {}): Promise<StartedServer> {
  const args = [CLI, 'serve', '--listen', '127.0.0.1:0', '--workers', String(options.workers ?? 1), '--log-level', 'info'];
  if (options.admin === false) args.push('--admin', 'off');
  else args.push('--admin', '127.0.0.1:0');
  // Tests stop servers often: no anycast drain delay unless a test asks for one.
  if (!(options.args ?? []).includes('--drain-ms')) args.push('--drain-ms', '0');
  // The example geo data, wherever the config directory is, unless a test brings its own.
  if (!(options.args ?? []).includes('--geo-data')) args.push('--geo-data', join(REPO_ROOT, 'geo-data'));
  // Each server keeps its overrides in its own state file unless a test shares one on purpose.
  if (!options.defaultPaths && !(options.args ?? []).includes('--state-file')) {
    args.push('--state-file', join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json'));
  }
  args.push(...(options.args ?? []));
  const [command, commandArgs] = options.openFileLimit === undefined
    ? [process.execPath, args]
    : ['prlimit', [`--nofile=${options.openFileLimit}:${options.openFileLimit}`, '--', process.execPath, ...args]];
  const child = spawn(command, commandArgs, {
    cwd: options.cwd ?? REPO_ROOT,
    env: testEnvironment(options.env, options.defaultPaths),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text);
    } catch {
      return;
    }
    if (duplicateKeys(text).length > 0) linesWithRepeatedKeys.push(text);
    logs.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].match(line)) {
        waiters[i].resolve(line);
        waiters.splice(i, 1);
      }
    }
  });
  const exited = once(child, 'exit');
  running.set(child, exited);
  void exited.then(() => running.delete(child));
  const waitForLog = (match: (l: Record<string, unknown>) => boolean, timeoutMs = 60000, onlyNew = false): Promise<Record<string, unknown>> => {
    const seen = onlyNew ? undefined : logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr: ${stderr}`)), timeoutMs);
      waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
      void exited.then(([code]) => { clearTimeout(timer); reject(new Error(`server exited with ${code}; stderr: ${stderr}`)); });
    });
  };
  let dnsPort: number;
  let adminPort: number | null = null;
  try {
    // A safety net, not a budget: a loaded machine may take a while, a broken start never ends.
    const listening = await waitForLog((l) => l.msg === 'DNS listening (UDP and TCP)', START_TIMEOUT_MS);
    dnsPort = Number(String((listening.listen as string[])[0]).split(':').pop());
    if (options.admin !== false) {
      const admin = await waitForLog((l) => l.msg === 'admin HTTP listening', START_TIMEOUT_MS);
      adminPort = Number(String(admin.admin).split(':').pop());
    }
  } catch (err) {
    // No test holds this server: it must not outlive the failure.
    if (child.exitCode === null) child.kill('SIGKILL');
    throw err;
  }
  return {
    process: child,
    dnsPort,
    adminPort,
    logs,
    waitForLog,
    waitForNextLog: (match, timeoutMs) => waitForLog(match, timeoutMs, true),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      let code = child.exitCode;
      if (code === null) {
        child.kill(signal);
        [code] = (await exited) as [number | null];
      }
      // About to fail: the servers a caller would stop after this one must not be left running.
      if (linesWithRepeatedKeys.length > 0) await stopEveryServer();
      assertNoRepeatedKeys();
      return code;
    },
  };
}

/** Throws when any log line seen so far repeats a key (a log pipeline would keep only the last). */
export function assertNoRepeatedKeys(): void {
  if (linesWithRepeatedKeys.length === 0) return;
  const lines = linesWithRepeatedKeys.splice(0);
  throw new Error(`${lines.length} log line(s) repeat a key, e.g. ${duplicateKeys(lines[0]).join(', ')} in ${lines[0]}`);
}

/** Runs the CLI to completion (validate, explain …) and returns its output. */
export async function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env: testEnvironment(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += String(d); });
  child.stderr.on('data', (d) => { stderr += String(d); });
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}
