// `make bench`: every micro-benchmark under test/bench/*.bench.ts (whichever
// exist), one after the other so they do not share the cores, then the
// side-by-side comparison with gdnsd, Knot and PowerDNS (peers/run-peers.ts),
// then CPU per query of popsteer and gdnsd at a fixed paced load
// (peers/cpu-per-query.ts, CPU_QPS 40000 unless set): the figure that still
// compares the servers when the machine is shared and q/s is not.
//
// BENCH_SKIP_MICRO=1, BENCH_SKIP_PEERS=1 or BENCH_SKIP_CPU=1 leave one part
// out; every other BENCH_* and CPU_* variable is passed on (see
// peers/run-peers.ts, peers/cpu-per-query.ts).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));

async function runNode(script: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const child = spawn(process.execPath, [script], { stdio: 'inherit', env });
  const [code, signal] = await once(child, 'exit');
  return signal ? 128 : (code as number);
}

async function main(): Promise<number> {
  const failures: string[] = [];
  if (process.env.BENCH_SKIP_MICRO !== '1') {
    const micro = readdirSync(BENCH_DIR).filter((f) => f.endsWith('.bench.ts')).sort();
    if (micro.length === 0) process.stdout.write('no micro-benchmarks (test/bench/*.bench.ts) yet\n');
    for (const file of micro) {
      process.stdout.write(`\n=== ${file} ===\n`);
      const code = await runNode(`${BENCH_DIR}${file}`);
      if (code !== 0) failures.push(`${file} (exit ${code})`);
    }
  }
  if (process.env.BENCH_SKIP_PEERS !== '1') {
    process.stdout.write('\n=== side by side: popsteer, gdnsd, Knot, PowerDNS ===\n');
    const code = await runNode(`${BENCH_DIR}peers/run-peers.ts`);
    if (code !== 0) failures.push(`peers/run-peers.ts (exit ${code})`);
  }
  if (process.env.BENCH_SKIP_CPU !== '1') {
    process.stdout.write('\n=== CPU per query at a paced load: popsteer, gdnsd ===\n');
    const code = await runNode(`${BENCH_DIR}peers/cpu-per-query.ts`, { ...process.env, CPU_QPS: process.env.CPU_QPS ?? '40000' });
    if (code !== 0) failures.push(`peers/cpu-per-query.ts (exit ${code})`);
  }
  if (failures.length > 0) {
    process.stderr.write(`bench: failed: ${failures.join(', ')}\n`);
    return 1;
  }
  return 0;
}

main().then((code) => { process.exitCode = code; }, (err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
