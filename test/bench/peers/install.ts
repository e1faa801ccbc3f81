// Installs the load generator and the peer servers from Debian, only when
// missing (dpkg -s), so `make bench` works from a fresh clone and costs
// nothing the second time.

import { spawnSync } from 'node:child_process';

export const BENCH_DEBS = ['dnsperf', 'gdnsd', 'knot', 'pdns-server', 'pdns-backend-bind', 'pdns-backend-geoip', 'bind9-dnsutils'];

export function missingPackages(packages: string[] = BENCH_DEBS): string[] {
  return packages.filter((pkg) => spawnSync('dpkg', ['-s', pkg], { stdio: 'ignore' }).status !== 0);
}

export function ensurePackages(packages: string[] = BENCH_DEBS): void {
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  process.stdout.write(`installing from Debian: ${missing.join(' ')}\n`);
  const asRoot = process.getuid?.() === 0;
  const run = (args: string[]): void => {
    const command = asRoot ? args[0] : 'sudo';
    const argv = asRoot ? args.slice(1) : args;
    const result = spawnSync(command, argv, {
      stdio: ['ignore', 'ignore', 'inherit'],
      // Package scripts must not try to ask questions or start services interactively.
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (result.status !== 0) throw new Error(`${args.join(' ')} failed with status ${result.status}`);
  };
  // Wait for another apt run to release its lock rather than fail at once.
  const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
  run(['apt-get', ...lockWait, 'update', '-qq']);
  run(['apt-get', ...lockWait, 'install', '-y', '-qq', '--no-install-recommends', ...missing]);
  const still = missingPackages(packages);
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(' ')}`);
}
