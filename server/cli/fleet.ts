// popsteer fleet status: the instances of the fleet as one instance sees
// them (GET /v1/fleet on its admin API), one line each, and the fleet-wide
// overrides in force. A thin client: the server knows, this only prints.

import { parseArgs } from 'node:util';

export const FLEET_HELP = `Usage: popsteer fleet status [--admin host:port] [--json]

Lists the instances of this instance's fleet (--fleet): PoP, instance id,
connected or not, the policy revision it serves (popsteer publish; "local":
its own --config files) and any it refused, last heartbeat, and the targets
where its probes disagree with the fleet's verdict; then the health verdict
of every target with its evidence, and the fleet-wide overrides in force.

Options:
  --admin host:port    admin API address (default 127.0.0.1:8053, or POPSTEER_ADMIN)
  --json               print GET /v1/fleet as it is

Exit status: 0 listed, 1 unreachable or not in a fleet, 2 bad usage.`;

const DEFAULT_ADMIN = '127.0.0.1:8053';
const REQUEST_TIMEOUT_MS = 10_000;

interface FleetView {
  enabled: boolean;
  name?: string;
  pop: string;
  connected?: boolean;
  instances: Array<{
    pop: string; instance: string; self: boolean; connected: boolean; last_seen: string | null;
    revision?: number | null; revision_failed?: { revision: number; errors: string[] } | null;
    disagrees_with_verdict?: Array<{ target: string; sees: string; verdict: string }>;
  }>;
  health?: { source: string; observers_live: number; targets: Array<{ target: string; state: string; evidence: string; probers: string[] }> };
  overrides: Array<{ subject: string; action: string; reason: string; author: string; at: string; expires: string | null }>;
}

interface Output { out: { write(text: string): unknown }; err: { write(text: string): unknown } }

export async function runFleetCommand(args: string[], io: Output = { out: process.stdout, err: process.stderr }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { admin: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    io.err.write(`popsteer fleet: ${(err as Error).message}\n\n${FLEET_HELP}\n`);
    return 2;
  }
  if (parsed.values.help) {
    io.out.write(`${FLEET_HELP}\n`);
    return 0;
  }
  if (parsed.positionals.join(' ') !== 'status') {
    io.err.write(`popsteer fleet: the only command is "status"\n\n${FLEET_HELP}\n`);
    return 2;
  }
  const admin = parsed.values.admin ?? process.env.POPSTEER_ADMIN ?? DEFAULT_ADMIN;
  let view: FleetView;
  try {
    const response = await fetch(`http://${admin}/v1/fleet`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    view = await response.json() as FleetView;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    io.err.write(`popsteer fleet: cannot reach the admin API at ${admin}: ${cause}\n`);
    return 1;
  }
  if (parsed.values.json) {
    io.out.write(`${JSON.stringify(view, null, 2)}\n`);
    return 0;
  }
  if (!view.enabled) {
    io.err.write(`popsteer fleet: the instance at ${admin} (${view.pop}) is not in a fleet (serve --fleet)\n`);
    return 1;
  }
  io.out.write(describe(view, Date.now()));
  return 0;
}

/** Where health comes from, then each target's verdict with its evidence ("down: seen down by fra, lhr; …"). */
function describeHealth(health: NonNullable<FleetView['health']>): string[] {
  const source = health.source === 'fleet' ? `the fleet verdict (${health.observers_live} observers live)` : 'this instance\'s own probes (the fleet is out of reach)';
  return [`health: from ${source}`, ...health.targets.map((t) => `  ${t.target.padEnd(16)} ${t.evidence} (probed by ${t.probers.join(', ') || 'none'})`)];
}

function describe(view: FleetView, now: number): string {
  const lines = [`fleet ${view.name}: seen from ${view.pop}, ${view.connected ? 'connected' : 'NOT connected (last known state)'}`, 'instances:'];
  for (const i of view.instances) {
    const ago = i.last_seen === null ? 'never' : `${Math.max(0, Math.round((now - Date.parse(i.last_seen)) / 1000))}s ago`;
    const revision = `revision ${i.revision ?? 'local'}${i.revision_failed ? ` (revision ${i.revision_failed.revision} REFUSED: ${i.revision_failed.errors[0] ?? ''})` : ''}`;
    lines.push(`  ${i.pop.padEnd(8)} ${i.instance.padEnd(10)} ${(i.connected ? 'connected' : 'disconnected').padEnd(13)} ${revision}, last seen ${ago}${i.self ? ' (this instance)' : ''}`);
    for (const d of i.disagrees_with_verdict ?? []) lines.push(`           sees ${d.target} ${d.sees}, the verdict is ${d.verdict}`);
  }
  if (view.health !== undefined) lines.push(...describeHealth(view.health));
  const active = view.overrides.filter((o) => o.action !== 'undrain');
  lines.push(active.length === 0 ? 'overrides: none' : 'overrides:');
  for (const o of active) {
    lines.push(`  ${o.subject.padEnd(8)} ${o.action.padEnd(10)} ${o.reason} (by ${o.author}, ${o.at}${o.expires ? `, until ${o.expires}` : ''})`);
  }
  return `${lines.join('\n')}\n`;
}
