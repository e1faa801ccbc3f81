// Runs dnsperf against one server and reads its summary. With `verbose`,
// dnsperf prints one line per response with its latency ("> NOERROR binary
// input 0.000082"); those give the percentiles its summary lacks.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export interface LoadSettings {
  /** Sockets (dnsperf -c). */
  clients: number;
  /** Send/receive thread pairs (dnsperf -T). */
  threads: number;
  /** Queries in flight (dnsperf -q). */
  outstanding: number;
  /** Seconds before an unanswered query counts as lost (dnsperf -t). */
  timeoutSeconds: number;
}

/**
 * The dnsperf settings every server gets: BENCH_CLIENTS (-c, 4),
 * BENCH_THREADS (-T, 2), BENCH_OUTSTANDING (-q, 100). Chosen with
 * BENCH_CALIBRATE=1 (see test/bench/README.md): one send/receive pair capped
 * the fastest peer (gdnsd) near 160k q/s, two pairs let it go past 200k; more
 * than 100 queries in flight only overflowed socket buffers (lost queries)
 * without raising any server's rate.
 */
export function benchLoad(env: NodeJS.ProcessEnv): LoadSettings {
  return {
    clients: envNumber(env, 'BENCH_CLIENTS', 4),
    threads: envNumber(env, 'BENCH_THREADS', 2),
    outstanding: envNumber(env, 'BENCH_OUTSTANDING', 100),
    timeoutSeconds: 2,
  };
}

/** A positive number from the environment, or the fallback when unset. */
export function envNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not "${value}"`);
  return n;
}

/**
 * Seconds of unmeasured load each server gets after it starts, before the
 * measured runs (BENCH_WARMUP_SECONDS, 2; 0 for none). A server that runs for
 * days serves warm: for popsteer the first seconds of load are when V8
 * compiles the answer path on its background threads (measured at 0.5–0.8 µs
 * of CPU per query over a 6 s run started cold, nothing once warm), and the
 * per-worker class memos fill; C servers have nothing to warm. Every server
 * gets the same warm-up.
 */
export function warmupSeconds(env: NodeJS.ProcessEnv): number {
  return env.BENCH_WARMUP_SECONDS === '0' ? 0 : envNumber(env, 'BENCH_WARMUP_SECONDS', 2);
}

/** Unmeasured load on a freshly started server (see warmupSeconds). */
export async function warmUp(port: number, dataFile: string, load: LoadSettings, seconds: number): Promise<void> {
  if (seconds > 0) await runDnsperf({ port, dataFile, seconds, load });
}

export interface DnsperfRun {
  port: number;
  dataFile: string;
  seconds: number;
  load: LoadSettings;
  /** Offered rate cap (dnsperf -Q); none means as fast as the server answers. */
  maxQps?: number;
  verbose?: boolean;
}

export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  rcodes: Record<string, number>;
  /** From the per-response lines, when verbose. */
  p50Ms: number | null;
  p99Ms: number | null;
  commandLine: string;
}

const number = (text: string, pattern: RegExp): number => {
  const match = pattern.exec(text);
  if (!match) throw new Error(`dnsperf output lacks ${pattern}:\n${text}`);
  return Number(match[1]);
};

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)];
}

export function dnsperfArgs(run: DnsperfRun): string[] {
  const args = ['-B', '-d', run.dataFile, '-s', '127.0.0.1', '-p', String(run.port), '-l', String(run.seconds),
    '-c', String(run.load.clients), '-T', String(run.load.threads), '-q', String(run.load.outstanding),
    '-t', String(run.load.timeoutSeconds), '-O', 'suppress=timeouts,congestion,sendfailed,sockready,unexpected'];
  if (run.maxQps) args.push('-Q', String(Math.max(1, Math.round(run.maxQps))));
  if (run.verbose) args.push('-v');
  return args;
}

export async function runDnsperf(run: DnsperfRun): Promise<DnsperfResult> {
  const args = dnsperfArgs(run);
  const child = spawn('dnsperf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let summary = '';
  let stderr = '';
  let latencies = new Float64Array(1 << 16);
  let latencyCount = 0;
  child.stderr.on('data', (d) => { stderr = (stderr + String(d)).slice(-4000); });
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('> ')) {
      if (!run.verbose) return;
      const seconds = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (!Number.isFinite(seconds)) return; // "> T …" timeouts carry no latency
      if (latencyCount === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[latencyCount++] = seconds * 1000;
      return;
    }
    summary += `${line}\n`;
  });
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`dnsperf ${args.join(' ')} exited with ${code}: ${stderr}${summary}`);
  const rcodes: Record<string, number> = {};
  const rcodeLine = /Response codes:\s+(.*)/.exec(summary)?.[1] ?? '';
  for (const match of rcodeLine.matchAll(/([A-Z]+) (\d+)/g)) rcodes[match[1]] = Number(match[2]);
  const sorted = latencies.subarray(0, latencyCount).sort();
  return {
    sent: number(summary, /Queries sent:\s+(\d+)/),
    completed: number(summary, /Queries completed:\s+(\d+)/),
    lost: number(summary, /Queries lost:\s+(\d+)/),
    qps: number(summary, /Queries per second:\s+([\d.]+)/),
    avgLatencyMs: number(summary, /Average Latency \(s\):\s+([\d.]+)/) * 1000,
    maxLatencyMs: number(summary, /Average Latency \(s\):.*max ([\d.]+)/) * 1000,
    rcodes,
    p50Ms: run.verbose ? percentile(sorted, 0.5) : null,
    p99Ms: run.verbose ? percentile(sorted, 0.99) : null,
    commandLine: `dnsperf ${args.join(' ')}`,
  };
}
