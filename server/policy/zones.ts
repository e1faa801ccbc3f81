// Zones: YAML files → schema check → meaning checks → compiled NameNodes with
// pre-encoded answer templates. Slow path only.

import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SECTION_ADDITIONAL, SECTION_ANSWER, SECTION_AUTHORITY, TemplateBuilder, type Owner, type RdataPart } from '../dns/builder.ts';
import {
  RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, TYPE_CAA, TYPE_CNAME, TYPE_HTTPS, TYPE_MX, TYPE_NS,
  TYPE_SOA, TYPE_SRV, TYPE_SVCB, TYPE_TXT, typeFromName,
} from '../dns/constants.ts';
import { hashName, isSubdomain, lowerWire, NameSyntaxError, nameToWire, wireToName } from '../dns/name.ts';
import {
  encodeCaa, encodeIPv4, encodeIPv6, encodeMx, encodeSoa, encodeSrv, encodeSvcb, encodeTxt, RdataError,
  type SvcParamValue,
} from '../dns/rdata.ts';
import type { AnswerTemplate } from '../dns/template.ts';
import { ConfigError, type ErrorCode } from '../config/errors.ts';
import { readYamlFile, type YamlSource } from '../config/yaml-source.ts';
import { createNameTable, insertName } from '../snapshot/name-table.ts';
import type { NameNode, NameTable, ZoneTables } from '../snapshot/types.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import { ALG_ECDSAP256SHA256, dsRdata, KeyError, TYPE_CDNSKEY, TYPE_CDS, TYPE_DNSKEY } from '../dnssec/keys.ts';
import { loadKeySet, type KeySet } from '../dnssec/rollover.ts';
import { signingClock } from '../dnssec/refresh.ts';
import { validityAt, ZoneSigner } from '../dnssec/sign.ts';
import { originalTtlOf, signSteeredSets, SteeredSetsError } from '../dnssec/steered.ts';
import { nsec3paramRdata, RFC9276_PARAMS, TYPE_NSEC3PARAM } from '../dnssec/nsec3.ts';
import { signZone, steeredTypes, type NameFacts } from '../dnssec/zone.ts';
import type { DnssecTables } from '../snapshot/types.ts';
import { ENDPOINT_CNAME, type CompiledPolicy } from '../steering/types.ts';

interface ZoneDocument {
  zone: string;
  ttl: number;
  soa: { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number; ttl: number };
  records: Record<string, Record<string, unknown>>;
  /** Opt-in signing: keys directory (relative to the config directory) and algorithm. */
  dnssec?: { keys: string; algorithm?: number; nsec?: 'nsec' | 'nsec3' };
}

/** One RRset as loaded: its records' RDATA, ready for a TemplateBuilder. */
interface RRset {
  type: number;
  ttl: number;
  rdatas: RdataPart[][];
  /** For NS/MX/SRV/CNAME/SVCB: names that may have in-zone addresses for the additional section. */
  targets: Uint8Array[];
}

interface BuildNode {
  wire: Uint8Array; // original case
  key: Uint8Array; // lower-cased
  text: string;
  rrsets: Map<number, RRset>;
  pointer: string; // where in the file (for errors)
  steeredIndex: number;
}

interface LoadedZone {
  source: YamlSource;
  doc: ZoneDocument;
  apex: Uint8Array;
  apexKey: Uint8Array;
  nodes: Map<string, BuildNode>; // keyed by latin1 of the lower-cased wire name
  negativeTtl: number;
  tables: ZoneTables;
  /** The zone's CSK when it is signed. */
  /** The zone's signing keys (several during a rollover), or null when it is not signed. */
  key: KeySet | null;
}

/** A name answered by a steering decision, declared by a policy. */
export interface SteeredName {
  name: string;
  index: number;
  file: string;
  pointer: string;
  position: { line: number; column: number } | null;
}

export interface CompiledZones {
  names: NameTable;
  zones: ZoneTables[];
  files: Array<{ file: string; text: string }>;
  /** Present when some zone is signed. */
  dnssec: DnssecTables | null;
}

interface CompileOptions {
  /** The compiled policies, by steered index: signed zones sign every answer their steered names can give. */
  policies?: readonly CompiledPolicy[];
  /** The signing clock (ms since the epoch); signature windows are quantized to its day. */
  signingNow?: () => number;
  /** Signatures expire this many days after the signing day (settings dnssec.validity_days; 14 when unset). */
  validityDays?: number;
}

const keyString = (key: Uint8Array): string => Buffer.from(key).toString('latin1');

export function zoneFilesIn(configDir: string): string[] {
  const dir = join(configDir, 'zones');
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    throw new ConfigError('POPSTEER_ERR_NO_ZONES', dir, null, '', 'no zones/ directory here (create zones/<zone>.yaml under the config directory)');
  }
  return entries.filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}

/** Loads and compiles every zone file; throws nothing, returns every error found. */
export function compileZones(files: string[], steered: SteeredName[], options: CompileOptions = {}): { result: CompiledZones | null; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const zones: LoadedZone[] = [];
  for (const file of files) {
    try {
      const zone = loadZone(file, errors);
      if (zone) zones.push(zone);
    } catch (err) {
      if (err instanceof ConfigError) errors.push(err);
      else throw err;
    }
  }
  if (files.length === 0) errors.push(new ConfigError('POPSTEER_ERR_NO_ZONES', 'zones/', null, '', 'no zone files found (add zones/<zone>.yaml)'));
  const seen = new Map<string, LoadedZone>();
  for (const zone of zones) {
    const k = keyString(zone.apexKey);
    const other = seen.get(k);
    if (other) {
      errors.push(new ConfigError('POPSTEER_ERR_ZONE_DUPLICATE', zone.source.file, zone.source.position('/zone'), '/zone',
        `zone ${zone.tables.apexText} is also defined in ${other.source.file}; keep one`));
    } else {
      seen.set(k, zone);
    }
  }
  attachSteeredNames(zones, steered, errors);
  if (errors.length > 0) return { result: null, errors };

  const allNodes: NameNode[] = [];
  const dnssec: DnssecTables = { signatures: new Map(), steered: [], expiresAt: Infinity, keys: '' };
  for (const zone of zones) allNodes.push(...buildZoneNodes(zone, errors, options, dnssec));
  if (errors.length > 0) return { result: null, errors };

  // Longest-zone match: a name at or below a served child zone's apex is the
  // child's, even where the parent also holds data for it (glue below its cut),
  // so the parent's copy is left out of the table.
  const owningZone = (key: Uint8Array): ZoneTables | null => {
    let best: ZoneTables | null = null;
    for (const zone of zones) if (isSubdomain(key, zone.apexKey) && (!best || zone.apexKey.length > best.apex.length)) best = zone.tables;
    return best;
  };
  const owner = new Map<string, NameNode>();
  for (const node of allNodes) if (owningZone(node.key) === node.zone) owner.set(keyString(node.key), node);
  // A served child's apex is also its parent's delegation point: DS there is still the parent's.
  for (const node of allNodes) {
    const child = owner.get(keyString(node.key));
    if (node.parentSideDs !== null && child !== undefined && child !== node) child.parentSideDs = node.parentSideDs;
  }
  const names = createNameTable(owner.size);
  for (const node of owner.values()) insertName(names, node);
  return {
    result: {
      names, zones: zones.map((z) => z.tables), files: zones.map((z) => ({ file: z.source.file, text: z.source.text })),
      dnssec: zones.some((z) => z.key !== null) ? dnssec : null,
    },
    errors,
  };
}

function resolveName(text: string, apex: Uint8Array): Uint8Array {
  if (text === '@') return apex;
  if (text.endsWith('.')) return nameToWire(text);
  const relative = nameToWire(text);
  const out = new Uint8Array(relative.length - 1 + apex.length);
  out.set(relative.subarray(0, relative.length - 1), 0);
  out.set(apex, relative.length - 1);
  if (out.length > 255) throw new NameSyntaxError(`"${text}" is longer than 255 octets once the zone name is added`);
  return out;
}

function loadZone(file: string, errors: ConfigError[]): LoadedZone | null {
  const source = readYamlFile(file);
  const schemaErrors = validateAgainstSchema('zone', source, 'POPSTEER_ERR_ZONE_SCHEMA');
  if (schemaErrors.length > 0) {
    errors.push(...schemaErrors);
    return null;
  }
  const doc = source.data as ZoneDocument;
  const err: ZoneFail = (code, pointer, message) => {
    errors.push(new ConfigError(code, file, source.position(pointer), pointer, message));
  };
  let apex: Uint8Array;
  try {
    apex = nameToWire(doc.zone.endsWith('.') ? doc.zone : doc.zone + '.');
  } catch (e) {
    err('POPSTEER_ERR_ZONE_NAME', '/zone', (e as Error).message);
    return null;
  }
  const apexKey = lowerWire(apex);
  const apexText = wireToName(apexKey);
  const nodes = new Map<string, BuildNode>();
  const negativeTtl = Math.min(doc.soa.ttl, doc.soa.minimum);

  for (const [ownerText, rrsets] of Object.entries(doc.records)) addOwner(ownerText, rrsets, doc.ttl, apex, nodes, err);

  const apexNode = nodes.get(keyString(apexKey));
  if (!apexNode || !apexNode.rrsets.has(TYPE_NS)) {
    err('POPSTEER_ERR_ZONE_NO_APEX_NS', '/records', `zone ${apexText} needs NS records at its apex: add records."@".NS`);
  } else if (apexNode.rrsets.has(TYPE_CNAME)) {
    err('POPSTEER_ERR_ZONE_APEX_CNAME', '/records/@/CNAME', 'the zone apex cannot be a CNAME');
  }
  for (const node of nodes.values()) {
    if (!isSubdomain(node.key, apexKey)) {
      err('POPSTEER_ERR_ZONE_OUT_OF_ZONE', node.pointer, `${node.text} is not inside zone ${apexText}; use a relative name or one ending in ${apexText}`);
    }
  }

  const soa = doc.soa;
  const soaRdata = encodeSoa({
    mname: resolveName(soa.mname, apex), rname: resolveName(soa.rname, apex), serial: soa.serial,
    refresh: soa.refresh, retry: soa.retry, expire: soa.expire, minimum: soa.minimum,
  });
  if (apexNode) apexNode.rrsets.set(TYPE_SOA, { type: TYPE_SOA, ttl: soa.ttl, rdatas: [soaRdata], targets: [] });
  const negative = (rcode: number): AnswerTemplate =>
    new TemplateBuilder(apex).add(SECTION_AUTHORITY, apex, TYPE_SOA, negativeTtl, soaRdata).build(rcode, true);
  const tables: ZoneTables = {
    apex: apexKey, apexText, nxdomain: negative(RCODE_NXDOMAIN), nodata: negative(RCODE_NOERROR), sourceFile: file,
  };
  const key = doc.dnssec ? zoneKey(file, doc, apexText, err) : null;
  if (key && apexNode) {
    // DNSKEY, and CDS/CDNSKEY (RFC 7344) so a parent that scans for them can take the DS over by itself.
    // During a rollover DNSKEY holds the old and the next key, CDS/CDNSKEY the DS set the parent should have (dnssec/rollover.ts).
    apexNode.rrsets.set(TYPE_DNSKEY, { type: TYPE_DNSKEY, ttl: soa.ttl, rdatas: key.published.map((k) => [k.dnskey]), targets: [] });
    apexNode.rrsets.set(TYPE_CDS, { type: TYPE_CDS, ttl: soa.ttl, rdatas: key.parentKeys.map((k) => [dsRdata(apexText, k)]), targets: [] });
    apexNode.rrsets.set(TYPE_CDNSKEY, { type: TYPE_CDNSKEY, ttl: soa.ttl, rdatas: key.parentKeys.map((k) => [k.dnskey]), targets: [] });
    // NSEC3PARAM tells secondaries and checkers the chain's parameters (RFC 5155 §4).
    if (doc.dnssec?.nsec === 'nsec3') apexNode.rrsets.set(TYPE_NSEC3PARAM, { type: TYPE_NSEC3PARAM, ttl: soa.ttl, rdatas: [[nsec3paramRdata(RFC9276_PARAMS)]], targets: [] });
  }
  return { source, doc, apex, apexKey, nodes, negativeTtl, tables, key };
}

/** The zone's CSK (CSKs during a rollover) from its keys directory (relative to the config directory, the parent of zones/). */
function zoneKey(file: string, doc: ZoneDocument, apexText: string, err: ZoneFail): KeySet | null {
  const keysDir = resolve(dirname(dirname(file)), doc.dnssec!.keys);
  try {
    return loadKeySet(keysDir, apexText, doc.dnssec!.algorithm ?? ALG_ECDSAP256SHA256);
  } catch (e) {
    if (!(e instanceof KeyError)) throw e;
    err('POPSTEER_ERR_ZONE_DNSSEC', '/dnssec', e.message);
    return null;
  }
}

type ZoneFail = (code: ErrorCode, pointer: string, message: string) => void;

/** One owner name of a zone file and its RRsets, into `nodes`. */
function addOwner(ownerText: string, rrsets: Record<string, unknown>, zoneTtl: number, apex: Uint8Array, nodes: Map<string, BuildNode>, err: ZoneFail): void {
  const pointer = `/records/${ownerText.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  let wire: Uint8Array;
  try {
    wire = resolveName(ownerText, apex);
  } catch (e) {
    err('POPSTEER_ERR_ZONE_NAME', pointer, (e as Error).message);
    return;
  }
  const key = lowerWire(wire);
  const k = keyString(key);
  if (nodes.has(k)) {
    err('POPSTEER_ERR_ZONE_DUPLICATE_NAME', pointer, `"${ownerText}" names ${wireToName(key)} again (names are case-insensitive); merge the two entries`);
    return;
  }
  const node: BuildNode = { wire, key, text: wireToName(wire), rrsets: new Map(), pointer, steeredIndex: -1 };
  nodes.set(k, node);
  const defaultTtl = typeof rrsets.ttl === 'number' ? rrsets.ttl : zoneTtl;
  for (const [typeName, value] of Object.entries(rrsets)) {
    if (typeName === 'ttl') continue;
    const type = typeFromName(typeName)!;
    try {
      node.rrsets.set(type, encodeRRset(type, value, defaultTtl, apex));
    } catch (e) {
      if (e instanceof RdataError || e instanceof NameSyntaxError) err('POPSTEER_ERR_ZONE_RDATA', `${pointer}/${typeName}`, e.message);
      else throw e;
    }
  }
  if (node.rrsets.has(TYPE_CNAME) && node.rrsets.size > 1) {
    err('POPSTEER_ERR_ZONE_CNAME_AND_OTHER_DATA', `${pointer}/CNAME`, 'a name with a CNAME may have no other records (RFC 1034 §3.6.2): move the other records or drop the CNAME');
  }
}

function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

function encodeRRset(type: number, value: unknown, ttl: number, apex: Uint8Array): RRset {
  const rdatas: RdataPart[][] = [];
  const targets: Uint8Array[] = [];
  switch (type) {
    case TYPE_A:
      for (const a of asArray(value as string | string[])) rdatas.push([encodeIPv4(a)]);
      break;
    case TYPE_AAAA:
      for (const a of asArray(value as string | string[])) rdatas.push([encodeIPv6(a)]);
      break;
    case TYPE_CNAME:
    case TYPE_NS:
      for (const n of asArray(value as string | string[])) {
        const target = resolveName(n, apex);
        targets.push(target);
        rdatas.push([{ name: target, compress: true }]);
      }
      break;
    case TYPE_TXT:
      for (const t of asArray(value as string | string[])) rdatas.push(encodeTxt(t));
      break;
    case TYPE_MX:
      for (const mx of value as Array<{ preference: number; exchange: string }>) {
        const target = resolveName(mx.exchange, apex);
        targets.push(target);
        rdatas.push(encodeMx(mx.preference, target));
      }
      break;
    case TYPE_SRV:
      for (const srv of value as Array<{ priority: number; weight: number; port: number; target: string }>) {
        const target = resolveName(srv.target, apex);
        targets.push(target);
        rdatas.push(encodeSrv(srv.priority, srv.weight, srv.port, target));
      }
      break;
    case TYPE_CAA:
      for (const caa of value as Array<{ flags: number; tag: string; value: string }>) rdatas.push([encodeCaa(caa.flags, caa.tag, caa.value)]);
      break;
    case TYPE_HTTPS:
    case TYPE_SVCB:
      for (const svc of value as Array<{ priority: number; target: string; params?: Record<string, SvcParamValue> }>) {
        const target = svc.target === '.' ? Uint8Array.of(0) : resolveName(svc.target, apex);
        if (svc.priority === 0 && svc.params && Object.keys(svc.params).length > 0) {
          throw new RdataError('AliasMode (priority 0) records take no params (RFC 9460 §2.4.2)');
        }
        if (svc.target !== '.') targets.push(target);
        rdatas.push(encodeSvcb(svc.priority, target, svc.params ?? {}));
      }
      break;
    default:
      throw new RdataError(`type ${type} is not supported`);
  }
  return { type, ttl, rdatas, targets };
}

function attachSteeredNames(zones: LoadedZone[], steered: SteeredName[], errors: ConfigError[]): void {
  for (const s of steered) {
    let wire: Uint8Array;
    try {
      wire = nameToWire(s.name.endsWith('.') ? s.name : s.name + '.');
    } catch (e) {
      errors.push(new ConfigError('POPSTEER_ERR_POLICY_NAME', s.file, s.position, s.pointer, (e as Error).message));
      continue;
    }
    const key = lowerWire(wire);
    let best: LoadedZone | null = null;
    for (const z of zones) if (isSubdomain(key, z.apexKey) && (!best || z.apexKey.length > best.apexKey.length)) best = z;
    if (!best) {
      errors.push(new ConfigError('POPSTEER_ERR_POLICY_OUTSIDE_ZONES', s.file, s.position, s.pointer,
        `${wireToName(key)} is in no served zone: add its zone under zones/ or fix the name`));
      continue;
    }
    const k = keyString(key);
    let node = best.nodes.get(k);
    if (node && node.steeredIndex >= 0) {
      errors.push(new ConfigError('POPSTEER_ERR_POLICY_DUPLICATE_NAME', s.file, s.position, s.pointer,
        `${wireToName(key)} is already steered by another policy; one name, one policy`));
      continue;
    }
    if (node && (node.rrsets.has(TYPE_A) || node.rrsets.has(TYPE_AAAA) || node.rrsets.has(TYPE_CNAME))) {
      errors.push(new ConfigError('POPSTEER_ERR_POLICY_STATIC_CONFLICT', s.file, s.position, s.pointer,
        `${wireToName(key)} also has static A/AAAA/CNAME records in ${best.source.file}; remove them there or steer another name`));
      continue;
    }
    if (!node) {
      node = { wire, key, text: wireToName(wire), rrsets: new Map(), pointer: s.pointer, steeredIndex: -1 };
      best.nodes.set(k, node);
    }
    node.steeredIndex = s.index;
  }
}

const ANY_PREFERENCE = [TYPE_CNAME, TYPE_A, TYPE_AAAA, TYPE_HTTPS, TYPE_MX, TYPE_TXT, TYPE_SOA, TYPE_NS];
/** CNAME links chased inside a zone when pre-building an answer. */
const MAX_CNAME_CHAIN = 8;

/**
 * Compiles one zone's names into NameNodes, in phases: add the empty
 * non-terminals, find the zone cuts and refuse what they occlude, pre-build
 * every node's answers, then link each node to its delegation and wildcard.
 */
function buildZoneNodes(zone: LoadedZone, errors: ConfigError[], options: CompileOptions, dnssec: DnssecTables): NameNode[] {
  const nodes = withEmptyNonTerminals(zone);
  const cuts = zoneCuts(nodes, zone.apexKey);
  checkOccludedNames(zone, nodes, cuts, errors);
  const answers = new ZoneAnswers(zone, nodes, cuts);
  const built = new Map<string, NameNode>();
  for (const node of nodes.values()) built.set(keyString(node.key), compileNode(node, answers, zone));
  linkDelegationsAndWildcards(built, cuts);
  if (zone.key !== null && errors.length === 0) signBuiltZone(zone, nodes, built, cuts, options, dnssec, errors);
  return [...built.values()];
}

/**
 * Signs a compiled zone (dnssec/zone.ts): its templates, NSEC proofs, and
 * the answer sets of its steered names, whose signatures go into the
 * snapshot for the engine to attach when it builds a steered answer.
 */
function signBuiltZone(zone: LoadedZone, nodes: Map<string, BuildNode>, built: Map<string, NameNode>, cuts: BuildNode[],
  options: CompileOptions, dnssec: DnssecTables, errors: ConfigError[]): void {
  const signer = new ZoneSigner(zone.key!.active, zone.apexKey, validityAt((options.signingNow ?? signingClock())(), options.validityDays), zone.key!.published);
  const names: NameFacts[] = [];
  for (const node of nodes.values()) {
    const types = new Set(node.rrsets.keys());
    const policy = node.steeredIndex >= 0 ? options.policies?.find((p) => p.index === node.steeredIndex) : undefined;
    if (policy) {
      const has = (f: (e: CompiledPolicy['endpoints'][number]) => boolean): boolean => policy.endpoints.some(f);
      for (const t of steeredTypes(has((e) => e.ipv4.length > 0), has((e) => e.ipv6.length > 0), has((e) => e.kind === ENDPOINT_CNAME))) types.add(t);
      try {
        signSteeredSets(policy, node.key, signer);
      } catch (e) {
        if (!(e instanceof SteeredSetsError)) throw e;
        errors.push(new ConfigError('POPSTEER_ERR_ZONE_DNSSEC', policy.file, null, '', e.message));
        return;
      }
      dnssec.steered[node.steeredIndex] = { originalTtl: originalTtlOf(policy), apex: zone.apexKey };
    }
    const cut = cutAbove(cuts, node.key);
    names.push({ node: built.get(keyString(node.key))!, types, occluded: cut !== null && cut !== node });
  }
  const nsec3 = zone.doc.dnssec?.nsec === 'nsec3' ? RFC9276_PARAMS : null;
  signZone({ apex: zone.apexKey, signer, negativeTtl: zone.negativeTtl, names, nsec3 }, zone.tables.nxdomain, [...built.values()]);
  for (const [k, v] of signer.signatures) dnssec.signatures.set(k, v);
  dnssec.expiresAt = Math.min(dnssec.expiresAt, signer.validity.expiration * 1000);
  const keys = zone.key!;
  dnssec.keys += `${zone.tables.apexText}:${keys.active.keyTag}/${keys.published.map((k) => k.keyTag).join(',')}/${keys.parentKeys.map((k) => k.keyTag).join(',')};`;
}

/** Every owner name, and the empty non-terminals between it and the apex. */
function withEmptyNonTerminals(zone: LoadedZone): Map<string, BuildNode> {
  const apexDepth = countLabels(zone.apexKey);
  const nodes = new Map(zone.nodes);
  for (const node of zone.nodes.values()) {
    let key = node.key;
    let wire = node.wire;
    while (countLabels(key) > apexDepth + 1) {
      wire = wire.subarray(wire[0] + 1);
      key = key.subarray(key[0] + 1);
      const k = keyString(key);
      if (!nodes.has(k)) nodes.set(k, { wire, key, text: wireToName(wire), rrsets: new Map(), pointer: node.pointer, steeredIndex: -1 });
    }
  }
  return nodes;
}

/** Zone cuts: the names below the apex that have NS records. */
function zoneCuts(nodes: Map<string, BuildNode>, apexKey: Uint8Array): BuildNode[] {
  const cuts: BuildNode[] = [];
  for (const node of nodes.values()) if (node.rrsets.has(TYPE_NS) && node.key.length !== apexKey.length) cuts.push(node);
  return cuts;
}

/** The closest cut at or above `key`, or null. */
function cutAbove(cuts: BuildNode[], key: Uint8Array): BuildNode | null {
  let best: BuildNode | null = null;
  for (const cut of cuts) if (isSubdomain(key, cut.key) && (!best || cut.key.length > best.key.length)) best = cut;
  return best;
}

/** Below a cut only glue (A/AAAA) may live, and no steered name. */
function checkOccludedNames(zone: LoadedZone, nodes: Map<string, BuildNode>, cuts: BuildNode[], errors: ConfigError[]): void {
  for (const node of nodes.values()) {
    const cut = cutAbove(cuts, node.key);
    if (!cut || cut === node) continue;
    for (const type of node.rrsets.keys()) {
      if (type !== TYPE_A && type !== TYPE_AAAA) {
        errors.push(new ConfigError('POPSTEER_ERR_ZONE_OCCLUDED', zone.source.file, zone.source.position(node.pointer), node.pointer,
          `${node.text} is below the delegation to ${cut.text}; only glue (A/AAAA) may live there`));
      }
    }
    if (node.steeredIndex >= 0) {
      errors.push(new ConfigError('POPSTEER_ERR_POLICY_BELOW_DELEGATION', zone.source.file, null, node.pointer,
        `${node.text} is steered but lies below the delegation to ${cut.text}`));
    }
  }
}

/** Pre-builds the answers of one zone's names: RRsets, in-zone CNAME chains, additional addresses, negative SOA. */
class ZoneAnswers {
  private readonly zone: LoadedZone;
  private readonly nodes: Map<string, BuildNode>;
  private readonly cuts: BuildNode[];

  constructor(zone: LoadedZone, nodes: Map<string, BuildNode>, cuts: BuildNode[]) {
    this.zone = zone;
    this.nodes = nodes;
    this.cuts = cuts;
  }

  lookup(key: Uint8Array): BuildNode | undefined {
    return this.nodes.get(keyString(key));
  }

  /**
   * Answer for `type` at `node`, written with owner `owner`. CNAMEs are chased
   * inside the zone (at most MAX_CNAME_CHAIN links, never into a cut or a steered name).
   */
  answerFor(node: BuildNode, type: number, owner: Owner, depth: number): { builder: TemplateBuilder; rcode: number } {
    const b = new TemplateBuilder(this.zone.apex);
    const cname = node.rrsets.get(TYPE_CNAME);
    if (cname && type !== TYPE_CNAME) return this.chaseCname(b, cname, type, owner, depth);
    const rr = node.rrsets.get(type);
    if (rr) {
      addRRset(b, SECTION_ANSWER, owner, rr);
      if (type === TYPE_MX || type === TYPE_SRV || type === TYPE_NS || type === TYPE_HTTPS || type === TYPE_SVCB) this.addAddresses(b, rr.targets);
    } else {
      this.addNegativeSoa(b);
    }
    return { builder: b, rcode: RCODE_NOERROR };
  }

  /** The referral for a delegation: its NS RRset in the authority section, with glue. */
  referralFor(node: BuildNode, ns: RRset): AnswerTemplate {
    const b = new TemplateBuilder(this.zone.apex);
    addRRset(b, SECTION_AUTHORITY, node.wire, ns);
    this.addAddresses(b, ns.targets);
    const glueRequired = ns.targets.some((t) => isSubdomain(lowerWire(t), node.key));
    return b.build(RCODE_NOERROR, false, glueRequired);
  }

  private chaseCname(b: TemplateBuilder, cname: RRset, type: number, owner: Owner, depth: number): { builder: TemplateBuilder; rcode: number } {
    addRRset(b, SECTION_ANSWER, owner, cname);
    const target = cname.targets[0];
    const targetKey = lowerWire(target);
    if (depth < MAX_CNAME_CHAIN && isSubdomain(targetKey, this.zone.apexKey) && !cutAbove(this.cuts, targetKey)) {
      const t = this.lookup(targetKey) ?? this.wildcardFor(targetKey);
      if (t && t.steeredIndex < 0) {
        const chained = this.answerFor(t, type, target, depth + 1);
        b.append(chained.builder);
        return { builder: b, rcode: chained.rcode };
      }
      if (!t) {
        this.addNegativeSoa(b);
        return { builder: b, rcode: RCODE_NXDOMAIN };
      }
    }
    return { builder: b, rcode: RCODE_NOERROR };
  }

  /** Closest encloser's wildcard (RFC 4592 §3.3.1), for chasing CNAMEs onto synthesized names. */
  private wildcardFor(key: Uint8Array): BuildNode | undefined {
    let k = key;
    while (k.length > this.zone.apexKey.length) {
      k = k.subarray(k[0] + 1);
      if (this.lookup(k)) {
        const star = new Uint8Array(k.length + 2);
        star[0] = 1; star[1] = 0x2a; star.set(k, 2);
        return this.lookup(star);
      }
    }
    return undefined;
  }

  /** In-zone A/AAAA of the targets, in the additional section. */
  private addAddresses(b: TemplateBuilder, targets: Uint8Array[]): void {
    for (const target of targets) {
      const t = this.lookup(lowerWire(target));
      if (!t) continue;
      for (const type of [TYPE_A, TYPE_AAAA]) {
        const rr = t.rrsets.get(type);
        if (rr) for (const rdata of rr.rdatas) b.add(SECTION_ADDITIONAL, target, type, rr.ttl, rdata);
      }
    }
  }

  private addNegativeSoa(b: TemplateBuilder): void {
    const { apex, apexKey, negativeTtl } = this.zone;
    b.add(SECTION_AUTHORITY, apex, TYPE_SOA, negativeTtl, this.zone.nodes.get(keyString(apexKey))!.rrsets.get(TYPE_SOA)!.rdatas[0]);
  }
}

function addRRset(b: TemplateBuilder, section: number, owner: Owner, rr: RRset): void {
  for (const rdata of rr.rdatas) b.add(section, owner, rr.type, rr.ttl, rdata);
}

/** One name's NameNode: a template per type it has (and per type its CNAME chain may end in), ANY, other types, referral. */
function compileNode(node: BuildNode, answers: ZoneAnswers, zone: LoadedZone): NameNode {
  const { tables } = zone;
  const isApex = node.key.length === zone.apexKey.length;
  const types: number[] = [];
  const templates: AnswerTemplate[] = [];
  for (const type of answeredTypes(node, answers)) {
    const { builder, rcode } = answers.answerFor(node, type, 'qname', 0);
    types.push(type);
    templates.push(builder.build(rcode, true));
  }
  const other = answers.answerFor(node, -1, 'qname', 0);
  const otherTypes = other.builder.build(other.rcode, true);
  const ns = node.rrsets.get(TYPE_NS);
  const referral = !isApex && ns ? answers.referralFor(node, ns) : null;
  return {
    key: node.key,
    hash: hashName(node.key),
    next: null,
    zone: tables,
    text: node.text,
    delegation: null,
    referral,
    parentSideDs: referral !== null ? tables.nodata : null,
    wildcard: null,
    types: Int32Array.from(types),
    templates,
    otherTypes: isApex || node.rrsets.size > 0 || node.steeredIndex >= 0 ? otherTypes : tables.nodata,
    any: anyTemplate(node, types, templates, tables.nodata),
    steeredIndex: node.steeredIndex,
  };
}

/** The types a node gets a template for: its own, and for a CNAME those at the end of the chain plus A and AAAA. */
function answeredTypes(node: BuildNode, answers: ZoneAnswers): Set<number> {
  const typeSet = new Set<number>(node.rrsets.keys());
  const cname = node.rrsets.get(TYPE_CNAME);
  if (cname) {
    // A CNAME's answer depends on the type found at the end of the chain.
    const end = answers.lookup(lowerWire(cname.targets[0]));
    if (end) for (const t of end.rrsets.keys()) typeSet.add(t);
    typeSet.add(TYPE_A);
    typeSet.add(TYPE_AAAA);
  }
  return typeSet;
}

/** ANY is answered with one RRset the node has (RFC 8482), the first in ANY_PREFERENCE order. */
function anyTemplate(node: BuildNode, types: number[], templates: AnswerTemplate[], nodata: AnswerTemplate): AnswerTemplate {
  for (const t of [...ANY_PREFERENCE, ...node.rrsets.keys()]) {
    const i = types.indexOf(t);
    if (i >= 0 && node.rrsets.has(t)) return templates[i];
  }
  return nodata;
}

/** Links: the delegation above each node, the wildcard child of each node. */
function linkDelegationsAndWildcards(built: Map<string, NameNode>, cuts: BuildNode[]): void {
  for (const node of built.values()) {
    const cut = cutAbove(cuts, node.key);
    if (cut) node.delegation = built.get(keyString(cut.key)) ?? null;
    if (node.key[0] === 1 && node.key[1] === 0x2a) {
      const parent = built.get(keyString(node.key.subarray(2)));
      if (parent) parent.wildcard = node;
    }
  }
}

function countLabels(key: Uint8Array): number {
  let n = 0;
  for (let i = 0; key[i] !== 0; i += key[i] + 1) n++;
  return n;
}

function findNode(names: NameTable, key: Uint8Array): NameNode | null {
  let node = names.buckets[hashName(key) & names.mask];
  while (node !== null && !(node.key.length === key.length && node.key.every((b, i) => b === key[i]))) node = node.next;
  return node;
}

/**
 * Publishes the active set's content hash as a TXT record (the hash_record
 * setting), so anyone can check with dig which configuration an instance
 * serves. The name must be directly below a served zone's apex and have no
 * other records. Returns an error message, or null when added.
 */
export function addHashRecord(names: NameTable, zones: ZoneTables[], nameText: string, hash: string): string | null {
  let wire: Uint8Array;
  try {
    wire = nameToWire(nameText.endsWith('.') ? nameText : `${nameText}.`);
  } catch (err) {
    return `hash_record "${nameText}": ${(err as Error).message}`;
  }
  const key = lowerWire(wire);
  const parent = key.subarray(key[0] + 1);
  const zone = zones.find((z) => z.apex.length === parent.length && z.apex.every((b, i) => b === parent[i]));
  if (!zone) return `hash_record "${nameText}" must be directly below the apex of a served zone (${zones.map((z) => z.apexText).join(', ')})`;
  // The hash is known only after the zones compile and sign, and a name added
  // then is in no NSEC chain: the TXT would be unsigned and the chain would
  // deny it, so a validating resolver calls it bogus. Refused, not served.
  if (findNode(names, zone.apex)?.otherTypes.signed !== undefined) {
    return `hash_record "${nameText}" is in the signed zone ${zone.apexText}, where it could not be signed; put it below an unsigned zone's apex or remove the setting`;
  }
  const hashed = hashName(key);
  if (findNode(names, key) !== null) return `hash_record "${nameText}" already has records; pick a name of its own`;
  const answer = new TemplateBuilder(zone.apex).add(SECTION_ANSWER, 'qname', TYPE_TXT, 60, encodeTxt(hash)).build(RCODE_NOERROR, true);
  insertName(names, {
    key, hash: hashed, next: null, zone, text: wireToName(wire), delegation: null, referral: null, parentSideDs: null, wildcard: null,
    types: Int32Array.of(TYPE_TXT), templates: [answer], otherTypes: zone.nodata, any: answer, steeredIndex: -1,
  });
  return null;
}
