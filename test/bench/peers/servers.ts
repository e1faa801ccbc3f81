// The servers under test. Each one writes its configuration (rendered from
// the shared scenario) into its own temporary directory, runs in the
// foreground on its own loopback port, and is stopped by the harness.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { defaultWorkers } from '../../../server/config/settings.ts';
import { encodeQuery } from './queries.ts';
import { REPO_ROOT, renderZoneFile, type Scenario } from './scenario.ts';
import { waitForFirstAnswer } from './udp-client.ts';

export interface ServerDefinition {
  name: string;
  /** What it is configured to do, for the table's legend. */
  describe: string;
  version(): string;
  /** Writes configuration into `dir`; returns the command that serves on `port`. */
  prepare(scenario: Scenario, dir: string, port: number): { command: string; args: string[] };
}

export interface RunningServer {
  definition: ServerDefinition;
  port: number;
  pid: number;
  /** Spawn → first answer, in milliseconds. */
  startupMs: number;
  stop(): Promise<void>;
}

const CORES = availableParallelism();
const STARTUP_DEADLINE_MS = 30_000;
const STOP_GRACE_MS = 5_000;

function debVersion(pkg: string): string {
  const result = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : 'not installed';
}

export const popsteer: ServerDefinition = {
  name: 'popsteer',
  describe: `popsteer (this tree; ${process.env.BENCH_POPSTEER_WORKERS ?? defaultWorkers(CORES)} DNS workers)`,
  version() {
    const pkg = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as { version: string };
    const commit = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    return `${pkg.version} @ ${commit || 'unknown'}, node ${process.version}`;
  },
  prepare(_scenario, _dir, port) {
    const args = [`${REPO_ROOT}server/cli/popsteer.ts`, 'serve', '--config', `${REPO_ROOT}policies`, '--geo-data', `${REPO_ROOT}geo-data`,
      '--listen', `127.0.0.1:${port}`, '--admin', 'off', '--log-level', 'warn', '--drain-ms', '0'];
    if (process.env.BENCH_POPSTEER_WORKERS) args.push('--workers', process.env.BENCH_POPSTEER_WORKERS);
    return { command: process.execPath, args };
  },
};

export const gdnsd: ServerDefinition = {
  name: 'gdnsd',
  describe: 'gdnsd, plugin_geoip city-auto-mode over the 16 PoPs (auto_dc_coords), ECS on',
  version: () => `${debVersion('gdnsd')}`,
  prepare(scenario, dir, port) {
    mkdirSync(`${dir}/zones`, { recursive: true });
    const pops = scenario.pops;
    const config = `options => {
  listen => [ 127.0.0.1:${port} ]
  run_dir => ${dir}/run
  state_dir => ${dir}/state
  edns_client_subnet => true
  udp_threads => ${CORES}
  tcp_threads => 1
}
plugins => {
  geoip => {
    maps => {
      pops => {
        geoip2_db => ${scenario.mmdb}
        datacenters => [ ${pops.map((p) => p.id).join(', ')} ]
        auto_dc_coords => {
${pops.map((p) => `          ${p.id} => [ ${p.lat}, ${p.lon} ]`).join('\n')}
        }
      }
    }
    resources => {
      ${scenario.steeredLabel} => {
        map => pops
        dcmap => {
${pops.map((p) => `          ${p.id} => ${p.ipv4}`).join('\n')}
        }
      }
    }
  }
}
`;
    writeFileSync(`${dir}/config`, config);
    writeFileSync(`${dir}/zones/${scenario.zone}`, renderZoneFile(scenario, `${scenario.steeredLabel} ${scenario.steeredTtl} DYNA geoip!${scenario.steeredLabel}`));
    return { command: 'gdnsd', args: ['-c', dir, 'start'] };
  },
};

export const knot: ServerDefinition = {
  name: 'knot',
  describe: 'Knot DNS, one static www A record (no steering), ECS ignored',
  version: () => debVersion('knot'),
  prepare(scenario, dir, port) {
    const config = `server:
    listen: 127.0.0.1@${port}
    rundir: ${dir}
    udp-workers: ${CORES}
    tcp-workers: 1
    background-workers: 1
database:
    storage: ${dir}
log:
  - target: stderr
    any: warning
zone:
  - domain: ${scenario.zone}
    storage: ${dir}
    file: ${scenario.zone}.zone
    journal-content: none
    zonefile-load: whole
`;
    writeFileSync(`${dir}/knot.conf`, config);
    writeFileSync(`${dir}/${scenario.zone}.zone`, renderZoneFile(scenario, `${scenario.steeredLabel} ${scenario.steeredTtl} IN A ${scenario.staticAnswer}`));
    return { command: 'knotd', args: ['-c', `${dir}/knot.conf`, '-s', `${dir}/knot.sock`] };
  },
};

/**
 * PowerDNS's pickclosest() geolocates the candidate addresses themselves,
 * which cannot work for documentation addresses; so the record does what it
 * does by hand: the client's (or ECS) location from latlon(), then the PoP
 * with the smallest great-circle distance, over the same coordinates.
 */
function nearestPopLua(scenario: Scenario): string {
  const table = scenario.pops.map((p) => `{${p.lat},${p.lon},'${p.ipv4}'}`).join(',');
  return [
    `;local P={${table}}`,
    `local la,lo=string.match(latlon(),'(%S+)%s+(%S+)')`,
    `la=math.rad(tonumber(la) or 0) lo=math.rad(tonumber(lo) or 0)`,
    `local best,bd=P[1][3],10`,
    `for _,p in ipairs(P) do`,
    `local a=math.rad(p[1]) local h=math.sin((a-la)/2)^2+math.cos(la)*math.cos(a)*math.sin((math.rad(p[2])-lo)/2)^2`,
    `if h<bd then bd=h best=p[3] end end`,
    `return best`,
  ].join(' ');
}

export const powerdns: ServerDefinition = {
  name: 'powerdns',
  describe: 'PowerDNS Authoritative, bind backend + LUA record choosing the nearest PoP (geoip backend for latlon()), ECS on',
  version: () => debVersion('pdns-server'),
  prepare(scenario, dir, port) {
    const zoneFile = `${dir}/${scenario.zone}.zone`;
    writeFileSync(zoneFile, renderZoneFile(scenario, `${scenario.steeredLabel} ${scenario.steeredTtl} IN LUA A "${nearestPopLua(scenario)}"`));
    writeFileSync(`${dir}/named.conf`, `zone "${scenario.zone}" { type master; file "${zoneFile}"; };\n`);
    writeFileSync(`${dir}/geo-zones.yaml`, 'domains: []\n');
    const config = [
      'launch=bind,geoip',
      `bind-config=${dir}/named.conf`,
      `geoip-database-files=mmdb:${scenario.mmdb}`,
      `geoip-zones-file=${dir}/geo-zones.yaml`,
      'enable-lua-records=yes',
      'edns-subnet-processing=yes',
      `local-address=127.0.0.1:${port}`,
      `socket-dir=${dir}`,
      `receiver-threads=${CORES}`,
      'reuseport=yes',
      'guardian=no',
      'daemon=no',
      'disable-syslog=yes',
      'loglevel=3',
      'webserver=no',
      'api=no',
    ];
    writeFileSync(`${dir}/pdns.conf`, `${config.join('\n')}\n`);
    return { command: 'pdns_server', args: [`--config-dir=${dir}`] };
  },
};

export const ALL_SERVERS = [popsteer, gdnsd, knot, powerdns];

/** A loopback port free for UDP at the time of asking. */
export async function freePort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

export async function startBenchServer(definition: ServerDefinition, scenario: Scenario, dir: string): Promise<RunningServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const { command, args } = definition.prepare(scenario, dir, port);
  const probe = encodeQuery(`${scenario.steeredLabel}.${scenario.zone}`, null);
  let output = '';
  const spawnedAt = performance.now();
  const child: ChildProcess = spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (chunk: Buffer): void => { output = (output + String(chunk)).slice(-4000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = once(child, 'exit');
  const exitedEarly = exited.then(([code]) => { throw new Error(`${definition.name} exited with ${code} before answering:\n${output}`); });
  exitedEarly.catch(() => {}); // the race below reports it; a later exit is stop()'s business
  const answeredAt = await Promise.race([waitForFirstAnswer(port, probe, STARTUP_DEADLINE_MS), exitedEarly]);
  if (answeredAt === null) {
    child.kill('SIGKILL');
    throw new Error(`${definition.name} did not answer within ${STARTUP_DEADLINE_MS} ms:\n${output}`);
  }
  return {
    definition,
    port,
    pid: child.pid!,
    startupMs: answeredAt - spawnedAt,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** User and system CPU seconds of a process, all threads. */
export function cpuSeconds(pid: number): { user: number; system: number } {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND };
}

/**
 * User and system CPU seconds of each thread of a process, summed by thread
 * name ("WorkerThread", "V8Worker", "gdnsd-io-udp"…), from /proc/<pid>/task.
 * Shows where a process's CPU per query goes: the DNS workers, V8's
 * background threads (compiling, GC), the main thread.
 */
export function cpuSecondsByThread(pid: number): Map<string, { user: number; system: number; threads: number }> {
  const byName = new Map<string, { user: number; system: number; threads: number }>();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    } catch {
      continue; // the thread ended while we looked
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const entry = byName.get(name) ?? { user: 0, system: 0, threads: 0 };
    entry.user += Number(fields[11]) / TICKS_PER_SECOND;
    entry.system += Number(fields[12]) / TICKS_PER_SECOND;
    entry.threads++;
    byName.set(name, entry);
  }
  return byName;
}

/** Resident memory of a process and all its descendants, in KiB (VmRSS from /proc). */
export function residentKiB(rootPid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  let total = 0;
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) total += Number(match[1]);
    } catch {
      // gone
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}
