// The policy tools as an ops team runs them from a fresh clone:
// validate (exit 0/1 with file:line errors), explain, diff.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { runCli } from '../helpers/server.ts';

const GEO = ['--geo-data', 'geo-data'];

test('validate accepts the example set and exits 0', async () => {
  const r = await runCli(['validate', ...GEO]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^valid: .*www\.cdn\.example/m);
});

test('validate rejects mistakes with file:line:column, a stable code and what to change, exit 1', async () => {
  const dir = copyExampleConfig();
  const api = join(dir, 'steering', 'api.yaml');
  writeFileSync(api, readFileSync(api, 'utf8').replace('pools: [primary, secondary, tertiary]', 'pools: [primary, secondry, tertiary]'));
  const www = join(dir, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('ttl: 60', 'ttl: 0'));
  const r = await runCli(['validate', ...GEO, dir]);
  assert.equal(r.code, 1);
  const apiLine = readFileSync(api, 'utf8').split('\n').findIndex((l) => l.includes('secondry')) + 1;
  assert.match(r.stdout, new RegExp(`api\\.yaml:${apiLine}:\\d+: POPSTEER_ERR_POLICY_UNKNOWN_POOL: .*unknown pool "secondry"`));
  const wwwLine = readFileSync(www, 'utf8').split('\n').findIndex((l) => l.includes('ttl: 0')) + 1;
  assert.match(r.stdout, new RegExp(`www\\.yaml:${wwwLine}:\\d+: POPSTEER_ERR_POLICY_SCHEMA: /policies/0/ttl: must be >= 1`));
  assert.match(r.stdout, /^invalid: 2 error\(s\)/m);
});

test('explain traces the decision: network, location, rule, steps, answer, TTL and scope', async () => {
  const r = await runCli(['explain', ...GEO, '--name', 'www.cdn.example', '--client', '81.2.69.0/24', '--down', 'lhr', '--pop', 'ams', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const trace = JSON.parse(r.stdout);
  assert.equal(trace.deciding.source, 'ecs');
  assert.equal(trace.location.country, 'GB');
  assert.equal(trace.location.from, 'GeoIP');
  assert.equal(trace.rule.name, 'nearest');
  const healthy = trace.steps.find((s: { step: string }) => s.step.startsWith('healthy'));
  assert.deepEqual(healthy.dropped.map((d: { id: string }) => d.id), ['lhr']);
  assert.match(trace.answer.records[0], /^A 192\.0\.2\.1 {2}\(ams\)$/);
  assert.equal(trace.answer.ttl, 20, 'degraded TTL while London is down');
  assert.ok(trace.answer.ecs_scope >= 8 && trace.answer.ecs_scope <= 24);
  const text = await runCli(['explain', ...GEO, '--name', 'www.cdn.example', '--client', '81.2.69.0/24']);
  assert.match(text.stdout, /answer\s+NOERROR\s+TTL 60\s+ECS scope \/\d+\n\s+A 192\.0\.2\.3 {2}\(lhr\)/);
});

test('diff shows how a canary weight change moves traffic, and only towards the canary', async () => {
  const dir = copyExampleConfig();
  const video = join(dir, 'steering', 'video.yaml');
  writeFileSync(video, readFileSync(video, 'utf8').replace('{ pop: mad, weight: 10 }', '{ pop: mad, weight: 20 }'));
  const r = await runCli(['diff', ...GEO, '--from', 'policies', '--to', dir, '--name', 'video.cdn.example', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [report] = JSON.parse(r.stdout);
  assert.equal(report.name, 'video.cdn.example');
  assert.equal(report.networks, 2500, 'the shipped GeoLite2 sample');
  const mad = report.shares.find((s: { answer: string }) => s.answer === 'mad');
  assert.ok(mad.after_percent > mad.before_percent + 4, JSON.stringify(mad));
  assert.ok(report.changes.length > 0);
  for (const c of report.changes) assert.equal(c.to, 'mad', `${c.network}: ${c.from} → ${c.to}`);
});

test('serve refuses a bad popsteer.yaml at start-up: exit 2, with the file, line and what to change', async () => {
  const dir = copyExampleConfig();
  writeFileSync(join(dir, 'popsteer.yaml'), 'pop: ams\nworkers: zero\n');
  const r = await runCli(['serve', '--config', dir, ...GEO, '--listen', '127.0.0.1:0', '--admin', 'off']);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /popsteer\.yaml:2:\d+: POPSTEER_ERR_SETTING: \/workers: workers: must be a whole number ≥ 1, not "zero"/);
});

test('serve refuses an unknown --udp-io at start-up: exit 2, naming the values it takes', async () => {
  const r = await runCli(['serve', '--config', 'policies', ...GEO, '--listen', '127.0.0.1:0', '--admin', 'off', '--udp-io', 'fast']);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /--udp-io: POPSTEER_ERR_SETTING: \/udp_io: udp-io: must be one of auto, batch, dgram, not "fast"/);
});
