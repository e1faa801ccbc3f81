// Composition root: settings → geo data → health → snapshot → DNS worker
// threads → admin → watchers. Nothing else lives here.

import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { createServer, isIPv6 } from 'node:net';
import { dirname, join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { ConfigError, ConfigErrors } from './config/errors.ts';
import type { Settings } from './config/settings.ts';
import { createCounterBuffer } from './engine/counters.ts';
import { createDecisionCounterBuffer } from './engine/decision-counters.ts';
import type { LoadedGeo } from './geo-context.ts';
import { Builder, type GeoChange } from './builds.ts';
import { checkExistingFile, ensurePrivateDirectory, UnsafePathError } from './fsutil/safe-files.ts';
import { rrlConfigOf } from './rrl/config.ts';
import { emptyProbesConfig, loadProbesConfig } from './health/config.ts';
import { HealthService } from './health/service.ts';
import { createHealthTable } from './health/table.ts';
import { createSignals, setDeclaredLoad, setNextPossibleChange } from './steering/signals.ts';
import type { Logger } from './log/logger.ts';
import { snapshotForWorkers, type LoadResult } from './policy/load.ts';
import { snapshotToPost } from './snapshot/policy-reuse.ts';
import type { DnsSnapshot } from './snapshot/types.ts';
import type { CompiledPolicy } from './steering/types.ts';
import type { DnsWorkerData, FromWorker, ToWorker } from './dns-worker.ts';
import { startAdmin, type AdminServer } from './admin/server.ts';
import { watchWorker } from './worker-watch.ts';
import { resolveUdpIo } from './transport/udp.ts';
import { nativeUdp } from './transport/udp-batch.ts';
import { addressInUse } from './transport/address-check.ts';
import { fitConnectionCaps, openFileLimit, type ConnectionCaps } from './transport/descriptors.ts';
import { ConnectionSlots, createSlotBuffer } from './transport/slots.ts';
import { DNSTAP_OFF, startDnstap, type DnstapStats } from './dnstap/index.ts';
import { Fleet } from './fleet/fleet.ts';
import { FleetLoad } from './fleet/load.ts';
import { readKeptRevision, Revisions, type KeptRevision, type RevisionReport } from './fleet/revisions.ts';
import { SignatureRefresh, signingClock } from './dnssec/refresh.ts';

interface ReloadOutcome {
  ok: boolean;
  errors: string[];
  hash: string;
  changed: boolean;
}

export interface RunningServer {
  settings: Settings;
  snapshot(): DnsSnapshot;
  /** Full compiled policies of the active set (explain, diff, status page). */
  policies(): CompiledPolicy[];
  geo(): LoadedGeo;
  health: HealthService;
  healthTable: SharedArrayBuffer;
  /** Per-PoP signals for the workers: next possible health change, declared load (steering/signals.ts). */
  signals: SharedArrayBuffer;
  /** Records a PoP's declared load (capacity steps); false for an unknown PoP. */
  setLoad(pop: string, load: number): boolean;
  dnsPorts: number[];
  adminPort: number | null;
  /** Connection caps in force, fitted under the open-file limit. */
  connectionCaps: ConnectionCaps;
  /** Open DNS-over-TCP connections of the whole server. */
  tcpConnections(): number;
  counters: SharedArrayBuffer;
  /** Steering decision counters of the active snapshot (engine/decision-counters.ts); replaced with it. */
  decisionCounters(): SharedArrayBuffer;
  /** Reload counts by outcome, for metrics. */
  reloads: { success: number; failure: number; lastError: string[] };
  /** dnstap frames queued and dropped, and whether the output is connected (all zero when dnstap is off). */
  dnstap(): DnstapStats;
  /** GeoIP database replacements by outcome, for metrics. */
  geoReloads: { success: number; rejected: number; lastError: string };
  /** Compiles the configuration again (or `configDir`, a fleet revision) on the build thread and swaps it in; resolves when it is serving (or rejected). */
  reload(reason: string, configDir?: string): Promise<ReloadOutcome>;
  /** Fit to receive anycast traffic? The reasons say why not. */
  fitness(): { fit: boolean; reasons: string[] };
  /** Extra fitness checks contributed by other modules. */
  fitnessChecks: Array<() => string | null>;
  shuttingDown(): boolean;
  shutdown(): Promise<void>;
  startedAt: number;
  /** The fleet link when --fleet is set (server/fleet); null for a single node. */
  fleet: Fleet | null;
  /** Declared load shared by the fleet (server/fleet/load.ts); null for a single node. */
  fleetLoad: FleetLoad | null;
  /** The policy revision served and the newest refused here (server/fleet/revisions.ts); null without --fleet. */
  fleetRevision(): RevisionReport | null;
  /** Seconds until the served DNSSEC signatures expire (negative once expired); null when no zone is signed. */
  dnssecExpirySeconds(): number | null;
}

const WORKER_YOUNG_GENERATION_MB = 6;

/** Sets a PoP's declared load for the capacity steps; false for a PoP not in the catalog. */
function setLoadSignal(ids: readonly string[], signalsView: Float64Array, pop: string, load: number): boolean {
  const i = ids.indexOf(pop);
  if (i < 0) return false;
  setDeclaredLoad(signalsView, i, load);
  return true;
}

/**
 * Descriptors kept free beyond the connection caps (added to the probes'
 * max_in_flight): listeners, worker threads' event loops, file watches, the
 * GeoIP reload, logs. An idle server with two workers holds about 40.
 */
const DESCRIPTOR_RESERVE = 256;

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** A full garbage collection, without needing node --expose-gc on the command line. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** A port free for both UDP and TCP on `host`, for `--listen host:0`. */
async function pickPort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const port = await new Promise<number>((resolveP, reject) => {
      udp.once('error', reject);
      udp.bind(0, host, () => resolveP(udp.address().port));
    });
    const free = await new Promise<boolean>((resolveP) => {
      const probe = createServer();
      probe.once('error', () => resolveP(false));
      probe.listen(port, host, () => probe.close(() => resolveP(true)));
    });
    await new Promise<void>((r) => udp.close(() => r()));
    if (free) return port;
  }
  throw new Error(`no free port on ${host}`);
}

const hostPort = (a: { host: string; port: number }): string => (isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

/**
 * Refuses (exit 2, naming the address) a DNS or admin address that another
 * process already serves, unless --share-listen asks to share the DNS
 * addresses on purpose (a handover: the new instance starts, the old one
 * drains). Returns the DNS addresses being shared.
 */
async function checkAddressesFree(settings: Settings): Promise<string[]> {
  const errors: ConfigError[] = [];
  const shared: string[] = [];
  for (const address of settings.listen) {
    if (address.port === 0) continue;
    const taken = await addressInUse(address.host, address.port);
    if (taken === null) continue;
    if (settings.shareListen) shared.push(hostPort(address));
    else {
      errors.push(new ConfigError('POPSTEER_ERR_ADDRESS_IN_USE', 'listen', null, '/listen',
        `${hostPort(address)} (${taken.toUpperCase()}) is already served by another process; stop it or choose another --listen address (--share-listen shares it on purpose, for a handover)`));
    }
  }
  const admin = settings.admin;
  if (admin && admin.port !== 0 && await addressInUse(admin.host, admin.port, ['tcp']) !== null) {
    errors.push(new ConfigError('POPSTEER_ERR_ADMIN_ADDRESS', 'admin', null, '/admin',
      `${hostPort(admin)} is already in use by another process; stop it, choose another --admin address, or --admin off`));
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return shared;
}

function loadProbes(settings: Settings, subjects: string[]) {
  const file = join(settings.geoDataDir, 'probes.yaml');
  if (!existsSync(file)) return emptyProbesConfig();
  try {
    return loadProbesConfig(file, subjects);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigErrors([err]);
    throw err;
  }
}

/** State and cache directories: made (mode 0700) when missing; refused at start-up (exit 2, naming the path) when unsafe. */
function preparePrivatePaths(settings: Settings): void {
  const problems: ConfigError[] = [];
  const check = (setting: string, prepare: () => void): void => {
    try {
      prepare();
    } catch (err) {
      if (!(err instanceof UnsafePathError)) throw err;
      problems.push(new ConfigError('POPSTEER_ERR_UNSAFE_PATH', err.path, null, '', `${setting}: ${err.problem}`));
    }
  };
  check('state_file', () => { ensurePrivateDirectory(dirname(settings.stateFile!)); checkExistingFile(settings.stateFile!); });
  check('cache_dir', () => ensurePrivateDirectory(settings.cacheDir));
  if (problems.length > 0) throw new ConfigErrors(problems);
}

/**
 * Starts the build thread and waits for the first build (GeoIP index,
 * nearest orders, policy compiles, class tries); this thread swaps finished
 * results in (builds.ts). The GeoIP handlers are bound once the DNS workers
 * run; a database replaced before then is queued in earlyGeoEvents and
 * replayed (the build thread already serves from it).
 */
async function startBuilds(settings: Settings, log: Logger) {
  const earlyGeoEvents: Array<() => void> = [];
  const buildHandlers = {
    geoBuilt: (next: LoadedGeo, load: LoadResult, change: GeoChange): void => { earlyGeoEvents.push(() => buildHandlers.geoBuilt(next, load, change)); },
    geoRejected: (message: string, errors: ConfigError[], change: GeoChange): void => { earlyGeoEvents.push(() => buildHandlers.geoRejected(message, errors, change)); },
  };
  const builder = new Builder({
    configDir: settings.configDir, geoDataDir: settings.geoDataDir, geoipDatabase: settings.geoipDatabase, asnDatabase: settings.asnDatabase, asnMaxChange: settings.asnMaxChange,
    pop: settings.pop, hashRecord: settings.hashRecord, dnssecValidityDays: settings.dnssecValidityDays, cacheDir: settings.cacheDir, watchGeo: true,
  }, {
    started: (reason) => log.info({ reason }, 'build started'),
    geoBuilt: (next, load, change) => buildHandlers.geoBuilt(next, load, change),
    geoRejected: (message, errors, change) => buildHandlers.geoRejected(message, errors, change),
  }, log);
  let built: Awaited<ReturnType<Builder['start']>>;
  try {
    built = await builder.start();
  } catch (err) {
    await builder.stop();
    throw err;
  }
  const geo = built.geo;
  log.info({
    database: geo.database.path, type: geo.database.databaseType, built: geo.database.buildEpoch.toISOString(),
    locations: geo.database.index.locationCount, pops: geo.catalog.count, loadMs: Math.round(geo.database.loadMs),
    ...(geo.asn ? { asnFiles: geo.asn.files.map((f) => `${f.path} (${f.layout})`), asnNetworks: geo.asn.networks.count, asnLoadMs: Math.round(geo.asn.loadMs), locationsWithAsn: geo.context.index.locationCount } : {}),
  }, 'geo data loaded');
  return { builder, built, buildHandlers, earlyGeoEvents };
}

/**
 * The load leaves hundreds of MB of garbage (the mmdb bytes, build-time
 * tables); collect it now, before the workers start, rather than whenever V8
 * next decides to, so the steady-state footprint is what is really used.
 */
function releaseLoadGarbage(log: Logger): void {
  collectGarbage();
  // Freed build-time tables sit between live ones in malloc's heap, resident
  // until handed back; without the native module they stay.
  nativeUdp()?.releaseFreeMemory();
  const memory = process.memoryUsage();
  log.info({ rssMB: Math.round(memory.rss / 1e6), heapMB: Math.round(memory.heapUsed / 1e6), arrayBuffersMB: Math.round(memory.arrayBuffers / 1e6), externalMB: Math.round(memory.external / 1e6) }, 'memory after load');
}

/**
 * Every connection is a descriptor: the caps must fit under the open-file
 * limit with room left for probes (`probesInFlight`) and everything else.
 */
function fitCaps(settings: Settings, probesInFlight: number, log: Logger): ConnectionCaps {
  const descriptorLimit = openFileLimit();
  let fitted: ReturnType<typeof fitConnectionCaps>;
  try {
    fitted = fitConnectionCaps({ tcp: settings.tcpMaxConnections, admin: settings.admin ? settings.adminMaxConnections : 0 },
      descriptorLimit, DESCRIPTOR_RESERVE + probesInFlight);
  } catch (err) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', 'tcp-max-connections', null, '/tcp_max_connections', (err as Error).message)]);
  }
  const caps = fitted.caps;
  if (fitted.lowered !== '') log.warn({ openFileLimit: descriptorLimit, tcpMaxConnections: caps.tcp, adminMaxConnections: caps.admin }, `connection caps lowered: ${fitted.lowered}`);
  return caps;
}

/** The DNS addresses to bind, with `host:0` given a port free for both UDP and TCP. */
async function listenAddresses(settings: Settings): Promise<Array<{ host: string; port: number }>> {
  const listen = [];
  for (const address of settings.listen) {
    listen.push({ host: address.host, port: address.port === 0 ? await pickPort(address.host) : address.port });
  }
  return listen;
}

/** The UDP I/O the workers use (a bad udp_io setting is a configuration error, exit 2). */
function udpIoOf(settings: Settings, log: Logger): ReturnType<typeof resolveUdpIo> {
  let udpIo: ReturnType<typeof resolveUdpIo>;
  try {
    udpIo = resolveUdpIo(settings.udpIo);
  } catch (err) {
    throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', 'udp-io', null, '/udp_io', (err as Error).message)]);
  }
  if (udpIo.reason !== '') log.info({ udp_io: udpIo.io, reason: udpIo.reason }, 'UDP on dgram, one system call per datagram');
  return udpIo;
}

/**
 * Calls `changed` on edits under the config directory (zones/, steering/),
 * debounced so that an editor's write-rename-chmod counts once. The events
 * of one save arrive within a few milliseconds; 25 ms covers them (it was
 * 150 ms, a sixth of the one-second reload goal at scale). A longer burst
 * costs no extra build: a reload asked for while another waits to start
 * joins it (builds.ts).
 */
function watchConfigDirectories(settings: Settings, changed: (file: string) => void, log: Logger): FSWatcher[] {
  const watchers: FSWatcher[] = [];
  let reloadTimer: NodeJS.Timeout | null = null;
  const scheduleReload = (file: string): void => {
    if (reloadTimer) clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => { reloadTimer = null; changed(file); }, 25);
  };
  for (const dir of ['zones', 'steering']) {
    const path = join(settings.configDir, dir);
    if (!existsSync(path)) continue;
    const watcher = watch(path, { persistent: false }, (_event, file) => {
      if (file && /\.ya?ml$/.test(String(file))) scheduleReload(join(dir, String(file)));
    });
    watcher.on('error', (err) => log.warn({ err: err.message, dir: path }, 'config watch error'));
    watchers.push(watcher);
  }
  return watchers;
}

/** Anycast fitness from health: this PoP drained, forced down or down, or cut off from most targets. */
function healthFitnessChecks(health: HealthService, pop: string): Array<() => string | null> {
  const localPop = (): string | null => {
    const self = health.status().subjects.find((s) => s.id === pop);
    if (!self) return null;
    if (self.override && (self.override.kind === 'drain' || self.override.kind === 'force-down')) return `local PoP ${pop} is ${self.override.kind === 'drain' ? 'drained' : 'forced down'}: ${self.override.reason}`;
    if (self.state === 'down') return `local PoP ${pop} is down`;
    return null;
  };
  return [localPop, () => (health.cutOff().active ? 'cut off: most targets unreachable from here' : null)];
}

/** Asks a DNS worker to close its sockets and waits for it; one that does not answer in 2 s is terminated. */
function closeWorker(w: Worker): Promise<void> {
  return new Promise<void>((resolveP) => {
    const timer = setTimeout(() => { void w.terminate().then(() => resolveP()); }, 2000);
    w.on('message', (m: FromWorker) => { if (m.type === 'closed') { clearTimeout(timer); resolveP(); } });
    w.once('exit', () => { clearTimeout(timer); resolveP(); });
    w.postMessage({ type: 'close' } satisfies ToWorker);
  });
}

/**
 * Signals for TTLs derived from health and for capacity steps, refreshed
 * every second and at every health change. `ids` is read at each refresh:
 * a GeoIP reload replaces the catalog object (with the same PoPs).
 */
function startSignals(count: number, ids: () => readonly string[], health: HealthService) {
  const signals = createSignals(count);
  const signalsView = new Float64Array(signals);
  const refreshSignals = (): void => {
    const now = Date.now();
    ids().forEach((id, i) => setNextPossibleChange(signalsView, i, now + health.secondsUntilPossibleChange(id) * 1000));
  };
  refreshSignals();
  health.on('transition', refreshSignals);
  const signalsTimer = setInterval(refreshSignals, 1000);
  signalsTimer.unref();
  return { signals, signalsView, signalsTimer, refreshSignals };
}

/** Starts `count` DNS worker threads; `listening` settles when each has bound its sockets (or failed to). */
function spawnDnsWorkers(count: number, dataOf: (index: number) => DnsWorkerData, log: Logger, stopping: () => boolean, died: () => void) {
  const workers: Worker[] = [];
  const listening: Array<Promise<void>> = [];
  for (let index = 0; index < count; index++) {
    // Every datagram leaves a little garbage (the message Buffer, rinfo, the
    // reply); under sustained load V8 grows a worker's young generation to
    // its maximum and keeps it. A small young generation keeps the committed
    // heap flat (scavenges stay cheap: almost nothing survives them).
    const worker = new Worker(new URL('./dns-worker.ts', import.meta.url), { workerData: dataOf(index), resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    workers.push(worker);
    listening.push(watchWorker(worker, index, log, stopping, died).listening);
  }
  return { workers, listening };
}

type BuildHandlers = Awaited<ReturnType<typeof startBuilds>>['buildHandlers'];

/**
 * In a fleet, starts from the policy revision kept on disk (the last one
 * applied), so an instance that cannot reach the fleet serves what the fleet
 * last gave it; one that no longer compiles here is reported and the
 * --config files serve instead.
 */
async function startBuildsInFleet(settings: Settings, log: Logger): Promise<Awaited<ReturnType<typeof startBuilds>> & { kept: KeptRevision | null }> {
  const kept = settings.fleetServers.length === 0 ? null : readKeptRevision(dirname(settings.stateFile!), log);
  if (kept === null) return { ...await startBuilds(settings, log), kept };
  try {
    const started = await startBuilds({ ...settings, configDir: kept.dir }, log);
    log.info({ revision: kept.revision, hash: kept.hash, dir: kept.dir }, 'fleet: serving the policy revision kept on disk until the fleet says otherwise');
    return { ...started, kept };
  } catch (err) {
    if (!(err instanceof ConfigErrors)) throw err;
    log.error({ revision: kept.revision, errors: err.errors.map((e) => e.format()) }, 'fleet: the kept policy revision does not compile here; starting from the --config files');
    return { ...await startBuilds(settings, log), kept: null };
  }
}

/**
 * The GeoIP database is watched by the build thread: geoipupdate renames a
 * new file into place. A new file is loaded, checked and compiled against
 * there and swapped in here with a new snapshot (`swapIn`, then `setGeo`); a
 * truncated or corrupt one is rejected and the old data serves. The ASN
 * source is watched the same way; a replacement that changes too many
 * networks is refused there (geo/asn-watch.ts). Returns the GeoIP counts
 * (for metrics).
 */
function bindGeoReloads(handlers: BuildHandlers, swapIn: (reason: string, result: LoadResult) => ReloadOutcome, setGeo: (next: LoadedGeo) => void, log: Logger) {
  const geoReloads = { success: 0, rejected: 0, lastError: '' };
  const asnReloads = { success: 0, rejected: 0, lastError: '' };
  const reloadCounts = (source: GeoChange['source']) => (source === 'asn' ? asnReloads : geoReloads);
  handlers.geoBuilt = (next, result, change) => {
    const what = change.source === 'asn' ? 'ASN source replaced' : 'GeoIP database replaced';
    const counts = reloadCounts(change.source);
    const outcome = swapIn(what, result);
    if (!outcome.ok) {
      counts.rejected++;
      counts.lastError = outcome.errors.join('; ');
      return;
    }
    setGeo(next);
    counts.success++;
    const database = next.database;
    log.info(change.source === 'asn'
      ? { files: change.files, networks: next.asn?.networks.count ?? 0, changedShare: Number((change.changedShare ?? 0).toFixed(4)), loadMs: Math.round(next.asn?.loadMs ?? 0) }
      : { database: change.files[0], type: database.databaseType, built: database.buildEpoch.toISOString(), loadMs: Math.round(database.loadMs) }, what);
  };
  handlers.geoRejected = (message, _errors, change) => {
    const counts = reloadCounts(change.source);
    counts.rejected++;
    counts.lastError = message;
    log.error({ err: message, files: change.files }, change.source === 'asn'
      ? 'ASN source replacement rejected; the previous data keeps serving'
      : 'GeoIP database replacement rejected; the previous data keeps serving');
  };
  return geoReloads;
}

/**
 * Starts the server in named phases (the functions above) and holds what
 * they share while it runs: the current snapshot, policies and geo data, the
 * decision counters, and whether it is shutting down. reload, swapIn,
 * shutdown and the RunningServer the admin sees are closures over that state.
 */
// eslint-disable-next-line max-lines-per-function -- the composition root: its closures share the running state above; each phase is a named function, and moving the state into a class is left for after the fleet work that also wires in here
export async function startServer(settings: Settings, log: Logger): Promise<RunningServer> {
  const startedAt = Date.now();
  // Before the long load: an address mistake is reported in a moment, not after the GeoIP index is built.
  await checkAddressesFree(settings);
  preparePrivatePaths(settings);
  const { builder, built, buildHandlers, earlyGeoEvents, kept } = await startBuildsInFleet(settings, log);
  let geo = built.geo;
  let loaded: LoadResult = built.load;
  let current: DnsSnapshot = loaded.snapshot!;
  log.info({ hash: current.hash, zones: current.zones.map((z) => z.apexText), policies: loaded.policies.map((p) => p.name), files: loaded.files.length }, 'configuration loaded');

  // dnstap's output is opened before anything starts, so a bad one stops start-up (exit 2).
  const dnstap = settings.dnstap ? startDnstap(settings, log) : null;

  releaseLoadGarbage(log);

  // Health: probed here, once per server; workers read the shared table.
  const healthTable = createHealthTable(geo.catalog.count);
  const probes = loadProbes(settings, geo.catalog.ids);
  const health = new HealthService({
    subjects: geo.catalog.ids, config: probes, stateFile: settings.stateFile!, log, table: healthTable,
  });

  const connectionCaps = fitCaps(settings, probes.maxInFlight, log);
  const tcpSlotBuffer = createSlotBuffer();
  const tcpSlots = new ConnectionSlots(tcpSlotBuffer, connectionCaps.tcp);
  const { signals, signalsView, signalsTimer, refreshSignals } = startSignals(geo.catalog.count, () => geo.catalog.ids, health);

  // The fleet connects in the background: answering never waits for it. Its
  // credentials are read here, before anything runs (a bad file is exit 2).
  // A revision arriving before `reload` exists waits for it.
  const reloadReady = Promise.withResolvers<void>();
  const revisions = settings.fleetServers.length === 0 ? null : new Revisions({
    pop: settings.pop, fleetName: settings.fleetName, stateDir: dirname(settings.stateFile!), kept, log,
    apply: async (dir, reason) => { await reloadReady.promise; return reload(reason, dir); },
  });
  // Declared load from the fleet feeds the same signal as POST /v1/load does on a single node.
  const fleetLoad = settings.fleetServers.length === 0 ? null : new FleetLoad({
    fleetName: settings.fleetName, pop: settings.pop, log, apply: (pop, load) => setLoadSignal(geo.catalog.ids, signalsView, pop, load),
  });
  const fleet = settings.fleetServers.length === 0 ? null : new Fleet({
    servers: settings.fleetServers, name: settings.fleetName, credsFile: settings.fleetCreds, caFile: settings.fleetCa, pop: settings.pop, version: packageVersion(), health, log, revisions, load: fleetLoad,
    verdict: { probers: settings.fleetProbers, rule: settings.fleetVerdict, graceMs: settings.fleetGraceMs },
  });
  health.start();
  // Now that probes are scheduled: until then no target has a next probe, and TTLs from health would be the maximum.
  refreshSignals();
  fleet?.start();

  const listen = await listenAddresses(settings);
  const udpIo = udpIoOf(settings, log);
  const counters = createCounterBuffer(settings.workers);
  let decisionCounters = createDecisionCounterBuffer(current.steering, settings.workers);
  let shuttingDown = false;
  // Once more, just before binding: the load took a while.
  const shared = await checkAddressesFree(settings);
  if (shared.length > 0) log.warn({ listen: shared }, 'sharing DNS addresses with another process (--share-listen): queries are split between the two until one stops');
  const workerDataOf = (index: number): DnsWorkerData => ({
    index, snapshot: snapshotForWorkers(current), listen, udpIo: udpIo.io, popId: settings.pop, versionBind: settings.versionBind, counters, health: healthTable, signals, ecsTrust: settings.ecsTrust,
    decisionCounters, queryLogSample: settings.queryLogSample, answerCacheEntries: settings.answerCacheEntries, logLevel: settings.logLevel, rrl: rrlConfigOf(settings),
    dnstap: dnstap?.workerConfig(index, listen) ?? null,
    tcp: { idleTimeoutMs: settings.tcpIdleTimeoutMs, messageTimeoutMs: settings.tcpMessageTimeoutMs, maxQueriesPerConnection: settings.tcpMaxQueriesPerConnection },
    tcpSlots: tcpSlotBuffer, tcpMaxConnections: connectionCaps.tcp,
  });
  const { workers, listening } = spawnDnsWorkers(settings.workers, workerDataOf, log, () => shuttingDown, () => { void shutdown().then(() => process.exit(1)); });
  /** A start-up that fails after threads and timers began leaves nothing running behind it. */
  const abandonStart = async (): Promise<void> => {
    shuttingDown = true;
    await builder.stop();
    health.stop();
    await fleet?.stop();
    clearInterval(signalsTimer);
    await Promise.all(workers.map((w) => w.terminate()));
    await dnstap?.close();
  };
  try {
    await Promise.all(listening);
  } catch (err) {
    await abandonStart();
    throw err;
  }
  log.info({ listen: listen.map((l) => `${l.host}:${l.port}`), workers: settings.workers, udp_io: udpIo.io }, 'DNS listening (UDP and TCP)');

  const post = (message: ToWorker): void => { for (const w of workers) w.postMessage(message); };
  const reloads = { success: 0, failure: 0, lastError: [] as string[] };

  const reload = async (reason: string, configDir?: string): Promise<ReloadOutcome> => {
    let result: LoadResult;
    try {
      result = await builder.compile(reason, configDir);
    } catch (err) {
      reloads.failure++;
      reloads.lastError = [(err as Error).message];
      log.error({ reason, err: (err as Error).message }, 'reload failed; the previous configuration keeps serving');
      return { ok: false, errors: reloads.lastError, hash: current.hash, changed: false };
    }
    return swapIn(reason, result);
  };

  /** Publishes a finished compile to the DNS workers, or counts and logs why it was rejected. */
  const swapIn = (reason: string, result: LoadResult): ReloadOutcome => {
    if (!result.snapshot) {
      const errors = result.errors.map((e) => e.format());
      reloads.failure++;
      reloads.lastError = errors;
      log.error({ reason, errors }, 'reload rejected; the previous configuration keeps serving');
      return { ok: false, errors, hash: current.hash, changed: false };
    }
    reloads.success++;
    reloads.lastError = [];
    // Re-signed with the same configuration: same content hash, new signatures to serve.
    // A rollover step: same files, other keys (dnssec/rollover.ts).
    const changed = result.snapshot.hash !== current.hash || result.snapshot.dnssec?.expiresAt !== current.dnssec?.expiresAt
      || result.snapshot.dnssec?.keys !== current.dnssec?.keys;
    if (changed) {
      // The workers serve `current`: policies they hold go by reference (snapshot/policy-reuse.ts).
      const serving = current;
      current = result.snapshot;
      loaded = result;
      decisionCounters = createDecisionCounterBuffer(current.steering, settings.workers);
      post({ type: 'snapshot', snapshot: snapshotToPost(snapshotForWorkers(current), snapshotForWorkers(serving)), decisionCounters });
      log.info({ reason, hash: current.hash }, 'configuration reloaded');
    } else {
      log.info({ reason, hash: current.hash }, 'configuration unchanged');
    }
    return { ok: true, errors: [], hash: current.hash, changed };
  };

  reloadReady.resolve();
  const watchers = watchConfigDirectories(settings, (file) => { void reload(`file changed: ${file}`); }, log);

  const geoReloads = bindGeoReloads(buildHandlers, swapIn, (next) => { geo = next; }, log);
  for (const replay of earlyGeoEvents.splice(0)) replay();
  const stopGeoWatch = (): void => { void builder.stop(); };

  // Re-signing in the background, through reload: never on the query path.
  const signatures = new SignatureRefresh({
    now: signingClock(), expiry: () => current.dnssec?.expiresAt ?? null, refresh: (reason) => reload(reason), log,
    thresholdMs: settings.dnssecResignDays * 86_400_000, marginMs: settings.dnssecUnfitHours * 3_600_000, checkEveryMs: settings.dnssecCheckMinutes * 60_000,
  });

  let admin: AdminServer | null = null;
  const server: RunningServer = {
    settings,
    snapshot: () => current,
    policies: () => loaded.policies,
    geo: () => geo,
    health,
    healthTable,
    signals,
    setLoad: (pop, load) => setLoadSignal(geo.catalog.ids, signalsView, pop, load),
    dnsPorts: listen.map((l) => l.port),
    adminPort: null,
    connectionCaps,
    tcpConnections: () => tcpSlots.count(),
    counters,
    decisionCounters: () => decisionCounters,
    reloads,
    dnstap: () => dnstap?.stats() ?? DNSTAP_OFF,
    geoReloads,
    reload,
    fitness: () => {
      const reasons: string[] = [];
      if (shuttingDown) reasons.push('shutting down');
      for (const check of server.fitnessChecks) {
        const reason = check();
        if (reason) reasons.push(reason);
      }
      return { fit: reasons.length === 0, reasons };
    },
    fitnessChecks: [],
    shuttingDown: () => shuttingDown,
    shutdown: () => shutdown(),
    startedAt,
    fleet,
    fleetLoad,
    fleetRevision: () => revisions?.report() ?? null,
    dnssecExpirySeconds: () => signatures.secondsLeft(),
  };
  server.fitnessChecks.push(...healthFitnessChecks(health, settings.pop), () => signatures.unfitReason());
  signatures.start();
  if (settings.admin) {
    try {
      admin = await startAdmin(server, settings.admin, log);
    } catch (err) {
      for (const w of watchers) w.close();
      stopGeoWatch();
      signatures.stop();
      await abandonStart();
      throw err;
    }
    server.adminPort = admin.port;
    log.info({ admin: `${settings.admin.host}:${admin.port}`, tls: settings.adminTlsCert !== null }, 'admin HTTP listening');
  }

  async function shutdown(): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    // Report unfit first so the anycast route is withdrawn, keep answering
    // while routes converge, then stop taking new TCP connections and close.
    log.info({ drainMs: settings.drainMs }, 'shutting down: unfit for anycast, draining');
    for (const w of watchers) w.close();
    stopGeoWatch();
    signatures.stop();
    if (settings.drainMs > 0) await new Promise((r) => setTimeout(r, settings.drainMs));
    post({ type: 'stop-accepting' });
    health.stop();
    await fleet?.stop();
    clearInterval(signalsTimer);
    await Promise.all(workers.map(closeWorker));
    // After the DNS workers: their last frames are written before the stream's STOP.
    await dnstap?.close();
    if (admin) await admin.close();
    log.info('stopped');
  }

  return server;
}
