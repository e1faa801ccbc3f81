// Read-only views of this instance: status, PoPs with their health, the
// active policies, and fitness for anycast.

import type { FastifyPluginAsync } from 'fastify';
import type { SubjectStatus } from '../../health/service.ts';
import { describePolicy } from '../policies-view.ts';
import type { AdminHost } from '../running-server.ts';

export const viewRoutes: FastifyPluginAsync<{ host: AdminHost; version: string }> = async (app, { host, version }) => {
  app.get('/v1/status', async () => {
    const snapshot = host.snapshot();
    const db = host.geo().database;
    return {
      version,
      pop: host.settings.pop,
      started_at: new Date(host.startedAt).toISOString(),
      uptime_seconds: Math.round((Date.now() - host.startedAt) / 1000),
      workers: host.settings.workers,
      policy_hash: snapshot.hash,
      policy_loaded_at: new Date(snapshot.loadedAt).toISOString(),
      policies: host.policies().map((p) => p.name),
      zones: snapshot.zones.map((z) => z.apexText),
      geoip: { type: db.databaseType, build_date: db.buildEpoch.toISOString(), locations: db.index.locationCount },
      health: { ready: host.health.ready(), cut_off: host.health.cutOff().active },
      reloads: { success: host.reloads.success, failure: host.reloads.failure, last_error: host.reloads.lastError },
    };
  });

  app.get('/v1/pops', async () => {
    const status = host.health.status();
    return {
      ready: status.ready,
      health_source: status.source,
      cut_off: { active: status.cutOff.active, share: status.cutOff.share, since: isoTime(status.cutOff.since) },
      pops: status.subjects.map((subject) => describePop(host, subject)),
    };
  });

  app.get('/v1/policies', async () => {
    const snapshot = host.snapshot();
    return { hash: snapshot.hash, loaded_at: new Date(snapshot.loadedAt).toISOString(), policies: host.policies().map(describePolicy) };
  });

  // Whether this instance should receive anycast traffic (read by `popsteer anycast`).
  app.get('/v1/fitness', async (_req, reply) => {
    const fitness = host.fitness();
    reply.code(fitness.fit ? 200 : 503);
    return { pop: host.settings.pop, ...fitness };
  });
};

/** A millisecond time as ISO 8601; null stays null. */
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** A health subject's override as the API shows it. */
export function describeOverride(override: SubjectStatus['override']): object | null {
  if (!override) return null;
  const base = { kind: override.kind, reason: override.reason, since: isoTime(override.since), expires: isoTime(override.expires) };
  return override.author === undefined ? base : { ...base, author: override.author };
}

/** One PoP of /v1/pops: catalog entry, health state, override and probe targets. */
function describePop(host: AdminHost, s: SubjectStatus): object {
  const catalog = host.geo().catalog;
  const pop = catalog.pops[catalog.ordinalOf.get(s.id) ?? -1];
  return {
    id: s.id,
    name: pop?.name ?? s.id,
    location: pop ? { lat: pop.lat, lon: pop.lon, country: pop.country, continent: pop.continent } : null,
    self: s.id === host.settings.pop,
    state: s.state,
    since: isoTime(s.since),
    probe_state: s.probeState,
    override: describeOverride(s.override),
    quorum: s.quorum,
    targets: s.targets.map((t) => ({
      id: t.id, kind: t.kind, state: t.state, since: isoTime(t.since), probed_here: t.probedHere, verdict: t.verdict,
      last_probe: t.last ? { ok: t.last.ok, reason: t.last.reason, detail: t.last.detail, duration_ms: t.last.durationMs, at: isoTime(t.last.at) } : null,
      interval_ms: t.intervalMs, timeout_ms: t.timeoutMs, rise: t.rise, fall: t.fall,
    })),
  };
}
