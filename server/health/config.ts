// probes.yaml → a normalized, validated probe configuration (slow path only).
// Schema first (shape, defaults), then meaning: timeouts below intervals,
// known PoPs and targets, quorums that can be met, keys that fit the kind.

import { ConfigError, ConfigErrors } from '../config/errors.ts';
import { readYamlFile, type YamlSource } from '../config/yaml-source.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import { parseDurationMs } from './duration.ts';

export type ProbeKind = 'http' | 'https' | 'tcp' | 'dns' | 'external';
export type InitialState = 'up' | 'wait';

export interface ProbeTarget {
  /** Stable id: the name under `targets`, or a readable key for inline definitions. */
  id: string;
  kind: ProbeKind;
  host: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
  fall: number;
  rise: number;
  // http/https
  method: string;
  path: string;
  hostHeader: string;
  /** Accepted status ranges, inclusive: [[200, 299]]. */
  status: Array<[number, number]>;
  body: string | null;
  sni: string | null;
  verifyTls: boolean;
  // dns
  queryName: string;
  queryType: string;
  rcode: string;
  answer: string | null;
}

export interface SubjectProbes {
  /** Indexes into ProbesConfig.targets. */
  targets: number[];
  quorum: number;
}

export interface ProbesConfig {
  file: string;
  initialState: InitialState;
  maxInFlight: number;
  cutOff: { enabled: boolean; share: number; minTargets: number; windowMs: number };
  targets: ProbeTarget[];
  /** Probes per subject id (PoPs and endpoints); subjects absent here have none. */
  subjects: Map<string, SubjectProbes>;
}

const CODE_SCHEMA = 'POPSTEER_ERR_PROBES_SCHEMA';

/** Keys that only make sense for some kinds; any other kind naming them is an error. */
const KEYS_BY_KIND: Record<string, ProbeKind[]> = {
  host: ['http', 'https', 'tcp', 'dns'],
  port: ['http', 'https', 'tcp', 'dns'],
  method: ['http', 'https'],
  path: ['http', 'https'],
  host_header: ['http', 'https'],
  status: ['http', 'https'],
  body: ['http', 'https'],
  tls: ['https'],
  name: ['dns'],
  type: ['dns'],
  rcode: ['dns'],
  answer: ['dns'],
};

export function loadProbesConfig(file: string, subjectIds: readonly string[]): ProbesConfig {
  return parseProbesConfig(readYamlFile(file), subjectIds);
}

/** Throws ConfigErrors with every problem found (codes POPSTEER_ERR_PROBES_*). */
export function parseProbesConfig(source: YamlSource, subjectIds: readonly string[]): ProbesConfig {
  if (source.data === null || source.data === undefined) source.data = {};
  const schemaErrors = validateAgainstSchema('probes', source, CODE_SCHEMA);
  if (schemaErrors.length > 0) throw new ConfigErrors(schemaErrors);
  const doc = source.data as RawDocument;
  const errors: ConfigError[] = [];
  const fail = (code: string, pointer: string, message: string): void => {
    errors.push(new ConfigError(code, source.file, source.position(pointer), pointer, message));
  };

  const defaults = doc.defaults;
  const defaultInterval = parseDurationMs(defaults.interval)!;
  const defaultTimeout = parseDurationMs(defaults.timeout)!;
  if (defaultTimeout >= defaultInterval) {
    fail('POPSTEER_ERR_PROBES_TIMEOUT', '/defaults/timeout', `timeout ${defaults.timeout} must be below interval ${defaults.interval} (a probe must finish before the next one starts)`);
  }

  const targets: ProbeTarget[] = [];
  const byIdentity = new Map<string, number>();
  const byName = new Map<string, number>();
  const addTarget = (raw: RawTarget, name: string | null, pointer: string): number => {
    for (const key of Object.keys(raw)) {
      const kinds = KEYS_BY_KIND[key];
      if (kinds && !kinds.includes(raw.kind)) {
        fail('POPSTEER_ERR_PROBES_KEY_FOR_KIND', `${pointer}/${key}`, `"${key}" does not apply to a ${raw.kind} probe (it applies to ${kinds.join(', ')})`);
      }
    }
    if (raw.kind !== 'external' && (raw.host === undefined || raw.port === undefined)) {
      fail(CODE_SCHEMA, pointer, `a ${raw.kind} probe needs "host" and "port"`);
    }
    if (raw.kind === 'dns' && raw.name === undefined) fail(CODE_SCHEMA, pointer, 'a dns probe needs "name" (the name to query)');
    if (raw.kind === 'external' && name === null) fail(CODE_SCHEMA, pointer, 'an external target needs a name under "targets" (the feed pushes state by that name)');
    const intervalMs = raw.interval === undefined ? defaultInterval : parseDurationMs(raw.interval)!;
    const timeoutMs = raw.timeout === undefined ? defaultTimeout : parseDurationMs(raw.timeout)!;
    if (timeoutMs >= intervalMs && (raw.interval !== undefined || raw.timeout !== undefined)) {
      const where = raw.timeout !== undefined ? `${pointer}/timeout` : `${pointer}/interval`;
      fail('POPSTEER_ERR_PROBES_TIMEOUT', where, `timeout ${timeoutMs}ms must be below interval ${intervalMs}ms`);
    }
    const status: Array<[number, number]> = [];
    (raw.status ?? ['200-299']).forEach((entry, i) => {
      const [lo, hi = lo] = typeof entry === 'number' ? [entry] : entry.split('-').map(Number);
      if (lo > hi) fail(CODE_SCHEMA, `${pointer}/status/${i}`, `status range "${entry}" is empty (write low-high)`);
      status.push([lo, hi]);
    });
    const host = raw.host ?? '';
    const port = raw.port ?? 0;
    const path = raw.path ?? '/';
    const target: ProbeTarget = {
      id: name ?? inlineId(raw.kind, host, port, raw.kind === 'dns' ? `/${raw.name}` : path),
      kind: raw.kind,
      host,
      port,
      intervalMs,
      timeoutMs,
      fall: raw.fall ?? defaults.fall,
      rise: raw.rise ?? defaults.rise,
      method: raw.method ?? 'GET',
      path,
      hostHeader: raw.host_header ?? host,
      status,
      body: raw.body ?? null,
      sni: raw.tls?.sni ?? null,
      verifyTls: raw.tls?.verify ?? true,
      queryName: raw.name ?? '',
      queryType: raw.type ?? 'A',
      rcode: raw.rcode ?? 'NOERROR',
      answer: raw.answer ?? null,
    };
    // Everything that changes what is probed, or how its state is judged.
    // External targets are identified by name only (the feed pushes by name).
    const identity = target.kind === 'external' ? `external:${target.id}` : JSON.stringify({ ...target, id: undefined });
    const existing = byIdentity.get(identity);
    if (existing !== undefined) return existing;
    targets.push(target);
    byIdentity.set(identity, targets.length - 1);
    return targets.length - 1;
  };

  for (const [name, raw] of Object.entries(doc.targets ?? {})) {
    byName.set(name, addTarget(raw, name, `/targets/${escapePointer(name)}`));
  }

  const known = new Set(subjectIds);
  const subjects = new Map<string, SubjectProbes>();
  for (const section of ['pops', 'endpoints'] as const) {
    for (const [subjectId, raw] of Object.entries(doc[section] ?? {})) {
      const pointer = `/${section}/${escapePointer(subjectId)}`;
      if (!known.has(subjectId)) {
        fail('POPSTEER_ERR_PROBES_UNKNOWN_POP', pointer, `"${subjectId}" is not a known ${section === 'pops' ? 'PoP (see the PoP catalog)' : 'endpoint'}`);
        continue;
      }
      if (subjects.has(subjectId)) {
        fail(CODE_SCHEMA, pointer, `"${subjectId}" is listed twice (under pops and endpoints)`);
        continue;
      }
      const indexes: number[] = [];
      raw.probes.forEach((probe, i) => {
        let index: number | undefined;
        if (typeof probe === 'string') {
          index = byName.get(probe);
          if (index === undefined) {
            fail('POPSTEER_ERR_PROBES_UNKNOWN_TARGET', `${pointer}/probes/${i}`, `no target named "${probe}" under "targets"`);
            return;
          }
        } else {
          index = addTarget(probe, null, `${pointer}/probes/${i}`);
        }
        if (!indexes.includes(index)) indexes.push(index);
      });
      const quorum = raw.quorum ?? indexes.length;
      if (quorum > indexes.length) {
        fail('POPSTEER_ERR_PROBES_QUORUM', `${pointer}/quorum`, `quorum ${quorum} can never be met by ${indexes.length} distinct probe(s)`);
      }
      subjects.set(subjectId, { targets: indexes, quorum });
    }
  }
  if (errors.length > 0) throw new ConfigErrors(errors);

  const cutOff = doc.cut_off;
  return {
    file: source.file,
    initialState: defaults.initial_state,
    maxInFlight: doc.max_in_flight,
    cutOff: {
      enabled: cutOff.enabled,
      share: cutOff.share,
      minTargets: cutOff.min_targets,
      windowMs: cutOff.window === undefined ? defaultInterval * (defaults.fall + 1) : parseDurationMs(cutOff.window)!,
    },
    targets,
    subjects,
  };
}

/** A config with no probes at all: every subject is up unless overridden. */
export function emptyProbesConfig(): ProbesConfig {
  return {
    file: '(none)', initialState: 'up', maxInFlight: 256,
    cutOff: { enabled: true, share: 0.5, minTargets: 3, windowMs: 6000 },
    targets: [], subjects: new Map(),
  };
}

function inlineId(kind: ProbeKind, host: string, port: number, path: string): string {
  const address = host.includes(':') ? `[${host}]` : host;
  return `${kind}://${address}:${port}${kind === 'tcp' ? '' : path}`;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

// The document as the schema guarantees it (defaults filled in).
interface RawTarget {
  kind: ProbeKind;
  host?: string;
  port?: number;
  interval?: number | string;
  timeout?: number | string;
  fall?: number;
  rise?: number;
  method?: string;
  path?: string;
  host_header?: string;
  status?: Array<number | string>;
  body?: string;
  tls?: { sni?: string; verify?: boolean };
  name?: string;
  type?: string;
  rcode?: string;
  answer?: string;
}

interface RawSubject {
  probes: Array<string | RawTarget>;
  quorum?: number;
}

interface RawDocument {
  defaults: { interval: number | string; timeout: number | string; fall: number; rise: number; initial_state: InitialState };
  max_in_flight: number;
  cut_off: { enabled: boolean; share: number; min_targets: number; window?: number | string };
  targets?: Record<string, RawTarget>;
  pops?: Record<string, RawSubject>;
  endpoints?: Record<string, RawSubject>;
}
