// The status page in a real browser (Debian's headless Chromium driven by
// playwright-core) against the real server: the page shows every PoP with its
// state, the traffic share and the map; draining a PoP through the admin API
// turns its row to "drained" and hands its whole map area to its neighbours.
// With --fleet the page gains a fleet panel (instances, the revision each
// serves, connected, last seen, the fleet-wide overrides); a drain through
// another instance shows there. Screenshots are kept in test-results/.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { TestDnsClient } from '../helpers/dns-client.ts';
import { startHttpTarget } from '../fixtures/health/targets.ts';
import { geoDataWithHttpProbes } from '../soak/probed-geo-data.ts';
import { startNatsCluster } from '../helpers/nats.ts';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'status-page-test-token';
const DRAINED = 'fra';
const SCREENSHOT = join(REPO_ROOT, 'test-results', 'status-page.png');

function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  execFileSync('flock', ['/tmp/apt.lock', ...sudo, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: 'inherit', timeout: 300_000 });
}

let server: StartedServer;
let browser: BrowserContext;
let page: Page;
let scratch: string;

before(async () => {
  ensureChromium();
  scratch = mkdtempSync(join(tmpdir(), 'popsteer-status-page-'));
  server = await startServer({ args: ['--state-file', join(scratch, 'state.json')], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
  // A fresh profile directory per run (playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(join(scratch, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    viewport: { width: 1440, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // Chromium keeps crash reports and dconf state under $HOME whatever the profile: give it one of its own.
    env: { ...process.env, HOME: join(scratch, 'home'), XDG_CONFIG_HOME: join(scratch, 'home', '.config'), XDG_CACHE_HOME: join(scratch, 'home', '.cache') },
  });
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const areasOnPage = async (): Promise<Record<string, number>> =>
  JSON.parse((await page.locator('canvas#map').getAttribute('data-areas')) ?? '{}') as Record<string, number>;

test('the status page shows PoPs, traffic share and the map; a drain through the API shows at once and hands the area to neighbours', async () => {
  // Some steered traffic first, so the traffic share has something to show.
  const dns = new TestDnsClient(server.dnsPort);
  try {
    for (const subnet of ['81.2.69.0/24', '8.8.8.0/24', '1.1.1.0/24', '200.160.0.0/24', '5.9.0.0/24', '85.214.0.0/24']) {
      await dns.query('www.cdn.example', 'A', { subnet });
    }
  } finally {
    dns.close();
  }

  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const offSite: string[] = [];
  page.on('request', (r) => { if (!r.url().startsWith(`http://127.0.0.1:${server.adminPort}/`)) offSite.push(r.url()); });

  await page.goto(`http://127.0.0.1:${server.adminPort}/`);
  await page.waitForSelector('canvas#map[data-areas]', { timeout: 15_000 });
  await page.waitForSelector(`#pops tr[data-pop="${DRAINED}"][data-state="up"]`);
  assert.equal(await page.locator('#pops tbody tr').count(), 16, 'one row per catalog PoP');
  assert.equal(await page.locator('canvas#map').getAttribute('data-policy'), 'www.cdn.example');
  const before = await areasOnPage();
  assert.ok(before[DRAINED] > 0, `${DRAINED} serves part of the map before the drain: ${JSON.stringify(before)}`);
  assert.ok(Number(await page.locator('svg#traffic').getAttribute('data-total')) >= 6, 'the traffic chart counts the answers sent');
  assert.match(await page.locator('#policy-hash').innerText(), /^[0-9a-f]{8,}$/);
  assert.equal(await page.locator('#fleet').isHidden(), true, 'no fleet panel without --fleet');

  const drained = await fetch(`http://127.0.0.1:${server.adminPort}/v1/pops/${DRAINED}/drain`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'status page test', expires: '30m' }),
  });
  assert.equal(drained.status, 200, await drained.text());

  const row = page.locator(`#pops tr[data-pop="${DRAINED}"]`);
  await page.waitForSelector(`#pops tr[data-pop="${DRAINED}"][data-override="drain"]`, { timeout: 10_000 });
  assert.equal(await row.getAttribute('data-state'), 'down');
  assert.match(await row.innerText(), /drained/);
  assert.match(await row.innerText(), /status page test/);
  // Runs in the page (a string, as the test's own types have no DOM).
  await page.waitForFunction(`JSON.parse(document.querySelector('canvas#map').dataset.areas)[${JSON.stringify(DRAINED)}] === 0`, undefined, { timeout: 10_000 });
  const afterDrain = await areasOnPage();
  const total = (a: Record<string, number>): number => Object.values(a).reduce((x, y) => x + y, 0);
  assert.equal(total(afterDrain), total(before), 'every cell is still served by someone');
  const gained = Object.keys(afterDrain).filter((id) => id !== DRAINED && afterDrain[id] > before[id]);
  assert.ok(gained.length > 0, 'neighbours took the drained area');
  assert.equal(await page.locator(`#map-legend li[data-endpoint="${DRAINED}"]`).getAttribute('data-up'), 'false');

  mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.deepEqual(errors, [], 'no script errors on the page');
  assert.deepEqual(offSite, [], 'the page loads nothing from outside the admin address');
});

test('with --fleet: the fleet panel lists every instance, the revision it serves and whether it is connected; a drain through another instance shows', async (t) => {
  const hub = await startNatsCluster({ size: 1 });
  // A real HTTP target for lhr, so the fleet has observations and a verdict to show.
  const target = await startHttpTarget();
  const geoData = geoDataWithHttpProbes({ lhr: target.port }, 1000, 2);
  const fleet = await Promise.all(['lhr', 'ams'].map((pop) => startServer({
    env: { POPSTEER_ADMIN_TOKEN: TOKEN },
    args: ['--pop', pop, '--fleet', hub.urls, '--fleet-insecure-loopback', '--geo-data', geoData, '--state-file', join(mkdtempSync(join(scratch, `${pop}-`)), 'state.json')],
  })));
  t.after(async () => {
    await Promise.all(fleet.map((s) => s.stop()));
    await hub.stop();
    await target.kill();
  });
  await Promise.all(fleet.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', 60_000)));
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));

  await page.goto(`http://127.0.0.1:${fleet[0].adminPort}/`);
  await page.waitForSelector('#fleet:not([hidden])', { timeout: 15_000 });
  // Heartbeats every 2 s, the page every 2 s: both instances appear, connected.
  await page.waitForFunction('document.querySelectorAll(\'#fleet-instances tr[data-connected="true"]\').length === 2', undefined, { timeout: 30_000 });
  assert.deepEqual(await page.locator('#fleet-instances tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-pop'))), ['ams', 'lhr']);
  const self = page.locator('#fleet-instances tr[data-pop="lhr"]');
  assert.match(await self.innerText(), /this/);
  assert.match(await self.innerText(), /local files/, 'no revision published: each serves its own files');
  assert.equal(await page.locator('#fleet-link').getAttribute('data-connected'), 'true');
  assert.match(await page.locator('#fleet-overrides').innerText(), /none/);

  const drained = await fetch(`http://127.0.0.1:${fleet[1].adminPort}/v1/pops/mad/drain`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'fleet panel test', author: 'ops', expires: '30m' }),
  });
  assert.equal(drained.status, 200, await drained.text());
  await page.waitForSelector('#fleet-overrides tr[data-subject="mad"][data-action="drain"]', { timeout: 15_000 });
  const row = await page.locator('#fleet-overrides tr[data-subject="mad"]').innerText();
  assert.match(row, /fleet panel test/);

  // lhr's target carries the fleet's verdict with its evidence: up, seen up by both instances (k = 3 by default, more than this fleet has).
  await page.waitForFunction('/^lhr-http: up: seen up by (ams, lhr|lhr, ams)$/.test(document.querySelector(\'#pops tr[data-pop="lhr"] .verdict\')?.textContent ?? "")', undefined, { timeout: 30_000 });
  assert.match(row, /ops \(.* via ams\)/);

  mkdirSync(join(REPO_ROOT, 'test-results'), { recursive: true });
  await page.screenshot({ path: join(REPO_ROOT, 'test-results', 'status-page-fleet.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no script errors on the page');
});
