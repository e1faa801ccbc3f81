// The build thread: everything that turns files into tables — the GeoIP
// index, the nearest-PoP orders, policy compiles and class tries — runs here,
// so the main thread (admin API, fitness, health probes) never stops for a
// build. It owns the geo data and the compile caches (policy/load.ts keeps
// them per geo context), watches the GeoIP database, and posts finished
// results; the main thread only swaps them in (builds.ts).
//
// Requests are handled one at a time in arrival order, so a database
// replacement and a policy reload never interleave. The thread runs at the
// server's priority: lowered (nice 10 or 19), it made no measurable
// difference to fitness latency on a busy machine, and under query load a
// City rebuild then took minutes.

import { policiesToPost } from './snapshot/policy-reuse.ts';
import { zonesToPost } from './snapshot/zone-reuse.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ConfigError, ConfigErrors } from './config/errors.ts';
import { contextFor, loadGeo, type LoadedGeo } from './geo-context.ts';
import { watchAsnSource } from './geo/asn-watch.ts';
import { combineGeoDatabases, factsOf } from './geo/database.ts';
import { watchGeoDatabase } from './geo/watch.ts';
import { loadSnapshot } from './policy/load.ts';
import type { BuildSettings, BuiltGeo, BuiltLoad, ConfigErrorData, FromBuilder, GeoChange, ToBuilder } from './builds.ts';

const settings = workerData as BuildSettings;
const port = parentPort!;
let geo: LoadedGeo | null = null;
/** The directory compiled: --config, or the fleet revision applied last. */
let configDir = settings.configDir;
let stopGeoWatches: Array<() => void> = [];

const send = (message: FromBuilder): void => port.postMessage('load' in message ? { ...message, load: referencingSent(message.load) } : message);

/** Compile ids of the policies in the last load posted: the main thread holds them (builds.ts resolves references against them). */
let sentIds: ReadonlySet<string> = new Set();
/** Zones key of the last snapshot posted: the main thread holds its names and zones (snapshot/zone-reuse.ts). */
let sentZonesKey: string | undefined;

/**
 * The load with the policies the previous posted load carried sent by
 * reference (snapshot/policy-reuse.ts): a one-file reload of a thousand
 * policies copies one to the main thread, not a thousand. Names and zones
 * compiled from the same inputs as the last snapshot posted go by reference
 * too (snapshot/zone-reuse.ts). The snapshot's
 * policy list and the load's are one array, here as there.
 */
function referencingSent(load: BuiltLoad): BuiltLoad {
  const policies = policiesToPost(load.policies, sentIds);
  sentIds = new Set(load.policies.map((p) => p.compileId));
  const withPolicies = load.snapshot?.steering ? Object.freeze({ ...load.snapshot, steering: { ...load.snapshot.steering, policies } }) : load.snapshot;
  const snapshot = withPolicies && zonesToPost(withPolicies, sentZonesKey);
  if (load.snapshot) sentZonesKey = load.snapshot.zonesKey;
  return { ...load, snapshot, policies };
}


/** A build leaves most of what it allocated behind; collect it now rather than hold it until V8 decides to. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function builtGeo(loaded: LoadedGeo): BuiltGeo {
  return { context: loaded.context, database: factsOf(loaded.database) };
}

/** Compiles the configuration directory against `against`; errors come back as data, never thrown. */
function compile(against: LoadedGeo, dir = configDir): BuiltLoad {
  const result = loadSnapshot(dir, against.context, settings.pop, { hashRecord: settings.hashRecord, validityDays: settings.dnssecValidityDays });
  return {
    snapshot: result.snapshot,
    errors: result.errors.map((e) => e.toJSON() as unknown as ConfigErrorData),
    files: result.files,
    policies: result.policies,
  };
}

function errorData(err: unknown): { errors: ConfigErrorData[]; message: string } {
  if (err instanceof ConfigErrors) return { errors: err.errors.map((e) => e.toJSON() as unknown as ConfigErrorData), message: err.message };
  if (err instanceof ConfigError) return { errors: [err.toJSON() as unknown as ConfigErrorData], message: err.message };
  return { errors: [], message: (err as Error)?.message ?? String(err) };
}

/**
 * Builds the configuration against replaced geo data and posts it; the
 * build thread keeps the candidate only if the configuration compiled, so
 * the next replacement or reload starts from what the main thread serves.
 */
function rebuildWith(candidate: LoadedGeo, change: GeoChange): void {
  send({ type: 'build-started', id: null, reason: change.source === 'asn' ? 'ASN source replaced' : 'GeoIP database replaced' });
  let load: BuiltLoad;
  try {
    load = compile(candidate);
  } catch (err) {
    send({ type: 'geo-rejected', ...errorData(err), change });
    return;
  }
  if (load.snapshot) geo = candidate;
  send({ type: 'geo-built', geo: builtGeo(candidate), load, change });
  collectGarbage();
}

/**
 * Watches each GeoIP file (a database of several is watched file by file)
 * and the ASN source; geoipupdate and router exports rename new files into
 * place.
 */
function startGeoWatches(current: LoadedGeo): void {
  const parts = current.database.parts ?? [current.database];
  stopGeoWatches = parts.map((part, i) => watchGeoDatabase(part.path, (replaced) => {
    const serving = geo!;
    const servingParts = serving.database.parts;
    const database = servingParts ? combineGeoDatabases(servingParts.map((p, k) => (k === i ? replaced : p))) : replaced;
    rebuildWith({ context: contextFor(database, serving.catalog, serving.asn, settings.cacheDir), database, catalog: serving.catalog, asn: serving.asn },
      { source: 'geoip', files: [replaced.path] });
  }, (err) => {
    send({ type: 'geo-rejected', ...errorData(err), change: { source: 'geoip', files: [part.path] } });
  }, { current: part, networks: i === 0 ? current.database.networks : null, cacheDir: settings.cacheDir }));
  if (current.asn) {
    const files = current.asn.files.map((f) => f.path);
    stopGeoWatches.push(watchAsnSource(current.asn, (asn, share) => {
      const serving = geo!;
      rebuildWith({ context: contextFor(serving.database, serving.catalog, asn, settings.cacheDir), database: serving.database, catalog: serving.catalog, asn },
        { source: 'asn', files, changedShare: share });
    }, (err) => {
      send({ type: 'geo-rejected', ...errorData(err), change: { source: 'asn', files } });
    }, { maxChange: settings.asnMaxChange }));
  }
}

function handle(message: ToBuilder): void {
  if (message.type === 'stop') {
    for (const stop of stopGeoWatches) stop();
    port.close();
    return;
  }
  send({ type: 'build-started', id: message.id, reason: message.reason });
  try {
    if (message.type === 'start') {
      geo = loadGeo(settings);
      const load = compile(geo);
      send({ type: 'built', id: message.id, geo: builtGeo(geo), load });
      if (load.snapshot && settings.watchGeo) startGeoWatches(geo);
    } else {
      if (!geo) throw new Error('the build thread has no geo data yet');
      const load = compile(geo, message.configDir);
      // A fleet revision that compiled is what serves now: reloads and geo rebuilds start from it.
      if (load.snapshot && message.configDir !== undefined) configDir = message.configDir;
      send({ type: 'built', id: message.id, geo: null, load });
    }
  } catch (err) {
    send({ type: 'failed', id: message.id, ...errorData(err) });
  }
  collectGarbage();
}

port.on('message', handle);
