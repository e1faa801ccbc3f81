// Explain: why would this client get this answer? Runs the real query path
// (the same Engine and steering code, on the active snapshot, with the given
// PoPs forced down) and narrates the decision it made: deciding network and
// its source, location, rule, each step's kept and dropped candidates, the
// answer, its TTL and ECS scope.

import { CLASS_IN, EDNS_OPTION_ECS, TYPE_A, TYPE_AAAA, TYPE_OPT, rcodeToName } from '../dns/constants.ts';
import { nameToWire, wireToName } from '../dns/name.ts';
import { Engine, TRANSPORT_UDP } from './engine.ts';
import { PolicySteering } from './steering-hook.ts';
import { Counters } from './counters.ts';
import { formatAddress, maskAddress, parseAddressInto } from '../geo/address.ts';
import { CONTINENT_CODES, countryText, stringAt } from '../geo/codes.ts';
import { distanceKm } from '../geo/distance.ts';
import { lookupLocation, newLocationResult } from '../geo/lookup.ts';
import type { GeoIndex } from '../geo/types.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import { ENDPOINT_CNAME } from '../steering/types.ts';

export interface ExplainRequest {
  name: string;
  /** Client network (ECS) as CIDR or address; omitted = no ECS. */
  client?: string;
  /** Resolver address (the query's source); default 127.0.0.1. */
  resolver?: string;
  /** PoP ids to treat as down, on top of the live health state. */
  down?: string[];
  type?: 'A' | 'AAAA';
}

export interface ExplainContext {
  snapshot: DnsSnapshot;
  geo: GeoIndex;
  /** Live health table, copied (never written). */
  health: Int32Array;
  /** Health subject ids (PoPs by catalog ordinal). */
  subjects: string[];
  selfPop: string;
  /** Override notes by subject id, shown beside each candidate. */
  overrides?: Map<string, string>;
}

export interface ExplainCandidate {
  id: string;
  up: boolean;
  distance_km: number | null;
  weight: number;
  note?: string;
}

export interface ExplainResult {
  name: string;
  type: string;
  steered: boolean;
  policy?: string;
  policy_file?: string;
  deciding: {
    source: 'ecs' | 'resolver';
    address: string;
    prefix_length: number;
    ecs_fallback_reason?: string;
  };
  location?: {
    network: string;
    from: 'custom network' | 'GeoIP' | 'none';
    country: string;
    continent: string;
    subdivision: string;
    city: string;
    latitude: number | null;
    longitude: number | null;
    pinned_pop?: string;
  };
  rule?: { index: number; name: string; match: string; matched_by: string };
  steps: Array<{ step: string; kept: ExplainCandidate[]; dropped: Array<ExplainCandidate & { reason: string }> }>;
  outcome: { degraded: boolean; all_down: boolean; self_preferred: boolean; failover_tier: number };
  answer: { rcode: string; records: string[]; ttl: number | null; ecs_scope: number | null };
}

/** Explains one query; throws Error with a message for bad input. */
export function explain(ctx: ExplainContext, request: ExplainRequest): ExplainResult {
  const qtype = request.type === 'AAAA' ? TYPE_AAAA : TYPE_A;
  const query = syntheticQuery(request.name, qtype, request.client);
  const resolver = request.resolver ?? '127.0.0.1';
  const resolverBytes = new Uint8Array(16);
  const resolverFamily = parseAddressInto(resolver, resolverBytes);
  if (resolverFamily === 0) throw new Error(`resolver "${resolver}" is not an IP address`);

  // Health: the live state, plus the PoPs the caller takes down.
  const health = Int32Array.from(ctx.health);
  for (const id of request.down ?? []) {
    const i = ctx.subjects.indexOf(id);
    if (i < 0) throw new Error(`unknown PoP "${id}" in down list; known: ${ctx.subjects.join(', ')}`);
    health[3 + i] = 0;
  }
  health[0]++;

  const engine = new Engine(ctx.snapshot, { popId: ctx.selfPop, versionBind: null, counters: new Counters(null, 0) });
  const steering = ctx.snapshot.steering ? new PolicySteering(ctx.snapshot.steering, health, engine.counters) : null;
  engine.steering = steering;
  const size = engine.handle(query, query.length, TRANSPORT_UDP, { address: resolver, family: resolverFamily === 6 ? 1 : 0 });
  const reply = engine.writer.buf.subarray(0, size);
  const rcode = reply[3] & 0x0f;
  const ecsScope = request.client ? engine.writer.ecsScope : null;
  const view = engine.view;

  const result: ExplainResult = {
    name: wireToName(nameToWire(request.name.endsWith('.') ? request.name : `${request.name}.`)),
    type: qtype === TYPE_AAAA ? 'AAAA' : 'A',
    steered: false,
    deciding: { source: 'resolver', address: resolver, prefix_length: resolverFamily === 4 ? 32 : 128 },
    steps: [],
    outcome: { degraded: false, all_down: false, self_preferred: false, failover_tier: 0 },
    answer: { rcode: rcodeToName(rcode), records: [], ttl: null, ecs_scope: ecsScope },
  };
  if (!steering || engine.lastSteered < 0) {
    result.answer.records = decodeAnswerCount(reply) > 0 ? ['(static records from the zone)'] : [];
    return result;
  }
  const trace = steering.last;
  const policy = ctx.snapshot.steering!.policies[trace.policy];
  result.steered = true;
  result.policy = policy.name;
  result.policy_file = policy.file;

  // The deciding address, as the steering hook chose it.
  const ecsUsed = view.ecsPresent && request.client !== undefined && steering.lastDecidingFromEcs;
  const family = ecsUsed ? (view.ecsFamily === 1 ? 4 : 6) : (resolverFamily as 4 | 6);
  const bytes = ecsUsed ? view.ecsAddress.slice() : resolverBytes;
  const bits = ecsUsed ? view.ecsSourcePrefix : family === 4 ? 32 : 128;
  result.deciding = { source: ecsUsed ? 'ecs' : 'resolver', address: formatAddress(family, bytes), prefix_length: bits };
  if (view.ecsPresent && !ecsUsed) result.deciding.ecs_fallback_reason = 'ECS prefix 0 or a special-use address (private, loopback, link-local, CGNAT, documentation): the resolver address decides';

  const geo = ctx.geo;
  const location = newLocationResult();
  lookupLocation(geo, family, bytes, Math.min(bits, family === 4 ? 24 : 56), location);
  let clientLat = NaN;
  let clientLon = NaN;
  if (location.location >= 0) {
    const l = location.location;
    clientLat = geo.lat[l];
    clientLon = geo.lon[l];
    const network = bytes.slice();
    maskAddress(network, location.prefixLength + (family === 4 ? 0 : 0));
    result.location = {
      network: `${formatAddress(family, network)}/${location.prefixLength}`,
      from: geo.customNetwork[l] >= 0 ? 'custom network' : 'GeoIP',
      country: countryText(geo.country[l]),
      continent: CONTINENT_CODES[geo.continent[l]] ?? '',
      subdivision: stringAt(geo.strings, geo.subdivision[l]),
      city: stringAt(geo.strings, geo.label[l]),
      latitude: Number.isNaN(clientLat) ? null : clientLat,
      longitude: Number.isNaN(clientLon) ? null : clientLon,
    };
    if (geo.fixedPop[l] >= 0) result.location.pinned_pop = ctx.subjects[geo.fixedPop[l]];
  } else {
    result.location = { network: 'none', from: 'none', country: '', continent: '', subdivision: '', city: '', latitude: null, longitude: null };
  }

  const cls = policy.classes[trace.class];
  const rule = policy.rules[cls.rule];
  const variantRule = trace.variant > 0 ? policy.cidrRules.filter((c, i, all) => i === 0 || all[i - 1].rule !== c.rule)[trace.variant - 1] : null;
  result.rule = {
    index: cls.rule + 1, name: rule.name, match: rule.match,
    matched_by: variantRule ? `${variantRule.on} address inside ${formatAddress(variantRule.family, variantRule.network)}/${variantRule.prefixLength}`
      : rule.match === 'default' ? 'default: first rule that matches every client' : 'the client location',
  };

  const describe = (i: number): ExplainCandidate => {
    const e = policy.endpoints[i];
    const up = e.healthSubject < 0 || health[3 + e.healthSubject] === 1;
    const km = !Number.isNaN(e.lat) && !Number.isNaN(clientLat) ? Math.round(distanceKm(clientLat, clientLon, e.lat, e.lon)) : null;
    const note = e.healthSubject >= 0 ? ctx.overrides?.get(ctx.subjects[e.healthSubject]) : undefined;
    return { id: e.id, up, distance_km: km, weight: e.weight, ...(note ? { note } : {}) };
  };
  // Replay the written steps over a running list, so each shows what it kept and dropped.
  const written = [...new Set(rule.tiers.flat())];
  const planned = [...new Set(Array.from(cls.tiers, (t) => Array.from(t)).flat())];
  let current = written.slice();
  result.steps.push({ step: `candidates (${rule.tiers.length > 1 ? 'pools in priority order' : 'pool'})`, kept: current.map(describe), dropped: [] });
  for (const step of rule.steps) {
    if (step === 'nearest' || step.startsWith('{"nearest"')) {
      const limited = step !== 'nearest';
      const dropped = limited ? current.filter((i) => !planned.includes(i)) : [];
      current = planned.filter((i) => current.includes(i)).concat(limited ? [] : current.filter((i) => !planned.includes(i)));
      result.steps.push({
        step: `nearest${limited ? ` ${step}` : ''}: ordered by distance from the client`,
        kept: current.map(describe),
        dropped: dropped.map((i) => ({ ...describe(i), reason: 'beyond the nearest limit' })),
      });
    } else if (step.includes('geofence') || step === 'self') {
      const dropped = current.filter((i) => !planned.includes(i));
      current = current.filter((i) => planned.includes(i));
      result.steps.push({
        step: step === 'self' ? `self: only this instance's PoP (${ctx.selfPop})` : `geofence ${step}`,
        kept: current.map(describe),
        dropped: dropped.map((i) => ({ ...describe(i), reason: step === 'self' ? 'not this PoP' : 'outside the fence' })),
      });
    } else if (step === 'healthy') {
      const dropped = current.filter((i) => !describe(i).up);
      current = current.filter((i) => describe(i).up);
      result.steps.push({
        step: 'healthy: keep endpoints that are up',
        kept: current.map(describe),
        dropped: dropped.map((i) => ({ ...describe(i), reason: describe(i).note ?? 'down' })),
      });
    } else if (step.includes('failover')) {
      result.steps.push({ step: `failover ${step}: pools in priority order, the next only when the previous has too few up`, kept: [], dropped: [] });
    } else if (step.includes('weighted')) {
      result.steps.push({ step: `weighted ${step}: by weight${step.includes('random') ? ', random per query' : ', sticky per client network (rendezvous hashing)'}`, kept: current.map(describe), dropped: [] });
    } else if (step.includes('prefer_self')) {
      result.steps.push({ step: `${step}: this PoP (${ctx.selfPop}) when up and that close to the best candidate`, kept: [], dropped: [] });
    }
  }
  const r = trace.resolution;
  const chosen = Array.from(r.chosen.subarray(0, r.count));
  result.steps.push({ step: `answer: first ${rule.first}${cls.servfail ? ' (geofence left none: SERVFAIL)' : ''}`, kept: chosen.map(describe), dropped: [] });
  result.outcome = { degraded: r.degraded, all_down: r.allDown, self_preferred: r.selfPreferred, failover_tier: r.tier + 1 };
  const records: string[] = [];
  for (const i of chosen) {
    const e = policy.endpoints[i];
    if (e.kind === ENDPOINT_CNAME) {
      records.push(`CNAME ${wireToName(e.cname!)}`);
      break;
    }
    for (const a of qtype === TYPE_AAAA ? e.ipv6 : e.ipv4) records.push(`${qtype === TYPE_AAAA ? 'AAAA' : 'A'} ${formatAddress(qtype === TYPE_AAAA ? 6 : 4, padded(a))}  (${e.id})`);
  }
  result.answer.records = records;
  result.answer.ttl = rcode === 0 && records.length > 0 ? (r.degraded ? policy.degradedTtl : policy.ttl) : null;
  return result;
}

function padded(a: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(a);
  return out;
}

function decodeAnswerCount(reply: Uint8Array): number {
  return reply.length >= 8 ? (reply[6] << 8) | reply[7] : 0;
}

/**
 * A query packet as a resolver would send it (EDNS, RD=1), with an ECS option
 * for `client` (a CIDR, or an address taken as its /24 or /56) when given.
 * Used by explain and what-if to run the real query path offline.
 */
export function syntheticQuery(name: string, qtype: number, client: string | undefined): Uint8Array {
  let qname: Uint8Array;
  try {
    qname = nameToWire(name.endsWith('.') ? name : `${name}.`);
  } catch (err) {
    throw new Error(`name "${name}": ${(err as Error).message}`);
  }
  const parts: number[] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, ...qname, qtype >> 8, qtype & 0xff, 0, CLASS_IN];
  const options: number[] = [];
  if (client !== undefined) {
    const [addressText, lengthText] = client.split('/');
    const address = new Uint8Array(16);
    const family = parseAddressInto(addressText, address);
    if (family === 0) throw new Error(`client "${client}" is not an address or CIDR`);
    const max = family === 4 ? 32 : 128;
    const source = lengthText === undefined ? (family === 4 ? 24 : 56) : Number(lengthText);
    if (!Number.isInteger(source) || source < 0 || source > max) throw new Error(`client prefix length in "${client}" must be 0–${max}`);
    maskAddress(address, source);
    const n = (source + 7) >> 3;
    options.push(0, EDNS_OPTION_ECS, 0, 4 + n, 0, family === 4 ? 1 : 2, source, 0, ...address.subarray(0, n));
  }
  parts.push(0, TYPE_OPT >> 8, TYPE_OPT & 0xff, 0x04, 0xd0, 0, 0, 0, 0, options.length >> 8, options.length & 0xff, ...options);
  return Uint8Array.from(parts);
}

/** Human-readable rendering of an explain result. */
export function formatExplain(r: ExplainResult): string {
  const lines: string[] = [];
  lines.push(`${r.name} ${r.type}`);
  if (!r.steered) {
    lines.push(`  not steered: answered from the zone (${r.answer.rcode})`);
    return lines.join('\n');
  }
  lines.push(`  policy        ${r.policy}  (${r.policy_file})`);
  lines.push(`  deciding      ${r.deciding.address}/${r.deciding.prefix_length} from ${r.deciding.source === 'ecs' ? 'EDNS Client Subnet' : 'the resolver address'}`);
  if (r.deciding.ecs_fallback_reason) lines.push(`                ${r.deciding.ecs_fallback_reason}`);
  const l = r.location;
  if (l && l.from !== 'none') {
    lines.push(`  location      ${[l.city, l.subdivision, l.country, l.continent].filter(Boolean).join(', ')}  (${l.latitude?.toFixed(2)}, ${l.longitude?.toFixed(2)})`);
    lines.push(`                network ${l.network} from ${l.from}${l.pinned_pop ? `, pinned to PoP ${l.pinned_pop}` : ''}`);
  } else {
    lines.push('  location      unknown (no GeoIP record): the policy\'s unknown_location applies');
  }
  if (r.rule) lines.push(`  rule          #${r.rule.index} ${r.rule.name}  match ${r.rule.match}  (${r.rule.matched_by})`);
  const fmt = (c: ExplainCandidate): string => `${c.id}${c.distance_km !== null ? ` ${c.distance_km} km` : ''}${c.weight !== 1 ? ` w${c.weight}` : ''}${c.up ? '' : ' DOWN'}${c.note ? ` [${c.note}]` : ''}`;
  for (const s of r.steps) {
    lines.push(`  step          ${s.step}`);
    if (s.kept.length > 0) lines.push(`                  kept:    ${s.kept.map(fmt).join(', ')}`);
    if (s.dropped.length > 0) lines.push(`                  dropped: ${s.dropped.map((d) => `${fmt(d)} (${d.reason})`).join(', ')}`);
  }
  const o = r.outcome;
  const flags = [o.degraded && 'degraded (a candidate is down)', o.all_down && 'every candidate down: when_all_down applied', o.self_preferred && 'this PoP preferred (self)', o.failover_tier > 1 && `failover to pool #${o.failover_tier}`].filter(Boolean);
  if (flags.length > 0) lines.push(`  outcome       ${flags.join('; ')}`);
  lines.push(`  answer        ${r.answer.rcode}${r.answer.ttl !== null ? `  TTL ${r.answer.ttl}` : ''}${r.answer.ecs_scope !== null ? `  ECS scope /${r.answer.ecs_scope}` : ''}`);
  for (const rec of r.answer.records) lines.push(`                ${rec}`);
  return lines.join('\n');
}

