// The Prometheus alerting rules and the Grafana dashboard in contrib/, checked
// by real tools and against a real server: `promtool check rules` and
// `promtool test rules` (a unit test for every alert), every dashboard query
// parsed by promtool too, the dashboard's JSON model importable (a datasource
// variable, every query on it), a runbook in README for every alert, and every
// metric name the rules and the dashboard use present in /metrics of a
// running server.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT, startServer, type StartedServer } from '../helpers/server.ts';

const run = promisify(execFile);
const RULES = join(REPO_ROOT, 'contrib/prometheus/popsteer-alerts.yaml');
const RULE_TESTS = join(REPO_ROOT, 'contrib/prometheus/popsteer-alerts.test.yaml');
const DASHBOARD = join(REPO_ROOT, 'contrib/grafana/popsteer.json');

interface Rule { alert: string; expr: string; for?: string; annotations: Record<string, string> }
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

interface Panel { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; datasource?: { uid: string }; targets?: Array<{ expr: string; datasource: { uid: string } }> }
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  uid: string; title: string; schemaVersion: number; panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
};
const panelQueries = (): Array<{ panel: string; expr: string }> =>
  dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** A dashboard query with Grafana's variables replaced, so promtool can parse it. */
const asPromQl = (expr: string): string => expr.replaceAll('$__rate_interval', '5m').replace(/\$(pop|name)\b/g, '.*');

let server: StartedServer;
before(async () => { server = await startServer({ args: ['--pop', 'ams'] }); });
after(async () => { await server?.stop(); });

test('promtool check rules accepts the alerting rules', async () => {
  const { stdout } = await run('promtool', ['check', 'rules', RULES]);
  assert.match(stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test('promtool test rules passes, with a firing case for every alert', async () => {
  const { stdout } = await run('promtool', ['test', 'rules', RULE_TESTS]);
  assert.match(stdout, /SUCCESS/);
  const tests = (parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> }).tests
    .flatMap((t) => t.alert_rule_test);
  for (const rule of rules) {
    assert.ok(tests.some((t) => t.alertname === rule.alert && t.exp_alerts.length > 0), `${rule.alert} has a test where it fires`);
    assert.ok(tests.some((t) => t.alertname === rule.alert && t.exp_alerts.length === 0), `${rule.alert} has a test where it stays quiet`);
  }
});

test('every alert has a summary, a runbook link, and its runbook paragraph in README', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const rule of rules) {
    assert.ok(rule.annotations.summary, `${rule.alert} has a summary`);
    assert.equal(rule.annotations.runbook, `README.md#${rule.alert.toLowerCase()}`);
    const heading = new RegExp(`^#### ${rule.alert}\\n\\n\\S`, 'm');
    assert.ok(heading.test(readme), `README has "#### ${rule.alert}" followed by its runbook`);
  }
});

test('the dashboard is an importable JSON model: a datasource variable, every query on it, unique panel ids, panels on the grid', async () => {
  assert.ok(dashboard.uid && dashboard.title && dashboard.schemaVersion >= 30);
  const datasource = dashboard.templating.list.find((v) => v.type === 'datasource');
  assert.ok(datasource && datasource.query === 'prometheus', 'a Prometheus datasource variable');
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const panel of dashboard.panels) {
    assert.ok(panel.gridPos.x >= 0 && panel.gridPos.x + panel.gridPos.w <= 24 && panel.gridPos.h > 0, `${panel.title} fits the 24-column grid`);
    if (panel.type === 'row') continue;
    assert.equal(panel.datasource?.uid, `\${${datasource.name}}`, `${panel.title} uses the datasource variable`);
    assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} has a query`);
    for (const t of panel.targets) assert.equal(t.datasource.uid, `\${${datasource.name}}`);
  }
  // Each query is valid PromQL as Prometheus parses it: promtool checks them as recording rules.
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-dashboard-'));
  const file = join(dir, 'dashboard-queries.yaml');
  const recording = panelQueries().map((q, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(asPromQl(q.expr))}`);
  writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${recording.join('\n')}\n`);
  const { stdout } = await run('promtool', ['check', 'rules', file]);
  assert.match(stdout, new RegExp(`SUCCESS: ${recording.length} rules found`));
});

test('the dashboard has the panels the issue lists', () => {
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const wanted of ['queries per second', 'rcode', 'duration', 'traffic share', 'decision-cache hit ratio', 'client subnet', 'rate limiting',
    'pop states', 'transitions', 'probe failures by reason', 'cut off', 'reloads', 'content hash', 'geoip database age']) {
    assert.ok(titles.includes(wanted), `a panel about ${wanted}`);
  }
});

test('every metric name in the alerting rules and the dashboard exists in /metrics of a running server', async () => {
  const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
  const exported = (name: string): boolean => {
    if (types.has(name)) return true;
    const base = name.replace(/_(bucket|count|sum)$/, '');
    return base !== name && types.get(base) === 'histogram';
  };
  const used = new Map<string, string>();
  for (const rule of rules) for (const m of rule.expr.matchAll(/\bpopsteer_[a-z0-9_]+/g)) used.set(m[0], `alert ${rule.alert}`);
  for (const q of panelQueries()) for (const m of q.expr.matchAll(/\bpopsteer_[a-z0-9_]+/g)) used.set(m[0], `panel "${q.panel}"`);
  for (const v of dashboard.templating.list) for (const m of JSON.stringify(v.query).matchAll(/\bpopsteer_[a-z0-9_]+/g)) used.set(m[0], `variable ${v.name}`);
  assert.ok(used.size > 20, `${used.size} metric names used`);
  const missing = [...used].filter(([name]) => !exported(name)).map(([name, where]) => `${name} (${where})`);
  assert.deepEqual(missing, [], 'metrics used but not exported');
});
