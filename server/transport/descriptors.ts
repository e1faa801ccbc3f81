// The process's open-file limit (RLIMIT_NOFILE) and what it leaves for
// connections. Every socket is a descriptor: if TCP clients or admin clients
// could take them all, health probes, the GeoIP reload and the DNS listeners
// themselves would fail with EMFILE somewhere far from the cause. So the
// connection caps are fitted under the limit once, at start-up, with a
// reserve kept for everything else, and connections are refused at the caps,
// before the limit. Node raises its soft limit to the hard one when it
// starts, so the soft limit read here is the one that applies.

import { readFileSync } from 'node:fs';

/** Connection caps of the whole server. */
export interface ConnectionCaps {
  /** DNS over TCP, every worker together. */
  tcp: number;
  /** The admin HTTP server. */
  admin: number;
}

/** The soft "Max open files" limit from /proc/self/limits text; null when unlimited or not readable. */
export function parseOpenFileLimit(limits: string): number | null {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined || !/^\d+$/.test(soft)) return null;
  return Number(soft);
}

/** This process's soft open-file limit; null when unlimited or unknown (not Linux). */
export function openFileLimit(): number | null {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

interface FittedCaps {
  caps: ConnectionCaps;
  /** Why the caps were lowered, or '' when the wanted caps fit. */
  lowered: string;
}

/**
 * Caps that fit under `limit` descriptors with `reserve` left over: the
 * admin cap is kept (it is small) and the TCP cap lowered to what remains.
 * Throws when not even one TCP connection fits.
 */
export function fitConnectionCaps(wanted: ConnectionCaps, limit: number | null, reserve: number): FittedCaps {
  if (limit === null || wanted.tcp + wanted.admin + reserve <= limit) return { caps: wanted, lowered: '' };
  const admin = Math.min(wanted.admin, Math.max(1, Math.floor((limit - reserve) / 8)));
  const tcp = limit - reserve - admin;
  if (tcp < 1) {
    throw new Error(`the open-file limit (RLIMIT_NOFILE) is ${limit}, which leaves no descriptors for connections after the ${reserve} kept for probes, files and listeners; raise it (ulimit -n, or LimitNOFILE= in the systemd unit) to at least ${wanted.tcp + wanted.admin + reserve}`);
  }
  return {
    caps: { tcp: Math.min(tcp, wanted.tcp), admin },
    lowered: `the open-file limit (RLIMIT_NOFILE) is ${limit}: ${wanted.tcp} TCP + ${wanted.admin} admin connections + ${reserve} kept for probes, files and listeners do not fit; raise the limit to ${wanted.tcp + wanted.admin + reserve} (LimitNOFILE=) or lower tcp_max_connections`,
  };
}
