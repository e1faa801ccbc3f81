// A probe that cannot even open a socket says nothing about its target. The
// real server probes four real HTTP targets; then its descriptor limit is
// lowered below what it has open (prlimit on the running process, as an
// admin-port flood or a leak would leave it), so every probe fails with
// EMFILE. No target may go down, the cut-off guard must not fire, and each
// such probe is logged and counted in popsteer_health_not_probed_total. When
// descriptors are back, probing resumes where it was.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { geoDataWithHttpProbes } from '../helpers/probe-geo.ts';
import { startServer } from '../helpers/server.ts';

const PROBED = ['ams', 'fra', 'lhr', 'mad'];
const scratch = mkdtempSync(join(tmpdir(), 'popsteer-probe-fds-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Runs `during` while process `pid` can open no descriptor: its soft limit is
 * 3 (0, 1 and 2 are open, so any new one would be numbered at or above it).
 * The limit is put back whatever happens.
 */
async function exhaustDescriptors(pid: number, during: () => Promise<void>): Promise<void> {
  const original = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--output', 'SOFT', '--noheadings'], { encoding: 'utf8' }).trim();
  execFileSync('prlimit', ['--pid', String(pid), '--nofile=3:']);
  try {
    await during();
  } finally {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${original}:`]);
  }
}

test('probes that cannot open a socket (EMFILE) are "not probed": no target down, no cut-off, counted and logged', async () => {
  // The target answers 200 and announces each path it sees, so the test waits on requests, not on time.
  const seen = new EventEmitter();
  const answered = new Set<string>();
  const target: Target = await startHttpTarget((req, res) => {
    answered.add(req.url ?? '');
    seen.emit('request');
    res.writeHead(200).end('ok\n');
  });
  // Generous timeouts: a loaded machine must not make a real probe time out here.
  const geoData = geoDataWithHttpProbes(join(scratch, 'geo-data'), PROBED.map((pop) => ({ pop, target: `${pop}-http`, port: target.port, path: `/${pop}` })),
    ['defaults: { interval: 1s, timeout: 900ms, fall: 3, rise: 2 }', 'cut_off: { share: 0.5, min_targets: 3 }']);
  const server = await startServer({ args: ['--geo-data', geoData, '--log-level', 'debug'] });
  const pid = server.process.pid!;
  try {
    // Every target answered once: probing works.
    while (!PROBED.every((pop) => answered.has(`/${pop}`))) await once(seen, 'request', { signal: AbortSignal.timeout(60_000) });
    await exhaustDescriptors(pid, async () => {
      const verdict = await Promise.race([
        Promise.all(PROBED.map((pop) => server.waitForNextLog((l) => l.msg === 'health: could not probe' && l.target === `${pop}-http` && Number(l.inARow) >= 4, 60_000)))
          .then(() => 'not probed, four times in a row, for every target'),
        server.waitForNextLog((l) => /health target down|likely cut off/.test(String(l.msg)), 60_000).then((l) => `${l.msg} ${JSON.stringify(l)}`),
      ]);
      assert.equal(verdict, 'not probed, four times in a row, for every target');
    });

    await Promise.all(PROBED.map((pop) => server.waitForNextLog((l) => l.msg === 'health: probing again' && l.target === `${pop}-http`, 60_000)));
    const warned = server.logs.filter((l) => l.msg === 'health: could not probe (no socket on this server); the target keeps its state');
    assert.deepEqual(warned.map((l) => l.target).sort(), PROBED.map((pop) => `${pop}-http`), 'one warning per target when it began');
    assert.ok(warned.every((l) => l.cause === 'EMFILE' && l.level === 40));
    assert.ok(!server.logs.some((l) => /health target down|likely cut off|health: .* down/.test(String(l.msg))), 'no target, PoP or cut-off change');

    const pops = (await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops`)).json()) as { cut_off: { active: boolean }; pops: Array<{ id: string; state: string }> };
    assert.equal(pops.cut_off.active, false);
    for (const pop of PROBED) assert.equal(pops.pops.find((p) => p.id === pop)!.state, 'up', `${pop} stayed up`);
    const metrics = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    for (const pop of PROBED) {
      const sample = new RegExp(`^popsteer_health_not_probed_total\\{[^}]*target="${pop}-http"[^}]*cause="EMFILE"[^}]*\\} (\\d+)$`, 'm').exec(metrics);
      assert.ok(sample && Number(sample[1]) >= 4, `${pop}-http counted as not probed: ${sample?.[0]}`);
      // A refused socket is "local", never a failure. A probe that timed out is a real failure a loaded
      // machine may cause once (fall: 3 keeps the target up); any other reason would be EMFILE misread.
      const failures = [...metrics.matchAll(/^popsteer_health_probe_failures_total\{([^}]*)\} ([1-9]\d*)$/gm)]
        .filter((m) => m[1].includes(`target="${pop}-http"`) && !m[1].includes('reason="timeout"'));
      assert.deepEqual(failures.map((m) => m[0]), [], `no failure but a timeout counted against ${pop}-http`);
    }
  } finally {
    await server.stop();
    await target.kill();
  }
});
