// The module boundaries of docs/architecture.md, checked from the import lines.
// Every directory under server/ and every top-level file is a module; MAY_IMPORT
// below is the one rule table: what each module may import. A module missing
// from the table, an import the table does not allow, a cycle between files or
// between directories: each fails this test. Known debt is listed, by file and
// with its issue, in EXCEPTIONS; an exception nothing needs any more fails too,
// so the list only shrinks.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../../server/', import.meta.url));

/**
 * What each module may import, bottom layer first. A module may always import
 * its own files. The fast path (dns, transport, snapshot, steering, engine,
 * dns-worker) never reaches the slow path (policy, health, admin, cli, main).
 */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  // Leaves: pure code over bytes and files. lib/ holds small pieces every
  // layer shares (the hashes) and imports nothing of ours.
  'lib': [],
  'dns': ['lib'],
  'transport': [],
  'fsutil': [],
  'log': [],
  'types': [],
  // Daemon settings, configuration errors, YAML sources and schema validation.
  'config': [],
  // GeoIP, custom networks, addresses; compiled maps.
  'geo': ['config', 'fsutil', 'lib'],
  // Decisions: pure functions over compiled tables (geo only for its table types).
  'steering': ['geo', 'lib'],
  'snapshot': ['dns', 'steering'],
  'rrl': ['config', 'dns', 'geo', 'lib'],
  'dnstap': ['config', 'dns', 'geo', 'log'],
  // The per-query pipeline over the current snapshot.
  'engine': ['dns', 'geo', 'lib', 'log', 'rrl', 'snapshot', 'steering'],
  // The slow path: compiling policy, probing health, routes, the admin.
  'policy': ['config', 'dns', 'geo', 'lib', 'snapshot', 'steering'],
  'health': ['config', 'fsutil', 'log'],
  'anycast': ['config', 'dns', 'log'],
  'geo-context': ['config', 'geo', 'policy'],
  // The admin sees the running server through admin/running-server.ts, never main.
  'admin': ['config', 'dns', 'dnstap', 'engine', 'geo', 'health', 'log', 'snapshot', 'steering', 'transport'],
  // The DNS worker thread and its dnstap hook (fast path, no admin).
  'dnstap-hook': ['dns', 'dnstap', 'engine', 'snapshot', 'transport'],
  'dns-worker': ['dnstap', 'dnstap-hook', 'engine', 'log', 'rrl', 'snapshot', 'transport'],
  'worker-watch': ['config', 'dns-worker', 'log'],
  // The build thread (GeoIP index, policy compiles) and the main thread's side of it.
  'builds': ['config', 'geo', 'geo-context', 'log', 'policy', 'snapshot', 'steering'],
  // snapshot: it posts unchanged policies by reference (snapshot/policy-reuse.ts), as builds resolves them.
  'build-worker': ['builds', 'config', 'geo', 'geo-context', 'policy', 'snapshot'],
  // Composition root and the commands that call it.
  'main': ['admin', 'builds', 'config', 'dns', 'dns-worker', 'dnstap', 'engine', 'fsutil', 'geo', 'geo-context', 'health', 'log', 'policy', 'rrl', 'snapshot', 'steering', 'transport', 'worker-watch'],
  'cli': ['anycast', 'config', 'dnstap', 'engine', 'geo-context', 'health', 'log', 'main', 'policy', 'steering'],
};

/**
 * Imports the table does not allow, kept visible until their issue fixes them.
 * Each names the importing file and the imported file (paths under server/).
 */
export const EXCEPTIONS: readonly { from: string; to: string; issue: number; why: string }[] = [
  // The settings check rrl_exempt and trusted_resolvers with the CIDR parser
  // in rrl/, which builds on geo/address.ts, and geo/ imports config/errors:
  // a directory cycle until CIDR parsing has one home below config/ (with
  // geo/networks.ts's parseCidr, in issue 15's files).
  { from: 'config/settings.ts', to: 'rrl/network.ts', issue: 18, why: 'one CIDR parser below config/' },
  // geo/ validates its files with the schema helper that used to live in
  // policy/; it now lives in config/schema.ts, and policy/schema.ts re-exports
  // it until these imports (in issue 15's files) point at config/.
  { from: 'geo/catalog.ts', to: 'policy/schema.ts', issue: 18, why: 'schema helper moved to config/schema.ts' },
  { from: 'geo/networks.ts', to: 'policy/schema.ts', issue: 18, why: 'schema helper moved to config/schema.ts' },
  // main.ts still takes createDecisionCounterBuffer from admin/, which
  // re-exports it from engine/ (where the per-query counters now live).
  // Allowed by the table, listed so the re-export is removed with it.
  { from: 'main.ts', to: 'admin/decision-counters.ts', issue: 18, why: 'counters moved to engine/decision-counters.ts' },
];

/** Module name of a path under server/: its directory, or a top-level file without .ts. */
function moduleOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, '');
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** Paths under server/ that `text` (a file at `file`, under server/) imports or re-exports. */
export function importedFiles(file: string, text: string): string[] {
  const targets: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.{1,2}\/[^']+)'/g)) {
    const target = relative(SERVER, join(SERVER, file, '..', m[1]));
    if (!target.startsWith('..')) targets.push(target);
  }
  return targets;
}

/** Every .ts file under server/ with the files it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const path of filesUnder(SERVER)) {
    const file = relative(SERVER, path);
    graph.set(file, importedFiles(file, readFileSync(path, 'utf8')));
  }
  return graph;
}

/** The cycles of a directed graph (strongly connected components of more than one node, or a self-loop). */
export function cyclesOf(graph: Map<string, Iterable<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || [...(graph.get(node) ?? [])].includes(node)) cycles.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

const isException = (from: string, to: string): boolean => EXCEPTIONS.some((e) => e.from === from && e.to === to);

test('every module under server/ has a row in the rule table', () => {
  const modules = new Set([...importGraph().keys()].map(moduleOf));
  const missing = [...modules].filter((m) => !(m in MAY_IMPORT));
  assert.deepEqual(missing, [], 'add these to MAY_IMPORT (and to docs/architecture.md)');
  const gone = Object.keys(MAY_IMPORT).filter((m) => !modules.has(m));
  assert.deepEqual(gone, [], 'these rows name modules that no longer exist');
  assert.ok(modules.size >= 20, `found ${modules.size} modules`);
});

test('module imports follow the rule table', () => {
  const violations: string[] = [];
  for (const [file, targets] of importGraph()) {
    const module = moduleOf(file);
    for (const target of targets) {
      const targetModule = moduleOf(target);
      if (targetModule === module || isException(file, target)) continue;
      if (!MAY_IMPORT[module]?.includes(targetModule)) violations.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('every listed exception is still needed', () => {
  const graph = importGraph();
  const stale = EXCEPTIONS.filter((e) => !graph.get(e.from)?.includes(e.to));
  assert.deepEqual(stale, [], 'remove these from EXCEPTIONS');
});

test('no import cycle between files (exceptions aside)', () => {
  const graph = new Map([...importGraph()].map(([file, targets]) => [file, targets.filter((t) => !isException(file, t))]));
  assert.deepEqual(cyclesOf(graph), []);
});

test('no import cycle between directories (exceptions aside)', () => {
  const modules = new Map<string, Set<string>>();
  for (const [file, targets] of importGraph()) {
    const edges = modules.get(moduleOf(file)) ?? new Set<string>();
    modules.set(moduleOf(file), edges);
    for (const target of targets) {
      if (moduleOf(target) !== moduleOf(file) && !isException(file, target)) edges.add(moduleOf(target));
    }
  }
  assert.deepEqual(cyclesOf(modules), []);
});

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const serverDirectories = (): string[] => readdirSync(SERVER).filter((name) => statSync(join(SERVER, name)).isDirectory());

test("docs/architecture.md's rule table is MAY_IMPORT", () => {
  const text = readFileSync(join(REPO, 'docs/architecture.md'), 'utf8');
  const section = text.slice(text.indexOf('## Layers and what may import what'), text.indexOf('## Each directory'));
  const documented: Record<string, string[]> = {};
  for (const row of section.matchAll(/^\| (`[^|]+`) \| ([^|]+) \| [^|]+ \|$/gm)) {
    const imports = row[2].trim() === '—' ? [] : row[2].split(',').map((m) => m.trim().replace(/ \(.*\)$/, ''));
    for (const name of row[1].matchAll(/`([^`]+)`/g)) documented[name[1].replace(/\/$|\.ts$/g, '')] = imports.sort();
  }
  const table = Object.fromEntries(Object.entries(MAY_IMPORT).map(([m, allowed]) => [m, [...allowed].sort()]));
  assert.deepEqual(documented, table);
});

test('README and docs/architecture.md describe every directory under server/', () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const notes = readFileSync(join(REPO, 'docs/architecture.md'), 'utf8');
  const directories = serverDirectories();
  assert.ok(directories.length >= 15, `found ${directories.length} directories`);
  const inTable = (d: string): boolean => new RegExp(`^\\| [^|]*\`server/${d}/\``, 'm').test(readme);
  assert.deepEqual(directories.filter((d) => !inTable(d)), [], 'missing from the README directory table');
  assert.deepEqual(directories.filter((d) => !notes.includes(`- **\`server/${d}/\`**`)), [], 'missing from docs/architecture.md');
});

test('the checkers see what they check', () => {
  // Imports: a real file's import lines are found and resolved.
  const engineImports = importedFiles('engine/engine.ts', readFileSync(join(SERVER, 'engine/engine.ts'), 'utf8'));
  assert.ok(engineImports.some((t) => t.startsWith('dns/')), 'engine imports dns/: the parser found it');
  assert.deepEqual(importedFiles('a/b.ts', "import { x } from '../c/d.ts';\nexport type { y } from './e.ts';"), ['c/d.ts', 'a/e.ts']);
  // Cycles: one of two files and one of three are found; a chain is not a cycle.
  const graph = new Map([['a', ['b']], ['b', ['a']], ['c', ['d']], ['d', ['e']], ['e', ['c']], ['f', ['g']], ['g', []]]);
  assert.deepEqual(cyclesOf(graph).sort(), [['a', 'b'], ['c', 'd', 'e']]);
});
