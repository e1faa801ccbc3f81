// probes.yaml → a normalized, validated probe configuration (slow path only).
// Schema first (shape, defaults), then meaning: timeouts below intervals,
// known PoPs and targets, quorums that can be met, keys that fit the kind.

import { ConfigError, ConfigErrors, type ErrorCode } from '../config/errors.ts';
import { readYamlFile, type YamlSource } from '../config/yaml-source.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import { parseVerdictRule, type VerdictRule } from '../config/verdict-rule.ts';
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
  /** In a fleet: this target's verdict rule; null for fleet.verdict. */
  verdict: VerdictRule | null;
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

const CODE_SCHEMA: ErrorCode = 'POPSTEER_ERR_PROBES_SCHEMA';

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
  const parser = new ProbesParser(source, doc.defaults);
  for (const [name, raw] of Object.entries(doc.targets ?? {})) parser.addNamedTarget(name, raw);
  const known = new Set(subjectIds);
  for (const section of ['pops', 'endpoints'] as const) {
    for (const [subjectId, raw] of Object.entries(doc[section] ?? {})) parser.addSubject(section, subjectId, raw, known);
  }
  if (parser.errors.length > 0) throw new ConfigErrors(parser.errors);

  const cutOff = doc.cut_off;
  return {
    file: source.file,
    initialState: doc.defaults.initial_state,
    maxInFlight: doc.max_in_flight,
    cutOff: {
      enabled: cutOff.enabled,
      share: cutOff.share,
      minTargets: cutOff.min_targets,
      windowMs: cutOff.window === undefined ? parser.defaultInterval * (doc.defaults.fall + 1) : parseDurationMs(cutOff.window)!,
    },
    targets: parser.targets,
    subjects: parser.subjects,
  };
}

/** Collects targets (one per distinct probe) and subjects from a schema-checked document, and every problem on the way. */
class ProbesParser {
  readonly errors: ConfigError[] = [];
  readonly targets: ProbeTarget[] = [];
  readonly subjects = new Map<string, SubjectProbes>();
  readonly defaultInterval: number;
  private readonly defaultTimeout: number;
  private readonly defaults: RawDocument['defaults'];
  private readonly source: YamlSource;
  private readonly byIdentity = new Map<string, number>();
  private readonly byName = new Map<string, number>();

  constructor(source: YamlSource, defaults: RawDocument['defaults']) {
    this.source = source;
    this.defaults = defaults;
    this.defaultInterval = parseDurationMs(defaults.interval)!;
    this.defaultTimeout = parseDurationMs(defaults.timeout)!;
    if (this.defaultTimeout >= this.defaultInterval) {
      this.fail('POPSTEER_ERR_PROBES_TIMEOUT', '/defaults/timeout', `timeout ${defaults.timeout} must be below interval ${defaults.interval} (a probe must finish before the next one starts)`);
    }
  }

  fail(code: ErrorCode, pointer: string, message: string): void {
    this.errors.push(new ConfigError(code, this.source.file, this.source.position(pointer), pointer, message));
  }

  addNamedTarget(name: string, raw: RawTarget): void {
    this.byName.set(name, this.addTarget(raw, name, `/targets/${escapePointer(name)}`));
  }

  /** A PoP or endpoint with its probes (names of targets, or inline targets) and quorum. */
  addSubject(section: 'pops' | 'endpoints', subjectId: string, raw: RawSubject, known: ReadonlySet<string>): void {
    const pointer = `/${section}/${escapePointer(subjectId)}`;
    if (!known.has(subjectId)) {
      this.fail('POPSTEER_ERR_PROBES_UNKNOWN_POP', pointer, `"${subjectId}" is not a known ${section === 'pops' ? 'PoP (see the PoP catalog)' : 'endpoint'}`);
      return;
    }
    if (this.subjects.has(subjectId)) {
      this.fail(CODE_SCHEMA, pointer, `"${subjectId}" is listed twice (under pops and endpoints)`);
      return;
    }
    const indexes: number[] = [];
    raw.probes.forEach((probe, i) => {
      let index: number | undefined;
      if (typeof probe === 'string') {
        index = this.byName.get(probe);
        if (index === undefined) {
          this.fail('POPSTEER_ERR_PROBES_UNKNOWN_TARGET', `${pointer}/probes/${i}`, `no target named "${probe}" under "targets"`);
          return;
        }
      } else {
        index = this.addTarget(probe, null, `${pointer}/probes/${i}`);
      }
      if (!indexes.includes(index)) indexes.push(index);
    });
    const quorum = raw.quorum ?? indexes.length;
    if (quorum > indexes.length) {
      this.fail('POPSTEER_ERR_PROBES_QUORUM', `${pointer}/quorum`, `quorum ${quorum} can never be met by ${indexes.length} distinct probe(s)`);
    }
    this.subjects.set(subjectId, { targets: indexes, quorum });
  }

  /** The index of the target `raw` describes; a probe identical to one already seen shares its index. */
  private addTarget(raw: RawTarget, name: string | null, pointer: string): number {
    this.checkKeys(raw, name, pointer);
    const target = this.targetOf(raw, name, pointer);
    // Everything that changes what is probed, or how its state is judged.
    // External targets are identified by name only (the feed pushes by name).
    const identity = target.kind === 'external' ? `external:${target.id}` : JSON.stringify({ ...target, id: undefined });
    const existing = this.byIdentity.get(identity);
    if (existing !== undefined) return existing;
    this.targets.push(target);
    this.byIdentity.set(identity, this.targets.length - 1);
    return this.targets.length - 1;
  }

  /** Keys that do not apply to the probe's kind, and keys the kind needs. */
  private checkKeys(raw: RawTarget, name: string | null, pointer: string): void {
    for (const key of Object.keys(raw)) {
      const kinds = KEYS_BY_KIND[key];
      if (kinds && !kinds.includes(raw.kind)) {
        this.fail('POPSTEER_ERR_PROBES_KEY_FOR_KIND', `${pointer}/${key}`, `"${key}" does not apply to a ${raw.kind} probe (it applies to ${kinds.join(', ')})`);
      }
    }
    if (raw.kind !== 'external' && (raw.host === undefined || raw.port === undefined)) {
      this.fail(CODE_SCHEMA, pointer, `a ${raw.kind} probe needs "host" and "port"`);
    }
    if (raw.kind === 'dns' && raw.name === undefined) this.fail(CODE_SCHEMA, pointer, 'a dns probe needs "name" (the name to query)');
    if (raw.kind === 'external' && name === null) this.fail(CODE_SCHEMA, pointer, 'an external target needs a name under "targets" (the feed pushes state by that name)');
  }

  private targetOf(raw: RawTarget, name: string | null, pointer: string): ProbeTarget {
    const intervalMs = raw.interval === undefined ? this.defaultInterval : parseDurationMs(raw.interval)!;
    const timeoutMs = raw.timeout === undefined ? this.defaultTimeout : parseDurationMs(raw.timeout)!;
    if (timeoutMs >= intervalMs && (raw.interval !== undefined || raw.timeout !== undefined)) {
      const where = raw.timeout !== undefined ? `${pointer}/timeout` : `${pointer}/interval`;
      this.fail('POPSTEER_ERR_PROBES_TIMEOUT', where, `timeout ${timeoutMs}ms must be below interval ${intervalMs}ms`);
    }
    const host = raw.host ?? '';
    const port = raw.port ?? 0;
    const path = raw.path ?? '/';
    return {
      id: name ?? inlineId(raw.kind, host, port, raw.kind === 'dns' ? `/${raw.name}` : path),
      kind: raw.kind,
      host,
      port,
      intervalMs,
      timeoutMs,
      fall: raw.fall ?? this.defaults.fall,
      rise: raw.rise ?? this.defaults.rise,
      method: raw.method ?? 'GET',
      path,
      hostHeader: raw.host_header ?? host,
      status: this.statusRanges(raw, pointer),
      body: raw.body ?? null,
      sni: raw.tls?.sni ?? null,
      verifyTls: raw.tls?.verify ?? true,
      queryName: raw.name ?? '',
      queryType: raw.type ?? 'A',
      rcode: raw.rcode ?? 'NOERROR',
      answer: raw.answer ?? null,
      verdict: this.verdictOf(raw, pointer),
    };
  }

  /** The target's verdict rule (the schema checked its shape). */
  private verdictOf(raw: RawTarget, pointer: string): VerdictRule | null {
    if (raw.verdict === undefined) return null;
    const rule = parseVerdictRule(raw.verdict);
    if (typeof rule !== 'string') return rule;
    this.fail(CODE_SCHEMA, `${pointer}/verdict`, rule);
    return null;
  }

  /** The accepted HTTP status ranges, [low, high] each. */
  private statusRanges(raw: RawTarget, pointer: string): Array<[number, number]> {
    const status: Array<[number, number]> = [];
    (raw.status ?? ['200-299']).forEach((entry, i) => {
      const [lo, hi = lo] = typeof entry === 'number' ? [entry] : entry.split('-').map(Number);
      if (lo > hi) this.fail(CODE_SCHEMA, `${pointer}/status/${i}`, `status range "${entry}" is empty (write low-high)`);
      status.push([lo, hi]);
    });
    return status;
  }
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
  verdict?: string | { more_than_percent: number };
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
