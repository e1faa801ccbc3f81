// Query files for dnsperf's binary input (-B: each wire-format query after its
// 2-byte length), and a run that sends a file exactly once (-n 1), for tests
// that need every query of a set to reach the server, not a timed load.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';

export function writeWireQueries(path: string, packets: Buffer[]): void {
  const framed = Buffer.allocUnsafe(packets.reduce((total, p) => total + 2 + p.length, 0));
  let at = 0;
  for (const packet of packets) {
    at = framed.writeUInt16BE(packet.length, at);
    at += packet.copy(framed, at);
  }
  writeFileSync(path, framed);
}

export interface OnceResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  rcodes: Record<string, number>;
}

/** Sends every query of `dataFile` once to 127.0.0.1:`port` and reads dnsperf's summary. */
export async function dnsperfOnce(port: number, dataFile: string, outstanding = 100): Promise<OnceResult> {
  const args = ['-B', '-d', dataFile, '-s', '127.0.0.1', '-p', String(port), '-n', '1', '-c', '2', '-q', String(outstanding), '-t', '3',
    '-O', 'suppress=timeouts,congestion,sendfailed,sockready,unexpected'];
  const child = spawn('dnsperf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += String(d); });
  child.stderr.on('data', (d) => { out += String(d); });
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`dnsperf ${args.join(' ')} exited with ${code}:\n${out}`);
  const field = (pattern: RegExp): number => {
    const match = pattern.exec(out);
    if (!match) throw new Error(`dnsperf output lacks ${pattern}:\n${out}`);
    return Number(match[1]);
  };
  const rcodes: Record<string, number> = {};
  for (const match of (/Response codes:\s+(.*)/.exec(out)?.[1] ?? '').matchAll(/([A-Z]+) (\d+)/g)) rcodes[match[1]] = Number(match[2]);
  return {
    sent: field(/Queries sent:\s+(\d+)/),
    completed: field(/Queries completed:\s+(\d+)/),
    lost: field(/Queries lost:\s+(\d+)/),
    qps: field(/Queries per second:\s+([\d.]+)/),
    rcodes,
  };
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS). */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}
