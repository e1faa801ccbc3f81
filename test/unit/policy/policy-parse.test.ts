// Policy files are parsed without a document tree (parseLargeYamlText, as
// networks.yaml is): the data must be exactly what the positioned parse
// gives, for the example policies, every YAML snippet in README, and the
// YAML corners a policy may hit; a position is still found when an error
// needs one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLargeYamlText, parseYamlText } from '../../../server/config/yaml-source.ts';
import { loadSnapshot } from '../../../server/policy/load.ts';
import { REPO_ROOT } from '../../helpers/server.ts';
import { syntheticWorld } from '../../fixtures/synthetic-geo.ts';

const CORNERS = [
  'policies:\n  - name: www.cdn.example\n    description: 2024-01-01\n    ttl: 0o17\n    rules: [{ match: default, pool: edge }]\n',
  'a: 0x1F\nb: +12\nc: -0\nd: .inf\ne: -.Inf\nf: .NaN\ng: 1e3\nh: 1_000\ni: 0b101\nj: 012\n',
  'a: yes\nb: No\nc: on\nd: TRUE\ne: False\nf: ~\ng: null\nh:\ni: Null\n',
  'a: &x { pops: [ams, fra] }\nb: *x\nc: "quoted: 1"\nd: \'single\'\n',
  'a: |\n  two\n  lines\nb: >-\n  folded\n  text\nc: "\\u00e9\\t"\n',
  '<<: { a: 1 }\nb: 2\n',
  '? complex\n: value\n"1": one\n1: numeric\n',
  'a: 1\na: 2\n',
  'a: [1, 2\n',
  'a: !!str 12\nb: !!int "7"\n',
];

function readmeSnippets(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
}

function exampleFiles(): string[] {
  const dir = join(REPO_ROOT, 'policies', 'steering');
  return readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(join(dir, f), 'utf8'));
}

/** The positioned parse's data, or its error message. */
function outcome(parse: (file: string, text: string) => { data: unknown }, text: string): unknown {
  try {
    return parse('p.yaml', text).data;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

test('the quick parse reads every example policy, README YAML snippet and corner case exactly as the positioned parse', () => {
  const texts = [...exampleFiles(), ...readmeSnippets(), ...CORNERS];
  assert.ok(exampleFiles().length >= 5 && readmeSnippets().length >= 3, 'the examples and snippets were found');
  for (const text of texts) assert.deepEqual(outcome(parseLargeYamlText, text), outcome(parseYamlText, text), text);
});

test('an error in a quickly parsed policy file still names its line', () => {
  const world = syntheticWorld();
  const config = mkdtempSync(join(world.dir, 'policy-parse-'));
  mkdirSync(join(config, 'zones'));
  mkdirSync(join(config, 'steering'));
  writeFileSync(join(config, 'zones', 'cdn.example.yaml'), `zone: cdn.example
soa: { mname: ns1, rname: hostmaster, serial: 1, refresh: 3600, retry: 600, expire: 1209600, minimum: 60, ttl: 3600 }
records:
  "@": { NS: [ns1] }
  ns1: { A: 192.0.2.53 }
`);
  const policy = (name: string, pool: string): string => `# comment
policies:
  - name: ${name}
    pools: { edge: { pops: all } }
    rules:
      - { match: default, pool: ${pool}, steps: [nearest, healthy] }
`;
  writeFileSync(join(config, 'steering', 'a.yaml'), policy('www.cdn.example', 'edge'));
  writeFileSync(join(config, 'steering', 'b.yaml'), policy('www.cdn.example', 'missing'));
  writeFileSync(join(config, 'steering', 'c.yaml'), policy('img.other.example', 'edge'));
  const errors = loadSnapshot(config, world.geo, 'ams').errors.map((e) => e.format()).join('\n');
  assert.match(errors, /b\.yaml:3:\d+.*www\.cdn\.example already has a policy \(.*a\.yaml:3\)/);
  assert.match(errors, /c\.yaml:3:\d+.*img\.other\.example\.? is in no served zone/);
});
