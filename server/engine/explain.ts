// Explain: why would this client get this answer? Runs the real query path
// (the same Engine and the steering createSteering() builds for the DNS
// workers, from the same inputs: health, signals, ecs_trust) with the
// decider's tracer on, and reports what the decider recorded: the deciding
// network and the ECS scope rule it fell under, the location, the rule, each
// step with what it kept and dropped, and the answer as it left the engine
// (records, TTL and ECS scope read back from the reply bytes).

import { CLASS_IN, EDNS_OPTION_ECS, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_OPT, rcodeToName } from '../dns/constants.ts';
import { nameToWire, wireToName } from '../dns/name.ts';
import { Engine, TRANSPORT_UDP } from './engine.ts';
import { createSteering } from './steering-hook.ts';
import { Counters } from './counters.ts';
import {
  EMBEDDED_IPV4_PREFIXES, SCOPE_EMBEDDED_IPV4, SCOPE_LOCATED, SCOPE_NO_ECS, SCOPE_SOURCE_ZERO, SCOPE_SPECIAL_USE, SCOPE_UNTRUSTED,
  SPECIAL_USE_BLOCKS, parseEcsAddress, type DecidingAddress,
} from './client-address.ts';
import { formatAddress, maskAddress, parseAddressInto, prefixMatches } from '../lib/address.ts';
import { CONTINENT_CODES, countryText, stringAt } from '../geo/codes.ts';
import { distanceKm } from '../geo/distance.ts';
import { lookupLocation, newLocationResult } from '../geo/lookup.ts';
import type { GeoIndex, NearestOrders } from '../geo/types.ts';
import { lookupAsn, type AsnAnswer, type AsnSource } from '../geo/asn-source.ts';
import type { DnsSnapshot } from '../snapshot/types.ts';
import { DecisionTrace, planClass, type TracedStep } from '../steering/decide.ts';
import { classAt } from '../steering/lazy-classes.ts';
import { WEIGHTED_RANDOM, type CompiledPolicy, type LocationAttributes } from '../steering/types.ts';

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
  /** The GeoIP index and its nearest-PoP orders (to replay the location steps), and the ASN source spliced into it. */
  geo: { index: GeoIndex; orders: NearestOrders; asnSource?: AsnSource | null };
  /** Live health table, copied (never written). */
  health: Int32Array;
  /** Live signals (health timing, declared load), as the DNS workers read them; null when there are none. */
  signals: Float64Array | null;
  /** The ecs_trust setting. */
  ecsTrust: readonly string[];
  /** Health subject ids (PoPs by catalog ordinal). */
  subjects: string[];
  selfPop: string;
  /** Override notes by subject id, shown beside each candidate. */
  overrides?: Map<string, string>;
  now?: () => number;
}

interface ExplainCandidate {
  id: string;
  up: boolean;
  distance_km: number | null;
  weight: number;
  note?: string;
}

interface ExplainResult {
  name: string;
  type: string;
  steered: boolean;
  policy?: string;
  policy_file?: string;
  deciding: {
    source: 'ecs' | 'resolver';
    address: string;
    prefix_length: number;
    /** The ECS scope rule the query fell under (README, "ECS scopes"). */
    scope_rule: string;
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
  /** The deciding address's AS, when an ASN source is configured (null: the source does not know it). */
  asn?: ExplainAsn | null;
  /** The resolver's own AS, when an ASN source is configured and ECS decided. */
  resolver_asn?: ExplainAsn | null;
  rule?: { index: number; name: string; match: string; matched_by: string };
  steps: Array<{ step: string; kept: ExplainCandidate[]; dropped: Array<ExplainCandidate & { reason: string }>; note?: string }>;
  outcome: { degraded: boolean; all_down: boolean; self_preferred: boolean; capacity_shifted: boolean; failover_tier: number };
  answer: { rcode: string; records: string[]; ttl: number | null; ecs_scope: number | null };
}

interface ExplainAsn {
  number: number;
  organization: string;
  /** The ASN source's network holding the address. */
  network: string;
  /** The file it came from. */
  source: string;
  /** "AS3320 Deutsche Telekom AG, from /var/lib/popsteer/asn.csv, network 80.128.0.0/11" */
  text: string;
}

function explainAsn(answer: AsnAnswer | null): ExplainAsn | null {
  if (!answer) return null;
  const text = `AS${answer.asn}${answer.organization ? ` ${answer.organization}` : ''}, from ${answer.file}, network ${answer.network}`;
  return { number: answer.asn, organization: answer.organization, network: answer.network, source: answer.file, text };
}

/** A copy of the live health table with the PoPs the caller takes down marked down (and its version moved on). */
function healthWithDown(ctx: ExplainContext, down: readonly string[]): Int32Array {
  const health = Int32Array.from(ctx.health);
  for (const id of down) {
    const i = ctx.subjects.indexOf(id);
    if (i < 0) throw new Error(`unknown PoP "${id}" in down list; known: ${ctx.subjects.join(', ')}`);
    health[3 + i] = 0;
  }
  health[0]++;
  return health;
}

/** The AS of the deciding address and, when ECS decided, of the resolver too (when an ASN source is loaded). */
function addAsns(ctx: ExplainContext, result: ExplainResult, resolverWhenEcs: string | null): void {
  const asnSource = ctx.geo.asnSource ?? null;
  if (!asnSource) return;
  result.asn = explainAsn(lookupAsn(asnSource, result.deciding.address));
  if (resolverWhenEcs !== null) result.resolver_asn = explainAsn(lookupAsn(asnSource, resolverWhenEcs));
}

/** Explains one query; throws Error with a message for bad input. */
export function explain(ctx: ExplainContext, request: ExplainRequest): ExplainResult {
  const qtype = request.type === 'AAAA' ? TYPE_AAAA : TYPE_A;
  const query = syntheticQuery(request.name, qtype, request.client);
  const resolver = request.resolver ?? '127.0.0.1';
  const resolverFamily = parseAddressInto(resolver, new Uint8Array(16));
  if (resolverFamily === 0) throw new Error(`resolver "${resolver}" is not an IP address`);

  const health = healthWithDown(ctx, request.down ?? []);

  const engine = new Engine(ctx.snapshot, { popId: ctx.selfPop, versionBind: null, counters: new Counters(null, 0) });
  const tables = ctx.snapshot.steering;
  const steering = tables ? createSteering({ tables, health, signals: ctx.signals, ecsTrust: ctx.ecsTrust, now: ctx.now, memoize: false }) : null;
  const healthTrace = new DecisionTrace();
  if (steering) steering.tracer = healthTrace;
  engine.steering = steering;
  const size = engine.handle(query, query.length, TRANSPORT_UDP, { address: resolver, family: resolverFamily === 6 ? 1 : 0 });
  const reply = engine.writer.buf.subarray(0, size);
  const rcode = reply[3] & 0x0f;
  const ecsScope = engine.view.ecsPresent ? engine.writer.ecsScope : null;
  const wire = answerRecords(reply);

  const result: ExplainResult = {
    name: wireToName(nameToWire(request.name.endsWith('.') ? request.name : `${request.name}.`)),
    type: qtype === TYPE_AAAA ? 'AAAA' : 'A',
    steered: false,
    deciding: { source: 'resolver', address: resolver, prefix_length: resolverFamily === 4 ? 32 : 128, scope_rule: '' },
    steps: [],
    outcome: { degraded: false, all_down: false, self_preferred: false, capacity_shifted: false, failover_tier: 0 },
    answer: { rcode: rcodeToName(rcode), records: [], ttl: null, ecs_scope: ecsScope },
  };
  if (!steering || engine.lastSteered < 0) {
    if (reply.length >= 8 && ((reply[6] << 8) | reply[7]) > 0) result.answer.records = ['(static records from the zone)'];
    return result;
  }
  const last = steering.last;
  const policy = tables!.policies[last.policy];
  result.steered = true;
  result.policy = policy.name;
  result.policy_file = policy.file;

  const address = steering.address;
  const family = address.family;
  const bytes = address.bytes.slice();
  result.deciding = {
    source: address.fromEcs ? 'ecs' : 'resolver', address: formatAddress(family, bytes), prefix_length: address.bits, scope_rule: scopeRuleText(address),
  };
  if (address.ecsFallback) result.deciding.ecs_fallback_reason = `${scopeRuleText(address)}: the resolver address decides`;

  // Where the deciding address is, read exactly as the class lookup read it.
  const geo = ctx.geo.index;
  const found = lookupLocation(geo, family, bytes, address.bits, newLocationResult());
  const l = found.location;
  const clientLat = l >= 0 ? geo.lat[l] : NaN;
  const clientLon = l >= 0 ? geo.lon[l] : NaN;
  result.location = locationOf(geo, family, bytes, found.location, found.prefixLength, ctx.subjects);
  addAsns(ctx, result, address.fromEcs ? resolver : null);

  const cls = classAt(policy, last.class);
  const rule = policy.rules[cls.rule];
  result.rule = { index: cls.rule + 1, name: rule.name, match: rule.matchText, matched_by: matchedBy(policy, cls.rule, last.cidrRule, address, result) };

  // The location steps, replayed for this location by the same planClass() that compiled the class.
  const locationTrace = new DecisionTrace();
  const replayed = planClass(rule, cls.rule, policy.endpoints, locationAttributes(ctx.geo, l), policy.unknownOrder, locationTrace);
  if (classKeyOf(replayed) !== classKeyOf(cls)) throw new Error(`explain: the replayed location steps of rule ${cls.rule + 1} disagree with the compiled decision class`);

  const describe = (i: number): ExplainCandidate => {
    const e = policy.endpoints[i];
    const up = e.healthSubject < 0 || health[3 + e.healthSubject] === 1;
    const km = !Number.isNaN(e.lat) && !Number.isNaN(clientLat) ? Math.round(distanceKm(clientLat, clientLon, e.lat, e.lon)) : null;
    const note = e.healthSubject >= 0 ? ctx.overrides?.get(ctx.subjects[e.healthSubject]) : undefined;
    return { id: e.id, up, distance_km: km, weight: e.weight, ...(note ? { note } : {}) };
  };
  for (const step of [...locationTrace.steps, ...healthTrace.steps]) {
    result.steps.push({
      step: stepTitle(step, rule.tiers.length, ctx),
      kept: step.kept.map(describe),
      dropped: step.dropped.map((d) => ({ ...describe(d.endpoint), reason: d.reason === 'down' ? (describe(d.endpoint).note ?? 'down') : d.reason })),
      ...(step.note ? { note: step.note } : {}),
    });
  }
  const r = last.resolution;
  result.outcome = { degraded: r.degraded, all_down: r.allDown, self_preferred: r.selfPreferred, capacity_shifted: r.capacityShifted, failover_tier: r.tier + 1 };
  const ids = endpointOfAddress(policy);
  result.answer.records = wire.records.map((rec) => (ids.has(rec) ? `${rec}  (${ids.get(rec)})` : rec));
  result.answer.ttl = wire.records.length > 0 ? wire.ttl : null;
  return result;
}

function classKeyOf(c: { rule: number; servfail: boolean; tiers: Int16Array[] }): string {
  return `${c.rule}|${c.servfail}|${c.tiers.map((t) => t.join(',')).join(';')}`;
}

/** The location's attributes as the policy compiler saw them (policy/load.ts geoFacts). */
function locationAttributes(geo: { index: GeoIndex; orders: NearestOrders }, l: number): LocationAttributes {
  if (l < 0) return { popRank: null, country: '', continent: '', subdivision: '', fixedPop: -1, known: false, asn: 0 };
  const { index, orders } = geo;
  const order = orders.classOfLocation[l];
  const known = order !== orders.classOfUnknown;
  let popRank: Int16Array | null = null;
  if (known) {
    popRank = new Int16Array(orders.popCount);
    orders.orders[order].forEach((ordinal, position) => { popRank![ordinal] = position; });
  }
  return {
    popRank, known, country: countryText(index.country[l]), continent: CONTINENT_CODES[index.continent[l]] ?? '',
    subdivision: stringAt(index.strings, index.subdivision[l]), fixedPop: index.fixedPop[l], asn: index.asn?.[l] ?? 0,
  };
}

function locationOf(geo: GeoIndex, family: 4 | 6, bytes: Uint8Array, l: number, prefixLength: number, subjects: string[]): NonNullable<ExplainResult['location']> {
  if (l < 0) return { network: 'none', from: 'none', country: '', continent: '', subdivision: '', city: '', latitude: null, longitude: null };
  const network = bytes.slice();
  maskAddress(network, prefixLength);
  const location: NonNullable<ExplainResult['location']> = {
    network: `${formatAddress(family, network)}/${prefixLength}`,
    from: geo.customNetwork[l] >= 0 ? 'custom network' : 'GeoIP',
    country: countryText(geo.country[l]),
    continent: CONTINENT_CODES[geo.continent[l]] ?? '',
    subdivision: stringAt(geo.strings, geo.subdivision[l]),
    city: stringAt(geo.strings, geo.label[l]),
    latitude: Number.isNaN(geo.lat[l]) ? null : geo.lat[l],
    longitude: Number.isNaN(geo.lon[l]) ? null : geo.lon[l],
  };
  if (geo.fixedPop[l] >= 0) location.pinned_pop = subjects[geo.fixedPop[l]];
  return location;
}

/** Why the rule matched: the CIDR that did (slow path: only the matched rule's list is read), the location, or default. */
function matchedBy(policy: CompiledPolicy, ruleIndex: number, cidrRule: number, address: DecidingAddress, result: ExplainResult): string {
  const rule = policy.rules[ruleIndex];
  if (cidrRule === ruleIndex) {
    const parts: string[] = [];
    const client = rule.match.clientCidrs.find((c) => cidrContains(c, address.family, address.bytes, address.bits));
    const resolver = rule.match.resolverCidrs.find((c) => cidrContains(c, address.resolverFamily, address.resolver, address.resolverFamily === 4 ? 32 : 128));
    if (client) parts.push(`${address.fromEcs ? 'client' : 'client (here the resolver)'} address inside ${client}`);
    if (resolver) parts.push(`resolver address inside ${resolver}`);
    if (rule.match.resolverAsns.length > 0) {
      const asn = result.resolver_asn ?? (address.fromEcs ? null : result.asn);
      parts.push(`resolver in ${asn ? asn.text : `one of AS${rule.match.resolverAsns.join(', AS')}`}`);
    }
    return parts.join(' and ');
  }
  const m = rule.match;
  if (m.countries.length + m.continents.length + m.subdivisions.length + m.asns.length > 0) {
    const l = result.location!;
    const place = m.countries.length + m.continents.length + m.subdivisions.length > 0
      ? [`the client location (${[l.country, l.continent, l.subdivision].filter(Boolean).join(', ') || 'unknown'})`] : [];
    if (m.asns.length > 0) place.push(`the client's AS (${result.asn ? result.asn.text : 'unknown'})`);
    return place.join(' and ');
  }
  const earlier = cidrRule >= 0 ? '' : policy.rules.slice(0, ruleIndex).some((r) => r.match.clientCidrs.length + r.match.resolverCidrs.length > 0) ? ' (no earlier CIDR rule matched)' : '';
  return `${rule.match.self.length > 0 ? `this PoP is one of ${rule.match.self.join(', ')}; ` : ''}default: first rule that matches every client${earlier}`;
}

function cidrContains(text: string, family: 4 | 6, bytes: Uint8Array, bits: number): boolean {
  const [addressText, lengthText] = text.split('/');
  const network = new Uint8Array(16);
  const length = Number(lengthText);
  return parseAddressInto(addressText, network) === family && length <= bits && prefixMatches(bytes, network, length);
}

/** The scope rule in words (README, "ECS scopes"). */
function scopeRuleText(a: DecidingAddress): string {
  switch (a.rule) {
    case SCOPE_NO_ECS: return 'no ECS option: the resolver address decides';
    case SCOPE_SOURCE_ZERO: return 'ECS source prefix 0 (RFC 7871 §7.1.2): scope 0';
    case SCOPE_UNTRUSTED: return 'the resolver is not in ecs_trust, its ECS option is ignored: scope 0';
    case SCOPE_SPECIAL_USE: {
      const via = a.embedding >= 0 ? `${EMBEDDED_IPV4_PREFIXES[a.embedding].name} (${EMBEDDED_IPV4_PREFIXES[a.embedding].cidr})` : '';
      if (a.block < 0) return `ECS source in ${via} too short to reach the IPv4 address: scope /${a.fixedScope}, the prefix`;
      const block = SPECIAL_USE_BLOCKS[a.block];
      return `special-use ECS source (${block.name}, ${block.cidr}${via ? `, inside ${via}` : ''}): scope /${a.fixedScope}, the block`;
    }
    case SCOPE_EMBEDDED_IPV4: {
      const prefix = EMBEDDED_IPV4_PREFIXES[a.embedding];
      return `ECS source is ${prefix.name} (${prefix.cidr}): located by its IPv4 address, scope = ${prefix.at} + the IPv4 scope`;
    }
    case SCOPE_LOCATED:
    default: return 'located: scope = the widest network with the same answer';
  }
}

function stepTitle(traced: TracedStep, tierCount: number, ctx: ExplainContext): string {
  const step = traced.step;
  switch (step.kind) {
    case 'candidates': return `candidates (${tierCount > 1 ? 'pools in priority order' : 'pool'})`;
    case 'nearest': return `nearest${step.limit > 0 ? ` (limit ${step.limit})` : ''}: ordered by distance from the client`;
    case 'self': return `self: only this instance's PoP (${ctx.selfPop})`;
    case 'geofence': return `geofence to ${Array.isArray(step.to) ? step.to.join(', ') : step.to}${step.otherwise === 'keep_all' ? '' : `, else ${Array.isArray(step.otherwise) ? 'a pool' : step.otherwise}`}`;
    case 'pinned': return `pinned: the client's custom network pins PoP ${ctx.subjects[step.pop] ?? step.pop}`;
    case 'healthy': return 'healthy: keep endpoints that are up';
    case 'failover': return `failover (min_healthy ${step.minHealthy}): pools in priority order, the next only when the previous has too few up`;
    case 'prefer_self': return `prefer_self_within_km ${step.withinKm}: this PoP (${ctx.selfPop}) when up and that close to the best candidate`;
    case 'capacity': return `capacity (mark ${step.mark}): moves a share of networks off a first candidate loaded above the mark`;
    case 'weighted': return `weighted ${step.mode === WEIGHTED_RANDOM ? 'random: by weight, random per query' : 'sticky: by weight, sticky per client network (rendezvous hashing)'}`;
    case 'first': return `answer: first ${step.count}`;
    case 'when_all_down': return `when_all_down: ${step.action}`;
  }
}

/** "A 192.0.2.1" → endpoint id, for labelling the records read back from the reply. */
function endpointOfAddress(policy: CompiledPolicy): Map<string, string> {
  const ids = new Map<string, string>();
  for (const e of policy.endpoints) {
    for (const a of e.ipv4) ids.set(`A ${formatAddress(4, padded(a))}`, e.id);
    for (const a of e.ipv6) ids.set(`AAAA ${formatAddress(6, padded(a))}`, e.id);
    if (e.cname) ids.set(`CNAME ${wireToName(e.cname)}`, e.id);
  }
  return ids;
}

function padded(a: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(a);
  return out;
}

/**
 * The A, AAAA and CNAME records of a reply the engine wrote (question
 * skipped, owners read as pointers or names), with the first record's TTL.
 */
function answerRecords(reply: Uint8Array): { records: string[]; ttl: number } {
  const records: string[] = [];
  let ttl = 0;
  if (reply.length < 12) return { records, ttl };
  const answers = (reply[6] << 8) | reply[7];
  let at = skipName(reply, 12) + 4;
  for (let i = 0; i < answers && at + 10 <= reply.length; i++) {
    at = skipName(reply, at);
    const type = (reply[at] << 8) | reply[at + 1];
    const recordTtl = ((reply[at + 4] << 24) | (reply[at + 5] << 16) | (reply[at + 6] << 8) | reply[at + 7]) >>> 0;
    const length = (reply[at + 8] << 8) | reply[at + 9];
    const rdata = reply.subarray(at + 10, at + 10 + length);
    if (i === 0) ttl = recordTtl;
    if (type === TYPE_A && length === 4) records.push(`A ${formatAddress(4, padded(rdata))}`);
    else if (type === TYPE_AAAA && length === 16) records.push(`AAAA ${formatAddress(6, rdata)}`);
    else if (type === TYPE_CNAME) records.push(`CNAME ${wireToName(rdata)}`);
    at += 10 + length;
  }
  return { records, ttl };
}

function skipName(wire: Uint8Array, at: number): number {
  while (at < wire.length) {
    const length = wire[at];
    if (length === 0) return at + 1;
    if ((length & 0xc0) === 0xc0) return at + 2;
    at += length + 1;
  }
  return at;
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
    const family = parseEcsAddress(addressText, address);
    if (family === 0) throw new Error(`client "${client}" is not an address or CIDR`);
    const max = family === 4 ? 32 : 128;
    const source = lengthText === undefined ? (family === 4 ? 24 : 56) : Number(lengthText);
    if (!/^\d+$/.test(lengthText ?? '0') || !Number.isInteger(source) || source < 0 || source > max) throw new Error(`client prefix length in "${client}" must be 0–${max}`);
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
  lines.push(`                scope rule: ${r.deciding.scope_rule}`);
  const l = r.location;
  if (l && l.from !== 'none') {
    lines.push(`  location      ${[l.city, l.subdivision, l.country, l.continent].filter(Boolean).join(', ')}  (${l.latitude?.toFixed(2)}, ${l.longitude?.toFixed(2)})`);
    lines.push(`                network ${l.network} from ${l.from}${l.pinned_pop ? `, pinned to PoP ${l.pinned_pop}` : ''}`);
  } else {
    lines.push('  location      unknown (no GeoIP record): the policy\'s unknown_location applies');
  }
  if (r.asn !== undefined) lines.push(`  AS            ${r.asn ? r.asn.text : 'unknown to the ASN source'}`);
  if (r.resolver_asn !== undefined) lines.push(`  resolver AS   ${r.resolver_asn ? r.resolver_asn.text : 'unknown to the ASN source'}`);
  if (r.rule) lines.push(`  rule          #${r.rule.index} ${r.rule.name}  match ${r.rule.match}  (${r.rule.matched_by})`);
  const fmt = (c: ExplainCandidate): string => `${c.id}${c.distance_km !== null ? ` ${c.distance_km} km` : ''}${c.weight !== 1 ? ` w${c.weight}` : ''}${c.up ? '' : ' DOWN'}${c.note ? ` [${c.note}]` : ''}`;
  for (const s of r.steps) {
    lines.push(`  step          ${s.step}`);
    if (s.kept.length > 0) lines.push(`                  kept:    ${s.kept.map(fmt).join(', ')}`);
    if (s.dropped.length > 0) lines.push(`                  dropped: ${s.dropped.map((d) => `${fmt(d)} (${d.reason})`).join(', ')}`);
    if (s.note) lines.push(`                  ${s.note}`);
  }
  const o = r.outcome;
  const flags = [o.degraded && 'degraded (a candidate is down)', o.all_down && 'every candidate down: when_all_down applied', o.self_preferred && 'this PoP preferred (self)',
    o.capacity_shifted && 'moved off an overloaded PoP (capacity)', o.failover_tier > 1 && `failover to pool #${o.failover_tier}`].filter(Boolean);
  if (flags.length > 0) lines.push(`  outcome       ${flags.join('; ')}`);
  lines.push(`  answer        ${r.answer.rcode}${r.answer.ttl !== null ? `  TTL ${r.answer.ttl}` : ''}${r.answer.ecs_scope !== null ? `  ECS scope /${r.answer.ecs_scope}` : ''}`);
  for (const rec of r.answer.records) lines.push(`                ${rec}`);
  return lines.join('\n');
}
