// A flood of 20,000 half-sent HTTP requests at the admin port (no token
// needed for that), 4,000 at a time, against the real server running under
// an open-file limit of 2,048, with the London and Frankfurt PoPs probed at real HTTP targets on
// loopback. Throughout the flood:
//
// - DNS over UDP (a checking query loop) and over TCP keep answering;
// - no PoP changes state (the probes still get their descriptors);
// - /v1/fitness, asked the way `popsteer anycast` asks it (a fresh connection
//   per check), answers fit every time;
//
// and the admin server sheds the flood at its connection cap, closing the
// rest at its header deadline.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { askAdminFitness } from '../../server/anycast/fitness-probe.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { TcpDnsConnection } from '../conformance/clients.ts';
import { readReply } from '../conformance/reply.ts';
import { TYPE, query } from '../conformance/wire.ts';
import { geoDataWithHttpProbes } from '../soak/probed-geo-data.ts';
import { answered, withQueryLoop } from '../soak/query-loop.ts';

const FLOOD_CONNECTIONS = 20_000;
/** Connections the flood keeps open at once: more than the server's open-file limit. */
const FLOOD_WINDOW = 4000;
/** The flood's source addresses: four of them, so ephemeral ports never run short. */
const FLOOD_SOURCES = ['127.0.5.1', '127.0.5.2', '127.0.5.3', '127.0.5.4'];
const OPEN_FILE_LIMIT = 2048;
const ADMIN_TIMEOUT_MS = 2000;
/** Only catches a fitness check never answered; how long each took is reported, not judged. */
const FITNESS_TIMEOUT_MS = 10_000;
const FLOODER = fileURLToPath(new URL('../fixtures/admin/flooder.ts', import.meta.url));

let server: StartedServer;
let lhr: Target;
let fra: Target;

before(async () => {
  [lhr, fra] = await Promise.all([startHttpTarget(), startHttpTarget()]);
  server = await startServer({
    openFileLimit: OPEN_FILE_LIMIT,
    // Probes every second, down after two failures in a row: a busy machine does not fail them, EMFILE would.
    args: ['--geo-data', geoDataWithHttpProbes({ lhr: lhr.port, fra: fra.port }, 1000, 2), '--admin-timeout-ms', String(ADMIN_TIMEOUT_MS)],
  });
});
after(async () => {
  await server?.stop();
  for (const target of [lhr, fra]) await target?.kill().catch(() => {});
});

interface FloodResult { opened: number; failedToConnect: number; ms: number }

/** Runs the flood in a process of its own (test/fixtures/admin/flooder.ts), as an attacker would be. */
async function flood(port: number, total: number): Promise<FloodResult> {
  const child = spawn(process.execPath, [FLOODER, String(port), String(total), String(FLOOD_WINDOW), FLOOD_SOURCES.join(',')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += String(d); });
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, `the flooder exited with ${code}`);
  return JSON.parse(out) as FloodResult;
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
}

const sample = (text: string, pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? Number.NaN);
const transitions = (text: string): number => [...text.matchAll(/^popsteer_health_subject_transitions_total\{[^}]*\} (\S+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);

test(`${FLOOD_CONNECTIONS} half-sent admin connections: DNS answers over UDP and TCP, no PoP changes state, fitness stays fit`, async (t) => {
  const before = await metrics();
  const pops = async (): Promise<string> => JSON.stringify(((await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops`)).json()) as { pops: Array<{ id: string; state: string }> }).pops.map((p) => [p.id, p.state]));
  const popsBefore = await pops();

  let floodDone = false;
  const checks = { fitness: 0, unfit: [] as string[], slowestFitnessMs: 0, tcp: 0, tcpFailed: 0 };
  const stats = await withQueryLoop({
    port: server.dnsPort,
    everyMs: 20,
    questions: [
      { name: 'www.cdn.example', subnet: '81.2.69.0/24', check: answered },
      { name: 'status.cdn.example', check: answered },
    ],
  }, async () => {
    // While the flood runs: fitness as `popsteer anycast` asks it, and DNS over TCP, one after the other.
    const watch = (async () => {
      while (!floodDone) {
        const asked = performance.now();
        // The verdict is what counts here (refused, reset or unfit would withdraw the route); its latency is a figure.
        const verdict = await askAdminFitness({ host: '127.0.0.1', port: server.adminPort! }, FITNESS_TIMEOUT_MS);
        checks.slowestFitnessMs = Math.max(checks.slowestFitnessMs, performance.now() - asked);
        checks.fitness++;
        if (verdict.reasons.length > 0) checks.unfit.push(verdict.reasons.join('; '));
        const conn = await TcpDnsConnection.open(server.dnsPort).catch(() => null);
        checks.tcp++;
        if (conn === null) {
          checks.tcpFailed++;
          continue;
        }
        conn.send(query('www.cdn.example', TYPE.A, { id: checks.tcp & 0xffff }));
        const reply = await conn.next(FITNESS_TIMEOUT_MS);
        if (reply === null || readReply(reply).id !== (checks.tcp & 0xffff)) checks.tcpFailed++;
        conn.close();
      }
    })();
    const result = await flood(server.adminPort!, FLOOD_CONNECTIONS);
    floodDone = true;
    await watch;
    const after = await metrics();
    const evicted = sample(after, /^popsteer_admin_connections_shed_total\{action="evicted"[^}]*\} (\S+)/m);
    const refused = sample(after, /^popsteer_admin_connections_shed_total\{action="refused"[^}]*\} (\S+)/m);
    t.diagnostic(`flood of ${result.opened} connections in ${(result.ms / 1000).toFixed(1)} s (${result.failedToConnect} never connected); admin cap ${sample(after, /^popsteer_connection_limit\{[^}]*listener="admin"[^}]*\} (\S+)/m)} evicted ${evicted}, refused ${refused}; fitness ${checks.fitness - checks.unfit.length}/${checks.fitness} fit (slowest ${Math.round(checks.slowestFitnessMs)} ms); DNS over TCP ${checks.tcp - checks.tcpFailed}/${checks.tcp} answered`);
    assert.deepEqual(checks.unfit, [], 'fitness stayed fit');
    assert.ok(checks.fitness >= 3, `fitness asked ${checks.fitness} times during the flood`);
    assert.equal(checks.tcpFailed, 0, `DNS over TCP: ${checks.tcpFailed} of ${checks.tcp} failed`);
    // Every flood connection ends evicted, refused, or at the header deadline. A connection lives at least
    // the deadline, so those accepted within one deadline's span were all open at once: at most the cap of
    // them. The rest of the flood must have been shed at the cap (a loaded machine only moves the bound).
    const cap = sample(after, /^popsteer_connection_limit\{[^}]*listener="admin"[^}]*\} (\S+)/m);
    const closedAtDeadlineAtMost = cap * (Math.ceil(result.ms / ADMIN_TIMEOUT_MS) + 2);
    assert.ok(cap > 0 && cap < FLOOD_WINDOW, `admin cap ${cap}`);
    assert.ok(evicted + refused >= FLOOD_CONNECTIONS - closedAtDeadlineAtMost,
      `the cap shed the flood: ${evicted} evicted, ${refused} refused, at most ${closedAtDeadlineAtMost} closed at the deadline`);
    assert.equal(transitions(after), transitions(before), 'no PoP changed state');
  });
  t.diagnostic(`DNS over UDP during the flood: ${stats.answered}/${stats.sent} answered, ${stats.wrong} wrong`);
  assert.equal(stats.timeouts + stats.wrong, 0, `UDP failures: ${JSON.stringify(stats.problems)}`);
  assert.equal(await pops(), popsBefore, 'every PoP in the state it was in');
});
