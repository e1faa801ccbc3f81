// /metrics of the real server with two DNS workers, after real traffic (UDP,
// TCP through dig, ECS, AAAA, NXDOMAIN), read with a strict parser of the
// Prometheus text format: every documented family is there with its type, the
// DNS and steering counts add up over both workers to what was sent, and the
// sampled query log writes the lines it promises.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { TestDnsClient, firstAnswer } from '../helpers/dns-client.ts';
import { popOf } from '../helpers/pops.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

const TOKEN = 'metrics-test-token';
const run = promisify(execFile);

interface Family { type: string; help: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }

/**
 * Prometheus text exposition format 0.0.4, strictly: HELP and TYPE once per
 * family and before its samples, sample names that belong to the family
 * (histograms: _bucket/_sum/_count), well-formed label sets without
 * duplicates, numeric values, histogram buckets cumulative and ending at +Inf.
 */
function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleLine = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
  const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;
  let current: string | null = null;
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line === '') return;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      assert.ok(!families.has(m[1]), `HELP twice for ${m[1]}`);
      families.set(m[1], { type: 'untyped', help: m[2], samples: [] });
      current = m[1];
      return;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      assert.equal(m[1], current, `TYPE right after HELP: ${where}`);
      families.get(m[1])!.type = m[2];
      return;
    }
    assert.ok(!line.startsWith('#'), `unknown comment: ${where}`);
    m = sampleLine.exec(line);
    assert.ok(m, `not a sample: ${where}`);
    const [, name, labelText = '', valueText] = m;
    assert.ok(current !== null, `sample before any family: ${where}`);
    const family = families.get(current)!;
    const allowed = family.type === 'histogram' ? [`${current}_bucket`, `${current}_sum`, `${current}_count`] : family.type === 'summary' ? [current, `${current}_sum`, `${current}_count`] : [current];
    assert.ok(allowed.includes(name), `sample ${name} outside its family ${current}: ${where}`);
    const labels: Record<string, string> = {};
    let rest = labelText;
    while (rest.length > 0) {
      const l = label.exec(rest);
      assert.ok(l, `bad label set: ${where}`);
      assert.ok(!(l[1] in labels), `duplicate label ${l[1]}: ${where}`);
      labels[l[1]] = l[2];
      rest = rest.slice(l[0].length);
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    assert.ok(valueText === 'NaN' || !Number.isNaN(value), `bad value: ${where}`);
    family.samples.push({ name, labels, value });
  });
  for (const [name, family] of families) {
    if (family.type !== 'histogram') continue;
    const series = new Map<string, number[]>();
    for (const s of family.samples.filter((x) => x.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), s.value]);
      if (le === '+Inf') {
        const count = family.samples.find((x) => x.name === `${name}_count` && JSON.stringify(x.labels) === key);
        assert.equal(count?.value, s.value, `${name}: +Inf bucket equals _count`);
      }
    }
    for (const [key, values] of series) values.forEach((v, i) => assert.ok(i === 0 || v >= values[i - 1], `${name}${key}: buckets cumulative`));
  }
  return families;
}

const total = (f: Family | undefined, match: Record<string, string> = {}, name?: string): number =>
  (f?.samples ?? []).filter((s) => (name === undefined || s.name === name) && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

let server: StartedServer;
let scratch: string;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'popsteer-metrics-'));
  server = await startServer({ workers: 2, args: ['--state-file', join(scratch, 'state.json'), '--query-log-sample', '1'], env: { POPSTEER_ADMIN_TOKEN: TOKEN } });
});

after(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function scrape(): Promise<Map<string, Family>> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await response.text());
}

it('after traffic, /metrics parses strictly and shows every family, summed over both workers', async () => {
  const subnets = ['81.2.69.0/24', '8.8.8.0/24', '1.1.1.0/24', '200.160.0.0/24', '85.214.0.0/24'];
  const expected = new Map<string, number>();
  const dns = new TestDnsClient(server.dnsPort);
  let udpA = 0;
  try {
    // Each network twice: the second is a decision-cache hit in whichever worker took it first.
    for (let round = 0; round < 2; round++) {
      for (const subnet of subnets) {
        const pop = popOf(firstAnswer(await dns.query('www.cdn.example', 'A', { subnet })));
        expected.set(pop, (expected.get(pop) ?? 0) + 1);
        udpA++;
      }
    }
    await dns.query('www.cdn.example', 'AAAA', { subnet: '81.2.69.0/24' });
    await dns.query('nothing-here.cdn.example', 'A');
  } finally {
    dns.close();
  }
  await run('dig', ['+tcp', '+short', '+time=3', '+tries=1', '-p', String(server.dnsPort), '@127.0.0.1', 'www.cdn.example', 'A']);
  const reloaded = await fetch(`http://127.0.0.1:${server.adminPort}/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(reloaded.status, 200);

  const m = await scrape();
  const typeOf = (name: string): string | undefined => m.get(name)?.type;
  const families: Array<[string, string]> = [
    ['popsteer_dns_requests_total', 'counter'], ['popsteer_dns_responses_total', 'counter'], ['popsteer_dns_request_duration_seconds', 'histogram'],
    ['popsteer_dns_truncated_responses_total', 'counter'], ['popsteer_dns_dropped_total', 'counter'], ['popsteer_dns_ecs_total', 'counter'],
    ['popsteer_steering_decisions_total', 'counter'], ['popsteer_steering_all_down_total', 'counter'],
    ['popsteer_steering_decision_cache_total', 'counter'], ['popsteer_steering_decision_cache_entries', 'gauge'],
    ['popsteer_health_target_up', 'gauge'], ['popsteer_health_probe_duration_seconds', 'histogram'], ['popsteer_health_probe_failures_total', 'counter'],
    ['popsteer_health_target_transitions_total', 'counter'], ['popsteer_health_subject_up', 'gauge'], ['popsteer_health_cut_off', 'gauge'],
    ['popsteer_config_reloads_total', 'counter'], ['popsteer_config_info', 'gauge'], ['popsteer_config_last_load_timestamp_seconds', 'gauge'],
    ['popsteer_geoip_database_build_timestamp_seconds', 'gauge'], ['popsteer_process_cpu_seconds_total', 'counter'], ['popsteer_process_resident_memory_bytes', 'gauge'],
  ];
  for (const [name, type] of families) assert.equal(typeOf(name), type, `${name} is a ${type}`);
  for (const [name, family] of m) {
    assert.match(name, /^popsteer_/, 'every metric is prefixed popsteer_');
    assert.ok(family.help.length > 0, `${name} has help`);
    for (const s of family.samples) assert.equal(s.labels.pop, 'ams', `${s.name} carries this instance's PoP`);
  }

  const requests = m.get('popsteer_dns_requests_total');
  assert.equal(total(requests, { transport: 'udp', qtype: 'A' }), udpA + 1);
  assert.equal(total(requests, { transport: 'udp', qtype: 'AAAA' }), 1);
  assert.equal(total(requests, { transport: 'tcp', qtype: 'A' }), 1);
  assert.equal(total(m.get('popsteer_dns_responses_total'), { rcode: 'NXDOMAIN' }), 1);
  assert.equal(total(m.get('popsteer_dns_request_duration_seconds'), {}, 'popsteer_dns_request_duration_seconds_count'), udpA + 3);
  assert.equal(total(m.get('popsteer_dns_ecs_total'), { outcome: 'used' }), udpA + 1);

  // Decisions by name/rule/endpoint match the answers seen, cache hits included.
  const decisions = m.get('popsteer_steering_decisions_total');
  // Plus the AAAA query from the London network (lhr) and dig's query without ECS from loopback (no location: self, ams).
  expected.set('lhr', (expected.get('lhr') ?? 0) + 1);
  expected.set('ams', (expected.get('ams') ?? 0) + 1);
  for (const [pop, count] of expected) {
    assert.equal(total(decisions, { name: 'www.cdn.example', rule: 'nearest', endpoint: pop }), count, `decisions for ${pop}`);
  }
  assert.equal(total(decisions), udpA + 2, 'no decision counted twice or lost');
  const cache = m.get('popsteer_steering_decision_cache_total');
  assert.ok(total(cache, { result: 'hit' }) >= 1, 'repeated networks hit the decision cache');
  assert.equal(total(cache), total(decisions), 'one cache lookup per steered (non-weighted) answer');

  assert.equal(total(m.get('popsteer_health_target_up'), { target: 'ams-monitor', kind: 'external' }), 1);
  assert.equal(total(m.get('popsteer_health_subject_up'), { subject: 'fra' }), 1);
  assert.equal(total(m.get('popsteer_config_reloads_total'), { result: 'success' }), 1);
  const status = await (await fetch(`http://127.0.0.1:${server.adminPort}/v1/status`)).json() as { policy_hash: string };
  assert.equal(total(m.get('popsteer_config_info'), { hash: status.policy_hash }), 1);
  assert.equal(new Date(total(m.get('popsteer_geoip_database_build_timestamp_seconds'), { type: 'GeoLite2-City' }) * 1000).toISOString().slice(0, 10), '2019-12-24');
});

it('the sampled query log writes client network, name, type, answer, rule and latency', async () => {
  const dns = new TestDnsClient(server.dnsPort);
  try {
    await dns.query('www.cdn.example', 'A', { subnet: '200.160.0.0/24' });
  } finally {
    dns.close();
  }
  const line = await server.waitForLog((l) => l.msg === 'query' && l.client === '200.160.0.0/24', 5000);
  assert.equal(line.name, 'www.cdn.example.');
  assert.equal(line.type, 'A');
  assert.equal(line.policy, 'www.cdn.example');
  assert.equal(line.rule, 'nearest');
  assert.equal(line.answer, 'gru');
  assert.equal(line.rcode, 0);
  assert.equal(line.resolver, '127.0.0.1');
  assert.ok(typeof line.latency_us === 'number' && line.latency_us >= 0);
});
