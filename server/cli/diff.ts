// popsteer diff: how answers move between two policy sets, over a sample of
// client networks (a file of CIDRs with optional query counts).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { WhatIf } from '../engine/what-if.ts';
import { loadGeoForCommand, resolveCommand } from './common.ts';
import { createHealthTable } from '../health/table.ts';
import { readDnstapClients } from '../dnstap/read.ts';
import { loadSnapshot } from '../policy/load.ts';

export const DIFF_HELP = `Usage: popsteer diff --from <dir> --to <dir> [--sample <file> | --clients-dnstap <file>] [--name <name>] [--json] [--limit n]

For each steered name and each client network in the sample, compares the
answer under the policy set in --from with the one in --to (all PoPs up):
the share of traffic per PoP before and after, and the networks that change
with the rule that decided each, before and after (the decider's own record).
The sample is a text file with one CIDR per line, optionally followed by a
query count used as its weight; # starts a comment. Default sample:
policies/samples/geolite2-networks.txt (drawn from the bundled GeoLite2 data).
--clients-dnstap takes the client networks from a dnstap log instead (a
Frame Streams file, e.g. popsteer serve --dnstap file:…), each weighted by
its queries: replays real traffic against both sets.

Exit status: 0 compared, 1 an invalid policy set or geo data, 2 bad usage (a
missing --from/--to, an unknown option, an unreadable sample).`;

interface SampleEntry { cidr: string; weight: number }

function readSample(file: string): SampleEntry[] {
  const entries: SampleEntry[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [cidr, count] = line.split(/\s+/);
    const weight = count === undefined ? 1 : Number(count);
    if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(cidr) || !(weight >= 0)) throw new Error(`${file}:${i + 1}: expected "CIDR [count]", got "${raw.trim()}"`);
    entries.push({ cidr, weight });
  });
  return entries;
}

/**
 * `popsteer diff`: loads both sets, replays the client sample through each and
 * prints what changes. One function a little past a screen: arguments, the
 * two loads, the sample, the report, each step short and in order.
 */
export async function runDiffCommand(args: string[]): Promise<number> {
  const resolved = resolveCommand(args, {
      from: { type: 'string' }, to: { type: 'string' }, sample: { type: 'string' }, 'clients-dnstap': { type: 'string' }, name: { type: 'string' },
      json: { type: 'boolean' }, limit: { type: 'string' },
    });
  if (typeof resolved === 'number') return resolved;
  const { settings, extra } = resolved;
  if (!extra.from || !extra.to) {
    process.stderr.write(`popsteer diff: --from and --to are required\n\n${DIFF_HELP}\n`);
    return 2;
  }
  const sampleFile = resolve(process.cwd(), (extra.sample as string | undefined) ?? 'policies/samples/geolite2-networks.txt');
  let sample: SampleEntry[];
  try {
    const dnstapFile = extra['clients-dnstap'] as string | undefined;
    sample = dnstapFile ? readDnstapClients(resolve(process.cwd(), dnstapFile)) : readSample(sampleFile);
  } catch (err) {
    process.stderr.write(`popsteer diff: ${(err as Error).message}\n`);
    return 2;
  }
  const geo = loadGeoForCommand(settings);
  if (typeof geo === 'number') return geo;
  const health = new Int32Array(createHealthTable(geo.catalog.count));
  const sets = [extra.from as string, extra.to as string].map((dir) => loadSnapshot(resolve(process.cwd(), dir), geo.context, settings.pop));
  for (const [i, set] of sets.entries()) {
    if (!set.snapshot) {
      for (const e of set.errors) process.stderr.write(`popsteer: ${e.format()}\n`);
      process.stderr.write(`popsteer diff: the ${i === 0 ? '--from' : '--to'} set is invalid\n`);
      return 1;
    }
  }
  // Every PoP up and no load: the difference is the policies', not the moment's.
  const [before, after] = sets.map((s) => new WhatIf(s.snapshot!, { health, signals: null, ecsTrust: [] }, settings.pop));
  const names = [...new Set([...before.steeredNames(), ...after.steeredNames()])].filter((n) => !extra.name || n === extra.name || n === `${extra.name}.`);
  const limit = Number(extra.limit ?? 20);
  const report = names.map((name) => {
    const shareBefore = new Map<string, number>();
    const shareAfter = new Map<string, number>();
    const changes: Array<{ network: string; weight: number; from: string; to: string; rule_from: string; rule_to: string }> = [];
    let total = 0;
    let moved = 0;
    for (const { cidr, weight } of sample) {
      const a = before.outcome(name, cidr);
      const ruleFrom = before.lastRule();
      const b = after.outcome(name, cidr);
      const ruleTo = after.lastRule();
      total += weight;
      shareBefore.set(a, (shareBefore.get(a) ?? 0) + weight);
      shareAfter.set(b, (shareAfter.get(b) ?? 0) + weight);
      if (a !== b) {
        moved += weight;
        changes.push({ network: cidr, weight, from: a, to: b, rule_from: ruleFrom, rule_to: ruleTo });
      }
    }
    const keys = [...new Set([...shareBefore.keys(), ...shareAfter.keys()])].sort();
    const pct = (v: number | undefined): number => Math.round(((v ?? 0) / (total || 1)) * 1000) / 10;
    return {
      name, networks: sample.length, moved_percent: pct(moved),
      shares: keys.map((k) => ({ answer: k, before_percent: pct(shareBefore.get(k)), after_percent: pct(shareAfter.get(k)) })),
      changes: changes.sort((x, y) => y.weight - x.weight),
    };
  });
  if (extra.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  for (const r of report) {
    process.stdout.write(`${r.name}  ${r.changes.length} of ${r.networks} networks change (${r.moved_percent}% of the weight)\n`);
    for (const s of r.shares) {
      if (s.before_percent === 0 && s.after_percent === 0) continue;
      const delta = Math.round((s.after_percent - s.before_percent) * 10) / 10;
      process.stdout.write(`  ${s.answer.padEnd(36)} ${String(s.before_percent).padStart(5)}% → ${String(s.after_percent).padStart(5)}%${delta !== 0 ? `  (${delta > 0 ? '+' : ''}${delta})` : ''}\n`);
    }
    for (const c of r.changes.slice(0, limit)) {
      const rules = c.rule_from === c.rule_to ? `rule ${c.rule_to}` : `rule ${c.rule_from} → ${c.rule_to}`;
      process.stdout.write(`  ${c.network.padEnd(20)} ${c.from} → ${c.to}  (${rules})\n`);
    }
    if (r.changes.length > limit) process.stdout.write(`  … and ${r.changes.length - limit} more (--limit, --json)\n`);
  }
  return 0;
}
