// Starts the real popsteer server (the CLI, as users run it) on ephemeral
// loopback ports and waits for its "listening" log lines — an event, not a
// sleep. Shared by every integration test.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../server/cli/popsteer.ts', import.meta.url));

/** How long a start-up may take before it is taken to have failed (below the suite's 180 s test timeout). */
const START_NEVER_MS = 150_000;

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
  if (!(options.args ?? []).includes('--state-file')) {
    args.push('--state-file', join(mkdtempSync(join(tmpdir(), 'popsteer-state-')), 'state.json'));
  }
  args.push(...(options.args ?? []));
  const [command, commandArgs] = options.openFileLimit === undefined
    ? [process.execPath, args]
    : ['prlimit', [`--nofile=${options.openFileLimit}:${options.openFileLimit}`, '--', process.execPath, ...args]];
  const child = spawn(command, commandArgs, {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
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
    logs.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].match(line)) {
        waiters[i].resolve(line);
        waiters.splice(i, 1);
      }
    }
  });
  const exited = once(child, 'exit');
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
    // Only catches a server that never comes up: loading takes seconds alone, far longer when every core is busy.
    const listening = await waitForLog((l) => l.msg === 'DNS listening (UDP and TCP)', START_NEVER_MS);
    dnsPort = Number(String((listening.listen as string[])[0]).split(':').pop());
    if (options.admin !== false) {
      const admin = await waitForLog((l) => l.msg === 'admin HTTP listening', START_NEVER_MS);
      adminPort = Number(String(admin.admin).split(':').pop());
    }
  } catch (err) {
    // A server that did not start in time must not outlive the test (its pipes would keep the test process running).
    child.kill('SIGKILL');
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
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}

/** Runs the CLI to completion (validate, explain …) and returns its output. */
export async function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += String(d); });
  child.stderr.on('data', (d) => { stderr += String(d); });
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}
