// CPU per query: each server in turn under the side-by-side benchmark's
// dnsperf load, its process's user and system CPU time (all threads, from
// /proc/<pid>/stat) divided by the queries it answered. Explains a ratio in
// the table: on two shared cores, a server's rate is set by how much CPU each
// query costs it and the load generator together.
//
//   node test/bench/peers/cpu-per-query.ts
//
// Environment: CPU_SERVERS (popsteer,gdnsd), CPU_ROUNDS (3), CPU_SECONDS (8),
// CPU_SET (ecs, no-ecs or mixed; ecs), and the BENCH_* dnsperf settings of
// run-peers.ts. Not part of `make bench`: run it after (it uses the peers
// `make bench` installs).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchLoad, envNumber, runDnsperf } from './dnsperf.ts';
import { writeQuerySets } from './queries.ts';
import { loadScenario } from './scenario.ts';
import { ALL_SERVERS, cpuSeconds, startBenchServer } from './servers.ts';

const env = process.env;
const SERVERS = (env.CPU_SERVERS ?? 'popsteer,gdnsd').split(',').map((name) => {
  const found = ALL_SERVERS.find((s) => s.name === name.trim());
  if (!found) throw new Error(`unknown server "${name}" in CPU_SERVERS (know ${ALL_SERVERS.map((s) => s.name).join(', ')})`);
  return found;
});
const ROUNDS = envNumber(env, 'CPU_ROUNDS', 3);
const SECONDS = envNumber(env, 'CPU_SECONDS', 8);
const SET = env.CPU_SET ?? 'ecs';
if (!['ecs', 'no-ecs', 'mixed'].includes(SET)) throw new Error(`CPU_SET must be ecs, no-ecs or mixed, not "${SET}"`);
async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'popsteer-cpu-'));
  try {
    const scenario = loadScenario();
    const sets = writeQuerySets(scenario, work, 3500);
    const dataFile = SET === 'ecs' ? sets.ecs : SET === 'no-ecs' ? sets.noEcs : sets.mixed;
    const load = benchLoad(env);
    process.stdout.write(`CPU per query, ${new Date().toISOString()}: set ${SET}, ${SECONDS} s per run, dnsperf -c ${load.clients} -T ${load.threads} -q ${load.outstanding}\n`);
    process.stdout.write('| round | server | queries/s | user µs/query | system µs/query |\n|---|---|---|---|---|\n');
    for (let round = 1; round <= ROUNDS; round++) {
      for (const definition of SERVERS) {
        const server = await startBenchServer(definition, scenario, mkdtempSync(join(work, `${definition.name}-`)));
        try {
          const before = cpuSeconds(server.pid);
          const result = await runDnsperf({ port: server.port, dataFile, seconds: SECONDS, load });
          const after = cpuSeconds(server.pid);
          const perQuery = (seconds: number): string => (seconds * 1e6 / result.completed).toFixed(2);
          process.stdout.write(`| ${round} | ${definition.name} | ${Math.round(result.qps)} | ${perQuery(after.user - before.user)} | ${perQuery(after.system - before.system)} |\n`);
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  process.stderr.write(`cpu-per-query: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
