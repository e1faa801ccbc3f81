// Command-line options of `popsteer anycast`, parsed and checked up front so a
// mistake stops the command before it touches any route.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseListen } from '../config/settings.ts';
import type { AdminTls, Endpoint } from './fitness-probe.ts';

type AnycastMode = 'exabgp' | 'bird';

export interface AnycastOptions {
  mode: AnycastMode;
  admin: Endpoint;
  /** Set when the admin API serves HTTPS (--admin-ca). */
  adminTls: AdminTls | null;
  dns: Endpoint;
  prefixes: string[];
  nextHop: string;
  intervalMs: number;
  timeoutMs: number;
  holdDownMs: number;
  reassertMs: number;
  birdProtocol: string;
  birdc: string;
  birdSocket: string | null;
  pop: string;
  logLevel: string;
}

export const ANYCAST_HELP = `Usage: popsteer anycast --admin host:port --dns host:port --prefix CIDR [options]

Announces this instance's anycast service prefixes while it is fit to serve
and withdraws them when it is not. Fit means the admin API's /v1/fitness says
fit (configuration loaded, local PoP not drained or down, not shutting down)
AND a CHAOS TXT id.server query to --dns is answered within --timeout-ms.
After a withdraw, the route comes back only once the instance has stayed fit
for --hold-down-ms, so a flapping instance does not flap routes.
SIGTERM (or SIGINT) withdraws, then exits. Logs are JSON lines on stderr.

Options:
  --admin host:port       popsteer admin API to ask (required)
  --admin-ca FILE         the admin API serves HTTPS (popsteer serve
                          --admin-tls-cert): its certificate, or the CA that
                          signed it, to verify it with
  --admin-tls-name NAME   the name that certificate is for (default: the
                          --admin host when it is a name, else localhost)
  --dns host:port         popsteer DNS listener for the self-query (required)
  --prefix CIDR           service prefix, repeatable (required in exabgp mode;
                          in bird mode the static protocol holds the routes)
  --next-hop self|IP      next hop for ExaBGP announcements (default self)
  --mode exabgp|bird      exabgp: run as an ExaBGP process, API commands on
                          stdout; exits when ExaBGP closes stdin.
                          bird: enable/disable a BIRD 2 static protocol
                          through birdc (default exabgp)
  --interval-ms N         time between checks (default 500)
  --timeout-ms N          each check must answer within this (default 1000)
  --hold-down-ms N        no re-announce until fit this long after a
                          withdraw (default 10000)
  --reassert-ms N         restate the current decision this often, 0 never
                          (default 5000 in bird mode: "birdc configure"
                          re-disables a static protocol marked disabled; 0 in
                          exabgp mode: ExaBGP keeps what it was told)
  --bird-protocol NAME    static protocol to toggle (default popsteer_anycast)
  --birdc PATH            birdc binary (default birdc)
  --bird-socket PATH      BIRD control socket (default: birdc's own default)
  --pop ID                PoP id carried in the logs (default: host name)
  --log-level LEVEL       trace, debug, info, warn, error (default info)

Exit status: 0 stopped (routes withdrawn first), 1 stopped by a second
signal before the withdraw finished, 2 bad usage.`;

export class AnycastUsageError extends Error {}

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new AnycastUsageError(`--${flag}: must be a whole number ≥ ${min}, not "${text}"`);
  return value;
}

function endpoint(flag: string, text: string | undefined): Endpoint {
  if (text === undefined) throw new AnycastUsageError(`--${flag} host:port is required`);
  try {
    return parseListen(text, `--${flag}`);
  } catch (err) {
    throw new AnycastUsageError(`--${flag}: ${(err as Error).message}`);
  }
}

/** "192.0.2.53/32" or "2001:db8::53/128"; the length must fit the family. */
function checkPrefix(text: string): string {
  const slash = text.indexOf('/');
  const family = isIP(slash < 0 ? '' : text.slice(0, slash));
  const length = Number(text.slice(slash + 1));
  const maxLength = family === 4 ? 32 : 128;
  if (family === 0 || !/^\d{1,3}$/.test(text.slice(slash + 1)) || length > maxLength) {
    throw new AnycastUsageError(`--prefix: "${text}" is not an address/length prefix (e.g. 192.0.2.53/32)`);
  }
  return text;
}

function adminTlsOf(caFile: string | undefined, name: string | undefined, host: string): AdminTls | null {
  if (caFile === undefined) {
    if (name !== undefined) throw new AnycastUsageError('--admin-tls-name needs --admin-ca');
    return null;
  }
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (err) {
    throw new AnycastUsageError(`--admin-ca: cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { ca, servername: name ?? (isIP(host) === 0 ? host : 'localhost') };
}

export function parseAnycastOptions(args: string[]): AnycastOptions {
  let values: Record<string, string | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        admin: { type: 'string' }, dns: { type: 'string' }, prefix: { type: 'string', multiple: true },
        'next-hop': { type: 'string' }, mode: { type: 'string' }, 'interval-ms': { type: 'string' },
        'timeout-ms': { type: 'string' }, 'hold-down-ms': { type: 'string' }, 'reassert-ms': { type: 'string' }, 'bird-protocol': { type: 'string' },
        birdc: { type: 'string' }, 'bird-socket': { type: 'string' }, pop: { type: 'string' }, 'log-level': { type: 'string' },
        'admin-ca': { type: 'string' }, 'admin-tls-name': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new AnycastUsageError((err as Error).message);
  }
  const text = (name: string): string | undefined => values[name] as string | undefined;
  const mode = text('mode') ?? 'exabgp';
  if (mode !== 'exabgp' && mode !== 'bird') throw new AnycastUsageError(`--mode: "${mode}" is not exabgp or bird`);
  const prefixes = ((values.prefix as string[] | undefined) ?? []).map(checkPrefix);
  if (mode === 'exabgp' && prefixes.length === 0) throw new AnycastUsageError('--prefix is required in exabgp mode');
  const nextHop = text('next-hop') ?? 'self';
  if (nextHop !== 'self' && isIP(nextHop) === 0) throw new AnycastUsageError(`--next-hop: "${nextHop}" is not "self" or an IP address`);
  const birdProtocol = text('bird-protocol') ?? 'popsteer_anycast';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(birdProtocol)) throw new AnycastUsageError(`--bird-protocol: "${birdProtocol}" is not a BIRD protocol name`);
  const admin = endpoint('admin', text('admin'));
  return {
    mode,
    admin,
    adminTls: adminTlsOf(text('admin-ca'), text('admin-tls-name'), admin.host),
    dns: endpoint('dns', text('dns')),
    prefixes,
    nextHop,
    intervalMs: wholeNumber('interval-ms', text('interval-ms'), 500, 10),
    timeoutMs: wholeNumber('timeout-ms', text('timeout-ms'), 1000, 10),
    holdDownMs: wholeNumber('hold-down-ms', text('hold-down-ms'), 10_000, 0),
    reassertMs: wholeNumber('reassert-ms', text('reassert-ms'), mode === 'bird' ? 5000 : 0, 0),
    birdProtocol,
    birdc: text('birdc') ?? 'birdc',
    birdSocket: text('bird-socket') ?? null,
    pop: text('pop') ?? (hostname().split('.')[0] || 'popsteer'),
    logLevel: text('log-level') ?? 'info',
  };
}
