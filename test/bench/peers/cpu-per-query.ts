// CPU per query: each server in turn under the side-by-side benchmark's
// dnsperf load, its process's user and system CPU time (all threads, from
// /proc/<pid>/stat) divided by the queries it answered. Explains a ratio in
// the table: on two shared cores, a server's rate is set by how much CPU each
// query costs it and the load generator together.
//
//   node test/bench/peers/cpu-per-query.ts
//   CPU_QPS=40000 node test/bench/peers/cpu-per-query.ts    # paced: dnsperf -Q 40000
//
// Paced (CPU_QPS), every server is offered the same fixed rate, so each does
// the same work and the CPU per query compares what the work costs, not how
// fast each server drains a flood; on a loaded machine that is the figure
// that still means something (q/s does not). With `perf` at hand each run
// also counts the server's system calls and context switches per query
// (perf stat -e raw_syscalls:sys_enter,context-switches -p <pid>).
//
// Environment: CPU_SERVERS (popsteer,gdnsd), CPU_ROUNDS (3), CPU_SECONDS (8),
// CPU_SET (ecs, no-ecs or mixed; ecs), CPU_QPS (unset: as fast as each server
// answers), CPU_PERF (1 when perf counts, 0 to skip), CPU_THREADS (1: a line
// per run with the CPU per query of each thread name), and the BENCH_* dnsperf
// settings of run-peers.ts (BENCH_WARMUP_SECONDS: unmeasured load first). `make bench` runs it paced (run-all.ts).

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchLoad, envNumber, runDnsperf, warmUp, warmupSeconds } from './dnsperf.ts';
import { writeQuerySets } from './queries.ts';
import { loadScenario } from './scenario.ts';
import { ALL_SERVERS, cpuSeconds, cpuSecondsByThread, startBenchServer } from './servers.ts';

const env = process.env;
const SERVERS = (env.CPU_SERVERS ?? 'popsteer,gdnsd').split(',').map((name) => {
  const found = ALL_SERVERS.find((s) => s.name === name.trim());
  if (!found) throw new Error(`unknown server "${name}" in CPU_SERVERS (know ${ALL_SERVERS.map((s) => s.name).join(', ')})`);
  return found;
});
const ROUNDS = envNumber(env, 'CPU_ROUNDS', 3);
const SECONDS = envNumber(env, 'CPU_SECONDS', 8);
const SET = env.CPU_SET ?? 'ecs';
const QPS = env.CPU_QPS ? envNumber(env, 'CPU_QPS', 0) : undefined;
if (!['ecs', 'no-ecs', 'mixed'].includes(SET)) throw new Error(`CPU_SET must be ecs, no-ecs or mixed, not "${SET}"`);

const THREADS = env.CPU_THREADS === '1';

/** One line of user/system µs per query for each thread name that used any CPU (CPU_THREADS=1). */
function threadBreakdown(before: ReturnType<typeof cpuSecondsByThread>, after: ReturnType<typeof cpuSecondsByThread>, completed: number): string {
  const parts: string[] = [];
  for (const [name, now] of after) {
    const then = before.get(name) ?? { user: 0, system: 0, threads: 0 };
    const user = (now.user - then.user) * 1e6 / completed;
    const system = (now.system - then.system) * 1e6 / completed;
    if (user + system >= 0.01) parts.push(`${name} ×${now.threads} ${user.toFixed(2)} + ${system.toFixed(2)}`);
  }
  return `|   | by thread (user + system µs/query) | ${parts.join('; ')} |\n`;
}

const PERF_EVENTS = 'raw_syscalls:sys_enter,context-switches';

/** Whether perf can count system calls here (tracepoints readable, perf installed). */
function perfWorks(): boolean {
  if (env.CPU_PERF === '0') return false;
  const probe = spawnSync('perf', ['stat', '-x', ',', '-e', PERF_EVENTS, 'true'], { encoding: 'utf8' });
  return probe.status === 0 && /raw_syscalls/.test(probe.stderr) && !/not supported|<not counted>/.test(probe.stderr);
}

interface PerfCounts { syscalls: number; switches: number }

/** Counts a process's system calls and context switches until stop() (SIGINT makes perf print). */
function countEvents(pid: number): { stop(): Promise<PerfCounts> } {
  const child = spawn('perf', ['stat', '-x', ',', '-e', PERF_EVENTS, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  child.stderr.on('data', (d) => { text += String(d); });
  const closed = once(child, 'close');
  return {
    async stop() {
      child.kill('SIGINT');
      await closed;
      const value = (event: string): number => Number(new RegExp(`^(\\d+),[^,]*,${event}`, 'm').exec(text)?.[1] ?? NaN);
      return { syscalls: value('raw_syscalls:sys_enter'), switches: value('context-switches') };
    },
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'popsteer-cpu-'));
  try {
    const scenario = loadScenario();
    const sets = writeQuerySets(scenario, work, 3500);
    const dataFile = SET === 'ecs' ? sets.ecs : SET === 'no-ecs' ? sets.noEcs : sets.mixed;
    const load = benchLoad(env);
    const perf = perfWorks();
    const pace = QPS ? `paced at ${QPS} q/s (dnsperf -Q ${QPS})` : 'unpaced';
    process.stdout.write(`CPU per query, ${new Date().toISOString()}, load average ${loadavg()[0].toFixed(1)}: set ${SET}, ${pace}, ${SECONDS} s per run after ${warmupSeconds(env)} s unmeasured, dnsperf -c ${load.clients} -T ${load.threads} -q ${load.outstanding}\n`);
    process.stdout.write(`| round | server | queries/s | user µs/query | system µs/query | total µs/query |${perf ? ' syscalls/query | context switches/query |' : ''}\n`);
    process.stdout.write(`|---|---|---|---|---|---|${perf ? '---|---|' : ''}\n`);
    const totals = new Map<string, number[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const definition of SERVERS) {
        const server = await startBenchServer(definition, scenario, mkdtempSync(join(work, `${definition.name}-`)));
        try {
          await warmUp(server.port, dataFile, load, warmupSeconds(env));
          const counting = perf ? countEvents(server.pid) : null;
          const before = cpuSeconds(server.pid);
          const threadsBefore = cpuSecondsByThread(server.pid);
          const result = await runDnsperf({ port: server.port, dataFile, seconds: SECONDS, load, maxQps: QPS });
          const after = cpuSeconds(server.pid);
          const threadsAfter = cpuSecondsByThread(server.pid);
          const counts = await counting?.stop();
          const perQuery = (seconds: number): string => (seconds * 1e6 / result.completed).toFixed(2);
          const total = (after.user - before.user + after.system - before.system) * 1e6 / result.completed;
          totals.set(definition.name, [...(totals.get(definition.name) ?? []), total]);
          const events = counts ? ` ${(counts.syscalls / result.completed).toFixed(2)} | ${(counts.switches / result.completed).toFixed(3)} |` : '';
          process.stdout.write(`| ${round} | ${definition.name} | ${Math.round(result.qps)} | ${perQuery(after.user - before.user)} | ${perQuery(after.system - before.system)} | ${total.toFixed(2)} |${events}\n`);
          if (THREADS) process.stdout.write(threadBreakdown(threadsBefore, threadsAfter, result.completed));
        } finally {
          await server.stop();
        }
      }
    }
    writeRatios(totals);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The first server's total CPU per query over each other's, round by round (≤ 1.00: it costs no more). */
function writeRatios(totals: Map<string, number[]>): void {
  const [first, ...others] = SERVERS.map((s) => s.name);
  for (const other of others) {
    const mine = totals.get(first) ?? [];
    const theirs = totals.get(other) ?? [];
    const ratios = mine.map((m, i) => (m / theirs[i]).toFixed(2));
    process.stdout.write(`${first} ÷ ${other}, total CPU per query, round by round: ${ratios.join(', ')}\n`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`cpu-per-query: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
