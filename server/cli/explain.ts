// popsteer explain: the decision's whole trace for one client, from the
// configuration on disk. The health table and signals come from the same
// HealthService a starting server runs (probes configuration, overrides in
// the state file with their expiry honoured), so the offline answer is the
// one a server started with this configuration would give before its first
// probe round.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/errors.ts';
import type { Settings } from '../config/settings.ts';
import { explain, formatExplain, type ExplainRequest } from '../engine/explain.ts';
import type { LoadedGeo } from '../geo-context.ts';
import { emptyProbesConfig, loadProbesConfig } from '../health/config.ts';
import { HealthService } from '../health/service.ts';
import { readOverrides } from '../health/overrides.ts';
import { createHealthTable } from '../health/table.ts';
import { createLogger } from '../log/logger.ts';
import { loadSnapshot } from '../policy/load.ts';
import { createSignals, setNextPossibleChange } from '../steering/signals.ts';
import { loadGeoForCommand, resolveCommand } from './common.ts';

export const EXPLAIN_HELP = `Usage: popsteer explain --name <name> [--client <cidr|ip> | --clients <file>] [--resolver <ip>] [--down id,id] [--pop <id>] [--type A|AAAA] [--json] [--config dir]
       popsteer explain --live [--admin host:port] --name <name> [--client <cidr|ip>] [--resolver <ip>] [--down id,id] [--type A|AAAA] [--json]

Prints why a client gets its answer: the deciding network and the ECS scope
rule it falls under, the location, the rule matched, each step with the
candidates it kept and dropped, the answer, its TTL and ECS scope. Runs the
same query path as the server, on the configuration in --config, with the
health a starting server would have (probes configuration, unexpired
overrides in the state file) and the PoPs in --down taken as down. --pop
sets the PoP that received the query (self). A running server answers the
same question with its live health: GET /v1/explain, which --live asks (the
instance at --admin, default 127.0.0.1:8053): in a fleet its answer carries
the fleet's health verdict with its evidence. --clients explains every
client network in a file (one CIDR per line, "-" for a query without ECS,
# starts a comment) for each of the names in --name (comma-separated), name
by name; with --json the output is an array.

Exit status: 0 explained, 1 an invalid configuration or geo data, 2 bad usage
(a missing --name, an unknown option, a client that is not an address).`;

export async function runExplainCommand(args: string[]): Promise<number> {
  const resolved = resolveCommand(args, {
      name: { type: 'string' }, client: { type: 'string' }, clients: { type: 'string' }, resolver: { type: 'string' }, down: { type: 'string' },
      type: { type: 'string' }, json: { type: 'boolean' }, live: { type: 'boolean' },
    });
  if (typeof resolved === 'number') return resolved;
  const { settings, extra } = resolved;
  const name = extra.name as string | undefined;
  const names = (name ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (!name) {
    process.stderr.write(`popsteer explain: --name is required\n\n${EXPLAIN_HELP}\n`);
    return 2;
  }
  if (extra.live) return explainLive(settings, extra);
  const geo = loadGeoForCommand(settings);
  if (typeof geo === 'number') return geo;
  const loaded = loadSnapshot(settings.configDir, geo.context, settings.pop);
  if (!loaded.snapshot) {
    for (const e of loaded.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
    return 1;
  }
  let health: ReturnType<typeof startingHealth>;
  try {
    health = startingHealth(settings, geo);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`popsteer: ${err.format()}\n`);
    return 1;
  }
  const type = extra.type === 'AAAA' ? 'AAAA' : 'A';
  const context = {
    snapshot: loaded.snapshot, geo: geo.context, health: health.table, signals: health.signals, ecsTrust: settings.ecsTrust,
    subjects: geo.catalog.ids, selfPop: settings.pop, overrides: health.notes,
  };
  const request = (client: string | undefined, asked = name): ExplainRequest => ({
    name: asked, client, resolver: extra.resolver as string | undefined, type,
    down: typeof extra.down === 'string' ? extra.down.split(',').map((s) => s.trim()).filter(Boolean) : [],
  });
  try {
    if (typeof extra.clients === 'string') {
      const clients = readClients(extra.clients);
      const results = names.flatMap((asked) => clients.map(({ client, line }) => {
        try {
          return explain(context, request(client, asked));
        } catch (err) {
          throw new Error(`${extra.clients}:${line}: ${(err as Error).message}`);
        }
      }));
      process.stdout.write(extra.json ? `${JSON.stringify(results)}\n` : `${results.map(formatExplain).join('\n\n')}\n`);
      return 0;
    }
    const result = explain(context, request(extra.client as string | undefined));
    process.stdout.write(extra.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatExplain(result)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`popsteer explain: ${(err as Error).message}\n`);
    return 2;
  }
}

/** Asks a running instance (GET /v1/explain at --admin): its live health, the fleet's verdict included. */
async function explainLive(settings: Settings, extra: Record<string, unknown>): Promise<number> {
  if (extra.clients !== undefined) {
    process.stderr.write('popsteer explain: --live explains one client; --clients runs offline\n');
    return 2;
  }
  const query = new URLSearchParams({ name: String(extra.name), format: extra.json ? 'json' : 'text' });
  for (const key of ['client', 'resolver', 'down', 'type'] as const) if (typeof extra[key] === 'string') query.set(key, extra[key]);
  const admin = settings.admin ?? { host: '127.0.0.1', port: 8053 };
  const url = `http://${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${admin.port}/v1/explain?${query}`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    process.stderr.write(`popsteer explain: cannot reach the admin API at ${admin.host}:${admin.port}: ${(err as Error).message}\n`);
    return 1;
  }
  const body = await response.text();
  if (!response.ok) {
    process.stderr.write(`popsteer explain: ${response.status}: ${body}\n`);
    return response.status === 400 ? 2 : 1;
  }
  process.stdout.write(extra.json ? `${JSON.stringify(JSON.parse(body), null, 2)}\n` : body);
  return 0;
}

/** The client networks of a --clients file, with their line numbers ("-": no ECS). */
function readClients(file: string): Array<{ client: string | undefined; line: number }> {
  return readFileSync(file, 'utf8').split('\n').flatMap((raw, i) => {
    const text = raw.replace(/#.*/, '').trim();
    return text === '' ? [] : [{ client: text === '-' ? undefined : text, line: i + 1 }];
  });
}

/** Health table, signals and override notes as a server starting now with these settings would have them. */
function startingHealth(settings: Settings, geo: LoadedGeo): { table: Int32Array; signals: Float64Array; notes: Map<string, string> } {
  const ids = geo.catalog.ids;
  const probesFile = join(settings.geoDataDir, 'probes.yaml');
  const buffer = createHealthTable(ids.length);
  // The service starts without overrides when the state file is unreadable, as the server does; say so here.
  if (settings.stateFile && existsSync(settings.stateFile)) {
    try {
      readOverrides(settings.stateFile);
    } catch (err) {
      process.stderr.write(`popsteer: overrides not applied: ${(err as Error).message}\n`);
    }
  }
  const service = new HealthService({
    subjects: ids, config: existsSync(probesFile) ? loadProbesConfig(probesFile, ids) : emptyProbesConfig(),
    stateFile: settings.stateFile!, log: createLogger('silent', settings.pop), table: buffer,
  });
  const signals = new Float64Array(createSignals(ids.length));
  const now = Date.now();
  const notes = new Map<string, string>();
  for (const subject of service.status().subjects) {
    const i = ids.indexOf(subject.id);
    if (i < 0) continue;
    setNextPossibleChange(signals, i, now + service.secondsUntilPossibleChange(subject.id) * 1000);
    if (subject.override) notes.set(subject.id, `${subject.override.kind}: ${subject.override.reason}`);
  }
  return { table: new Int32Array(buffer), signals, notes };
}
