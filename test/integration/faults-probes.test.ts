// Probe targets flapping under a running server: the London and Frankfurt
// PoPs are probed at real HTTP targets on loopback that the test kills and
// restores again and again, while a client keeps asking. Every query must be
// answered correctly throughout: www for a UK network from London while it is
// up and from the next-nearest PoP while it is down; api from Frankfurt or its
// Amsterdam standby, never SERVFAIL (Amsterdam stays up); a static name as is.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, type StartedServer } from '../helpers/server.ts';
import { firstAnswer } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startHttpTarget, type Target } from '../fixtures/health/targets.ts';
import { geoDataWithHttpProbes } from '../soak/probed-geo-data.ts';
import { QueryLoop, answered, type LoopQuestion } from '../soak/query-loop.ts';

const FLAPS = 3;
const UK = '81.2.69.0/24';

let server: StartedServer;
let lhr: Target;
let fra: Target;

before(async () => {
  [lhr, fra] = await Promise.all([startHttpTarget(), startHttpTarget()]);
  server = await startServer({ admin: false, args: ['--geo-data', geoDataWithHttpProbes({ lhr: lhr.port, fra: fra.port })] });
});
after(async () => {
  await server?.stop();
  for (const target of [lhr, fra]) await target?.kill().catch(() => {});
});

const popAnswering = (reply: Parameters<LoopQuestion['check']>[0]): string => {
  try {
    return popOf(firstAnswer(reply));
  } catch {
    return `not a PoP: ${firstAnswer(reply)}`;
  }
};

const QUESTIONS: LoopQuestion[] = [
  {
    name: 'www.cdn.example', subnet: UK,
    check: (r) => answered(r) ?? (['lhr', 'ams'].includes(popAnswering(r)) ? null : `www for the UK from ${popAnswering(r)}`),
  },
  {
    name: 'api.cdn.example',
    check: (r) => answered(r) ?? (['fra', 'ams'].includes(popAnswering(r)) ? null : `api from ${popAnswering(r)}`),
  },
  { name: 'status.cdn.example', check: (r) => answered(r) ?? (firstAnswer(r) === '203.0.113.80' ? null : `status ${firstAnswer(r)}`) },
];

/** Waits (in query rounds, bounded) until the loop's latest www and api answers come from the given PoPs. */
async function untilServing(loop: QueryLoop, latest: { www: string; api: string }, www: string, api: string): Promise<void> {
  for (let round = 0; round < 200 && (latest.www !== www || latest.api !== api); round++) await loop.rounds(1);
  assert.deepEqual(latest, { www, api });
}

test('flapping probe targets move answers back and forth, and every query is answered correctly throughout', async () => {
  const latest = { www: '', api: '' };
  const loop = QueryLoop.start({
    port: server.dnsPort, questions: QUESTIONS, everyMs: 10,
    label: (q, r) => {
      const pop = popAnswering(r);
      if (q.name.startsWith('www')) latest.www = pop;
      if (q.name.startsWith('api')) latest.api = pop;
      return `${q.name.split('.')[0]}:${pop}`;
    },
  });
  try {
    await untilServing(loop, latest, 'lhr', 'fra');
    for (let flap = 0; flap < FLAPS; flap++) {
      await Promise.all([lhr.kill(), fra.kill()]);
      await untilServing(loop, latest, 'ams', 'ams');
      await Promise.all([lhr.restore(), fra.restore()]);
      await untilServing(loop, latest, 'lhr', 'fra');
    }
  } finally {
    const stats = await loop.stop();
    assert.equal(stats.timeouts + stats.wrong, 0, `failures: ${JSON.stringify(stats)}`);
    assert.ok(stats.answered > 100, `queries answered: ${stats.answered}`);
    for (const label of ['www:lhr', 'www:ams', 'api:fra', 'api:ams']) assert.ok((stats.labels[label] ?? 0) > 0, `${label} seen: ${JSON.stringify(stats.labels)}`);
  }
  const transitions = server.logs.filter((l) => typeof l.msg === 'string' && /^health: (lhr|fra) (up|down)$/.test(l.msg));
  assert.ok(transitions.length >= FLAPS * 4, `health transitions logged: ${transitions.length}`);
});
