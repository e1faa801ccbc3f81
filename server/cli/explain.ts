// popsteer explain: the decision's whole trace for one client, from the
// configuration on disk (or a running server's admin API with --server).

import { existsSync } from 'node:fs';
import { explain, formatExplain } from '../engine/explain.ts';
import { loadGeoForCommand, resolveCommand } from './common.ts';
import { readOverrides } from '../health/overrides.ts';
import { createHealthTable } from '../health/table.ts';
import { loadSnapshot } from '../policy/load.ts';

export const EXPLAIN_HELP = `Usage: popsteer explain --name <name> [--client <cidr|ip>] [--resolver <ip>] [--down id,id] [--pop <id>] [--type A|AAAA] [--json] [--config dir]

Prints why a client gets its answer: the deciding network and where it came
from, the location, the rule matched, each step with the candidates it kept
and dropped, the answer, its TTL and ECS scope. Runs the same query path as
the server, on the configuration in --config, with the overrides in the state
file and the PoPs in --down taken as down. --pop sets the PoP that received
the query (self).

Exit status: 0 explained, 1 an invalid configuration or geo data, 2 bad usage
(a missing --name, an unknown option, a client that is not an address).`;

export async function runExplainCommand(args: string[]): Promise<number> {
  const resolved = resolveCommand(args, {
      name: { type: 'string' }, client: { type: 'string' }, resolver: { type: 'string' }, down: { type: 'string' },
      type: { type: 'string' }, json: { type: 'boolean' },
    });
  if (typeof resolved === 'number') return resolved;
  const { settings, extra } = resolved;
  const name = extra.name as string | undefined;
  if (!name) {
    process.stderr.write(`popsteer explain: --name is required\n\n${EXPLAIN_HELP}\n`);
    return 2;
  }
  const geo = loadGeoForCommand(settings);
  if (typeof geo === 'number') return geo;
  const loaded = loadSnapshot(settings.configDir, geo.context, settings.pop);
  if (!loaded.snapshot) {
    for (const e of loaded.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
    return 1;
  }
  const health = new Int32Array(createHealthTable(geo.catalog.count));
  const notes = new Map<string, string>();
  if (settings.stateFile && existsSync(settings.stateFile)) {
    let stored: ReturnType<typeof readOverrides> = new Map();
    try {
      stored = readOverrides(settings.stateFile);
    } catch (err) {
      process.stderr.write(`popsteer: overrides not applied: ${(err as Error).message}\n`);
    }
    for (const [id, o] of stored) {
      const i = geo.catalog.ids.indexOf(id);
      if (i < 0) continue;
      health[3 + i] = o.kind === 'force-up' ? 1 : 0;
      notes.set(id, `override ${o.kind}: ${o.reason}`);
    }
  }
  const type = extra.type === 'AAAA' ? 'AAAA' : 'A';
  try {
    const result = explain(
      { snapshot: loaded.snapshot, geo: geo.context.index, health, subjects: geo.catalog.ids, selfPop: settings.pop, overrides: notes },
      {
        name, client: extra.client as string | undefined, resolver: extra.resolver as string | undefined, type,
        down: typeof extra.down === 'string' ? extra.down.split(',').map((s) => s.trim()).filter(Boolean) : [],
      },
    );
    process.stdout.write(extra.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatExplain(result)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`popsteer explain: ${(err as Error).message}\n`);
    return 2;
  }
}
