// The admin API through real HTTP against the real server: every endpoint
// answers what it documents; mutating calls need the bearer token (from a
// token file, trimmed) and are refused with 403 when no token is configured;
// bad requests get 4xx JSON {error, message} and change nothing; overrides
// reach answers at once; a rejected reload keeps the old set serving.

import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { TestDnsClient, firstAnswer } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'admin-api-test-token';
/** A Berlin network: the www policy answers it from fra while fra is up. */
const BERLIN = '85.214.0.0/24';

// Answers are checked field by field; the shape is what the test asserts.
type Json = Record<string, any>;

let server: StartedServer;
let bare: StartedServer;
let scratch: string;
let configDir: string;

async function call(target: StartedServer, method: string, path: string, options: { body?: unknown; rawBody?: string; token?: string | null } = {}): Promise<{ status: number; json: Json; text: string; type: string }> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`http://127.0.0.1:${target.adminPort}${path}`, { method, headers, body });
  const text = await response.text();
  let json: Json = {};
  try { json = JSON.parse(text) as Json; } catch { /* text answers */ }
  return { status: response.status, json, text, type: response.headers.get('content-type') ?? '' };
}

const get = (path: string) => call(server, 'GET', path, { token: null });
const post = (path: string, body?: unknown, token?: string | null) => call(server, 'POST', path, { body, token });

async function answerFor(subnet: string): Promise<string> {
  const dns = new TestDnsClient(server.dnsPort);
  try {
    return popOf(firstAnswer(await dns.query('www.cdn.example', 'A', { subnet })));
  } finally {
    dns.close();
  }
}

async function overrideOf(id: string): Promise<Json | null> {
  const pops = await get('/v1/pops');
  return (pops.json.pops as Json[]).find((p) => p.id === id)!.override;
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'popsteer-admin-api-'));
  configDir = copyExampleConfig();
  const tokenFile = join(scratch, 'admin-token');
  writeFileSync(tokenFile, `  ${TOKEN}\n`, { mode: 0o600 });
  const common = ['--geo-data', join(REPO_ROOT, 'geo-data')];
  [server, bare] = await Promise.all([
    startServer({ args: [...common, '--config', configDir, '--state-file', join(scratch, 'state.json'), '--admin-token-file', tokenFile], env: { POPSTEER_ADMIN_TOKEN: '' } }),
    startServer({ args: [...common, '--state-file', join(scratch, 'bare-state.json')], env: { POPSTEER_ADMIN_TOKEN: '' } }),
  ]);
});

after(async () => {
  await Promise.all([server?.stop(), bare?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });
});

describe('read-only endpoints', () => {
  it('GET /healthz and /readyz say alive and ready once zones, policies and geo data are loaded', async () => {
    assert.deepEqual((await get('/healthz')).json, { status: 'ok' });
    const ready = await get('/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.json.ready, true);
    assert.deepEqual(ready.json.zones, ['cdn.example.']);
  });

  it('GET /v1/status gives version, PoP, uptime, policy hash and load time, GeoIP type and build date, workers', async () => {
    const { json } = await get('/v1/status');
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(json.version, version);
    assert.equal(json.pop, 'ams');
    assert.equal(json.workers, 1);
    assert.ok(json.uptime_seconds >= 0);
    assert.equal(json.policy_hash, (await get('/readyz')).json.hash);
    assert.ok(Date.parse(json.policy_loaded_at) <= Date.now());
    assert.equal(json.geoip.type, 'GeoLite2-City');
    assert.equal(json.geoip.build_date.slice(0, 10), '2019-12-24');
    assert.ok(json.policies.includes('www.cdn.example'));
  });

  it('GET /v1/pops lists every PoP with state, since, targets and override, and the cut-off status', async () => {
    const { json } = await get('/v1/pops');
    const catalog = readFileSync(join(REPO_ROOT, 'geo-data', 'pops.yaml'), 'utf8').match(/\bid: [a-z]+/g)!.map((m) => m.slice(4));
    assert.deepEqual(json.pops.map((p: Json) => p.id), catalog);
    assert.equal(json.cut_off.active, false);
    const ams = json.pops.find((p: Json) => p.id === 'ams');
    assert.equal(ams.self, true);
    assert.equal(ams.state, 'up');
    assert.ok(Date.parse(ams.since) > 0);
    assert.deepEqual(ams.targets.map((t: Json) => [t.id, t.kind]), [['ams-monitor', 'external']]);
  });

  it('GET /v1/policies shows the active set as loaded: names, files, rules, pools and endpoints, hash', async () => {
    const { json } = await get('/v1/policies');
    assert.equal(json.hash, (await get('/v1/status')).json.policy_hash);
    const www = json.policies.find((p: Json) => p.name === 'www.cdn.example');
    assert.match(www.file, /www\.yaml$/);
    assert.equal(www.ttl, 60);
    assert.deepEqual(www.rules.map((r: Json) => r.name), ['nearest']);
    assert.equal(www.rules[0].pools[0].length, 16);
    assert.deepEqual(www.endpoints.find((e: Json) => e.id === 'fra').ipv4, ['192.0.2.2']);
    const spill = json.policies.find((p: Json) => p.endpoints.some((e: Json) => e.cname));
    assert.ok(spill, 'the CNAME endpoint of the partner spill shows its target');
  });

  it('GET /v1/explain answers JSON and text, and 400 for a bad client or a missing name', async () => {
    const json = await get(`/v1/explain?name=www.cdn.example&client=${BERLIN}`);
    assert.equal(json.status, 200);
    assert.equal(json.json.policy, 'www.cdn.example');
    assert.deepEqual(json.json.answer.records, ['A 192.0.2.2  (fra)']);
    const down = await get(`/v1/explain?name=www.cdn.example&client=${BERLIN}&down=fra&format=text`);
    assert.match(down.type, /^text\/plain/);
    assert.match(down.text, /dropped: fra .*DOWN/);
    for (const path of ['/v1/explain?client=1.2.3.0/24', '/v1/explain?name=www.cdn.example&client=nonsense', '/v1/explain?name=www.cdn.example&down=xyz', '/v1/explain?name=www.cdn.example&format=xml']) {
      const bad = await get(path);
      assert.equal(bad.status, 400, path);
      assert.equal(bad.json.error, 'bad_request', path);
      assert.ok(bad.json.message.length > 0, path);
    }
  });

  it('GET /v1/map colours the grid by answering PoP; GET /v1/traffic counts answers per PoP', async () => {
    await answerFor(BERLIN);
    const map = await get('/v1/map?name=www.cdn.example&cell=5');
    assert.equal(map.json.cellDegrees, 5);
    assert.ok(map.json.cells.length > 3 * 100);
    assert.ok(map.json.endpoints.find((e: Json) => e.id === 'fra').cells > 0);
    assert.equal((await get('/v1/map?name=nope.example')).status, 404);
    const traffic = await get('/v1/traffic');
    assert.ok(traffic.json.endpoints.fra.reduce((a: number, b: number) => a + b, 0) >= 1);
  });

  it('unknown paths are 404 JSON', async () => {
    const r = await get('/v1/nothing');
    assert.equal(r.status, 404);
    assert.equal(r.json.error, 'not_found');
  });
});

describe('authorization', () => {
  it('mutating calls without a token, or with a wrong one, are 401 and change nothing', async () => {
    for (const token of [null, 'wrong-token', `${TOKEN}x`, '']) {
      const r = await post('/v1/pops/lhr/drain', { reason: 'no' }, token);
      assert.equal(r.status, 401, String(token));
      assert.equal(r.json.error, 'unauthorized');
    }
    assert.equal((await post('/v1/reload', undefined, 'wrong')).status, 401);
    assert.equal((await post('/v1/health', { target: 'lhr-monitor', state: 'down' }, null)).status, 401);
    assert.equal(await overrideOf('lhr'), null);
  });

  it('with no token configured, mutating calls are refused with 403 saying how to configure one', async () => {
    const r = await call(bare, 'POST', '/v1/pops/lhr/drain', { body: { reason: 'no' }, token: 'anything' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error, 'admin_token_not_configured');
    assert.match(r.json.message, /--admin-token-file/);
    assert.match(r.json.message, /POPSTEER_ADMIN_TOKEN/);
    assert.equal((await call(bare, 'POST', '/v1/reload', { token: null })).status, 403);
    assert.equal((await call(bare, 'GET', '/v1/status', { token: null })).status, 200, 'reading stays open');
  });
});

describe('overrides', () => {
  it('drain with an expiry moves answers off the PoP at once; undrain brings them back', async () => {
    assert.equal(await answerFor(BERLIN), 'fra');
    const drained = await post('/v1/pops/fra/drain', { reason: 'maintenance window', expires: '30m' });
    assert.equal(drained.status, 200, drained.text);
    assert.equal(drained.json.state, 'down');
    assert.equal(drained.json.override.kind, 'drain');
    const expiresIn = Date.parse(drained.json.override.expires) - Date.now();
    assert.ok(expiresIn > 29 * 60_000 && expiresIn <= 30 * 60_000, `expires in ${expiresIn} ms`);
    assert.notEqual(await answerFor(BERLIN), 'fra');
    const shown = await overrideOf('fra');
    assert.equal(shown!.reason, 'maintenance window');
    const explained = await get(`/v1/explain?name=www.cdn.example&client=${BERLIN}`);
    assert.ok(JSON.stringify(explained.json.steps).includes('drain: maintenance window'), 'explain shows the override');

    const undrained = await post('/v1/pops/fra/undrain', { reason: 'done' });
    assert.equal(undrained.status, 200, undrained.text);
    assert.equal(undrained.json.override, null);
    assert.equal(await answerFor(BERLIN), 'fra');
  });

  it('force-down with expires in seconds, then force-up', async () => {
    const down = await post('/v1/pops/lhr/force-down', { reason: 'test', expires: 120 });
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.override.kind, 'force-down');
    const up = await post('/v1/pops/lhr/force-up', { reason: 'test' });
    assert.equal(up.json.state, 'up');
    assert.equal(up.json.override.expires, null);
    assert.equal((await post('/v1/pops/lhr/undrain', { reason: 'clean up' })).status, 200);
  });

  it('bad requests get 4xx JSON naming the problem, and nothing is applied', async () => {
    const cases: Array<[string, { body?: unknown; rawBody?: string }, number]> = [
      ['/v1/pops/mad/drain', { body: { reason: '   ' } }, 400],
      ['/v1/pops/mad/drain', { body: { reason: 'x', expires: 'soon' } }, 400],
      ['/v1/pops/mad/drain', { body: { reason: 'x', expires: -5 } }, 400],
      ['/v1/pops/mad/drain', { body: { reason: 'x', expires: '90d' } }, 400],
      ['/v1/pops/mad/drain', { body: { reason: 'x', colour: 'red' } }, 400],
      ['/v1/pops/mad/undrain', { body: { reason: 'x', expires: '5m' } }, 400],
      ['/v1/pops/mad/explode', { body: { reason: 'x' } }, 400],
      ['/v1/pops/mad/drain', { rawBody: '{"reason": "x"' }, 400],
      ['/v1/pops/mad/drain', { rawBody: JSON.stringify({ reason: 'x'.repeat(20_000) }) }, 413],
      ['/v1/pops/nowhere/drain', { body: { reason: 'x' } }, 404],
      ['/v1/health', { body: { target: 'mad-monitor', state: 'sideways' } }, 400],
      ['/v1/health', { body: { target: 'no-such-monitor', state: 'down' } }, 404],
    ];
    for (const [path, options, status] of cases) {
      const r = await call(server, 'POST', path, options);
      assert.equal(r.status, status, `${path} ${options.rawBody?.slice(0, 40) ?? JSON.stringify(options.body)}: ${r.text}`);
      assert.equal(typeof r.json.error, 'string', path);
      assert.ok(typeof r.json.message === 'string' && r.json.message.length > 0, path);
    }
    assert.equal(await overrideOf('mad'), null, 'no bad request left an override behind');
  });

  it('an override without a body applies, and its reason says none was given; a bad body is told what to send', async () => {
    for (const options of [{}, { rawBody: '' }, { body: {} }]) {
      const drained = await call(server, 'POST', '/v1/pops/mad/drain', options);
      assert.equal(drained.status, 200, `${JSON.stringify(options)}: ${drained.text}`);
      assert.match(drained.json.override.reason, /no reason given/);
      assert.equal((await overrideOf('mad'))!.reason, drained.json.override.reason);
      assert.equal((await call(server, 'POST', '/v1/pops/mad/undrain', options)).status, 200);
    }
    for (const options of [{ rawBody: '{"reason": "x"' }, { body: { reason: 42 } }, { body: ['fibre work'] }]) {
      const bad = await call(server, 'POST', '/v1/pops/mad/drain', options);
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.json.message, /send a JSON object such as \{"reason": "fibre work", "expires": "30m"\}/, bad.json.message);
    }
    assert.equal(await overrideOf('mad'), null);
  });
});

describe('external health feed', () => {
  it('POST /v1/health takes an external target down and up again; answers follow', async () => {
    const sydney = '1.1.1.0/24';
    assert.equal(await answerFor(sydney), 'syd');
    const down = await post('/v1/health', { target: 'syd-monitor', state: 'down', reason: 'monitor says 5xx' });
    assert.equal(down.status, 200, down.text);
    assert.equal(down.json.state, 'down');
    const pops = await get('/v1/pops');
    const syd = pops.json.pops.find((p: Json) => p.id === 'syd');
    assert.equal(syd.state, 'down');
    assert.equal(syd.targets[0].last_probe.detail, 'monitor says 5xx');
    assert.notEqual(await answerFor(sydney), 'syd');
    assert.equal((await post('/v1/health', { target: 'syd-monitor', state: 'up' })).json.state, 'up');
    assert.equal(await answerFor(sydney), 'syd');
  });
});

describe('reload', () => {
  it('POST /v1/reload answers 200 with the hash, and 422 with the errors for an invalid set while the old one keeps serving', async () => {
    const before = (await get('/v1/status')).json.policy_hash;
    const ok = await post('/v1/reload');
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json, { hash: before, changed: false });

    const www = join(configDir, 'steering', 'www.yaml');
    const original = readFileSync(www, 'utf8');
    try {
      writeFileSync(www, original.replace('ttl: 60', 'ttl: 0'));
      const rejected = await post('/v1/reload');
      assert.equal(rejected.status, 422, rejected.text);
      assert.equal(rejected.json.error, 'invalid_configuration');
      assert.ok(rejected.json.errors.length > 0);
      assert.match(rejected.json.errors.join('\n'), /www\.yaml/);
      assert.equal(rejected.json.hash, before);
      assert.equal((await get('/v1/status')).json.policy_hash, before);
      assert.equal(await answerFor(BERLIN), 'fra', 'the old set keeps answering');
    } finally {
      writeFileSync(www, original);
    }
  });
});
