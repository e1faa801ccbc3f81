// The fleet (server/fleet): GET /v1/fleet lists every instance this one has
// heard of, and fleetOverride and fleetLoad are how the override and load
// routes write through the fleet instead of applying locally when --fleet is
// set.

import type { FastifyPluginAsync } from 'fastify';
import { FleetUnavailableError } from '../../fleet/fleet.ts';
import { LoadUnavailableError } from '../../fleet/load.ts';
import type { FleetHealthStatus } from '../../fleet/observations.ts';
import type { OverrideAction } from '../../health/overrides.ts';
import type { SubjectStatus } from '../../health/service.ts';
import { RequestError } from '../request-errors.ts';
import type { AdminHost } from '../running-server.ts';
import { isoTime } from './views.ts';

export const fleetRoutes: FastifyPluginAsync<{ host: AdminHost }> = async (app, { host }) => {
  app.get('/v1/fleet', async () => {
    if (!host.fleet) return { enabled: false, pop: host.settings.pop, instances: [], overrides: [] };
    const s = host.fleet.status();
    return {
      enabled: true,
      name: s.name,
      pop: host.settings.pop,
      instance: s.instance,
      connected: s.connected,
      revision: host.fleetRevision?.() ?? null,
      since: isoTime(s.since),
      servers: s.servers,
      instances: s.instances.map((i) => ({
        pop: i.pop, instance: i.instance, self: i.self, connected: i.connected, last_seen: isoTime(i.lastSeen), started_at: isoTime(i.startedAt), version: i.version,
        revision: i.revision?.served ?? null, revision_hash: i.revision?.hash ?? null, revision_failed: i.revision?.failed ?? null,
        disagrees_with_verdict: s.health.dissent.get(i.instance) ?? [],
      })),
      overrides: s.overrides.map((o) => ({
        subject: o.subject, action: o.action, reason: o.reason, author: o.author, at: isoTime(o.at), expires: isoTime(o.expires), via: o.via,
      })),
      loads: (host.fleetLoad?.status() ?? []).map((l) => ({ pop: l.pop, load: l.load, author: l.author, at: isoTime(l.at), via: l.via })),
      health: describeFleetHealth(s.health),
    };
  });
};

/** The health verdict: where health comes from, and each target's verdict with its evidence and probers. */
function describeFleetHealth(h: FleetHealthStatus): object {
  return {
    source: h.source, local_since: isoTime(h.localSince), probers: h.probers, observers_live: h.observersLive, disagreements: h.disagreements,
    targets: h.targets.map((t) => ({
      target: t.target, state: t.state, rule: t.rule, evidence: t.evidence, seen_down_by: t.down, seen_up_by: t.up,
      excluded: t.excluded.map((e) => ({ pop: e.pop, instance: e.observer, why: e.why })),
      probers: t.probers, observed_by: t.observedBy, probed_here: t.probedHere, own_state: t.ownState,
    })),
  };
}

/**
 * An override written to the fleet: resolves with the subject's state once
 * JetStream acknowledged it (and it applies here); a 503 when the fleet
 * cannot take it, so a 200 always means every instance will apply it.
 */
export async function fleetOverride(host: AdminHost, subject: string, action: OverrideAction, reason: string, expiresAt: number | null, author: string): Promise<SubjectStatus> {
  try {
    await host.fleet!.setOverride(subject, action, reason, expiresAt, author);
  } catch (err) {
    if (err instanceof FleetUnavailableError) throw new RequestError(503, 'fleet_unavailable', err.message);
    throw err;
  }
  return host.health.status().subjects.find((s) => s.id === subject)!;
}

/** A declared load written to the fleet: resolves once JetStream acknowledged it (it then applies here); a 503 when the fleet cannot take it. */
export async function fleetLoad(host: AdminHost, pop: string, load: number, author: string): Promise<void> {
  try {
    await host.fleetLoad!.declare(pop, load, author);
  } catch (err) {
    if (err instanceof LoadUnavailableError) throw new RequestError(503, 'fleet_unavailable', err.message);
    throw err;
  }
}
