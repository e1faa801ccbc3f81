// The module boundaries of docs/architecture.md, checked from the import lines.
// Every directory under server/ and every top-level file is a module; MAY_IMPORT
// below is the one rule table: what each module may import. A module missing
// from the table, an import the table does not allow, a cycle between files or
// between directories: each fails this test. Known debt is listed, by file and
// with its issue, in EXCEPTIONS; an exception nothing needs any more fails too,
// so the list only shrinks.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cyclesOf, importedFiles, importGraph, SERVER } from '../helpers/import-graph.ts';

/**
 * What each module may import, bottom layer first. A module may always import
 * its own files. The fast path (dns, transport, snapshot, steering, engine,
 * dns-worker) never reaches the slow path (policy, health, admin, cli, main).
 */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  // Leaves: pure code over bytes and files. lib/ holds small pieces every
  // layer shares (the hashes, address text, CIDR parsing, word copies) and imports nothing of ours.
  'lib': [],
  'dns': ['lib'],
  'transport': ['lib'],
  'fsutil': [],
  'log': [],
  'types': [],
  // Daemon settings, configuration errors, YAML sources and schema validation.
  'config': ['lib'],
  // GeoIP, custom networks, addresses; compiled maps.
  'geo': ['config', 'fsutil', 'lib'],
  // Decisions: pure functions over compiled tables (geo only for its table types).
  'steering': ['geo', 'lib'],
  'snapshot': ['dns', 'steering'],
  // DNSSEC: keys, signatures, NSEC and signed template twins. Pure code over
  // compiled data (snapshot and steering types); the compile (policy) signs
  // with it, the engine only picks precomputed proofs and attaches signatures.
  // fsutil: keygen writes the key file through the one file writer.
  'dnssec': ['dns', 'fsutil', 'snapshot', 'steering'],
  'rrl': ['config', 'dns', 'lib'],
  'dnstap': ['config', 'dns', 'lib', 'log'],
  // The per-query pipeline over the current snapshot.
  'engine': ['dns', 'dnssec', 'geo', 'lib', 'log', 'rrl', 'snapshot', 'steering'],
  // The slow path: compiling policy, probing health, routes, the admin.
  'policy': ['config', 'dns', 'dnssec', 'geo', 'lib', 'snapshot', 'steering'],
  'health': ['config', 'fsutil', 'log'],
  'anycast': ['config', 'dns', 'log'],
  // The fleet link (NATS KV): feeds the health service fleet-wide overrides;
  // it knows health's override types and the settings' errors, nothing of
  // the query path. fsutil: a policy revision is written to the state
  // directory through the one safe file writer.
  'fleet': ['config', 'fsutil', 'health', 'lib', 'log'],
  'geo-context': ['config', 'geo', 'policy'],
  // The admin sees the running server through admin/running-server.ts, never main.
  'admin': ['config', 'dns', 'dnstap', 'engine', 'fleet', 'geo', 'health', 'lib', 'log', 'snapshot', 'steering', 'transport'],
  // The DNS worker thread and its dnstap hook (fast path, no admin).
  'dnstap-hook': ['dns', 'dnstap', 'engine', 'snapshot', 'transport'],
  'dns-worker': ['dnstap', 'dnstap-hook', 'engine', 'log', 'rrl', 'snapshot', 'transport'],
  'worker-watch': ['config', 'dns-worker', 'log'],
  // The build thread (GeoIP index, policy compiles) and the main thread's side of it.
  'builds': ['config', 'geo', 'geo-context', 'log', 'policy', 'snapshot', 'steering'],
  // snapshot: it posts unchanged policies by reference (snapshot/policy-reuse.ts), as builds resolves them.
  'build-worker': ['builds', 'config', 'geo', 'geo-context', 'policy', 'snapshot'],
  // Composition root and the commands that call it.
  'main': ['admin', 'builds', 'config', 'dns', 'dns-worker', 'dnssec', 'dnstap', 'engine', 'fleet', 'fsutil', 'geo', 'geo-context', 'health', 'log', 'policy', 'rrl', 'snapshot', 'steering', 'transport', 'worker-watch'],
  // fleet: publish, history, rollback and promote write the revisions bucket themselves.
  'cli': ['anycast', 'config', 'dnssec', 'dnstap', 'engine', 'fleet', 'geo-context', 'health', 'log', 'main', 'policy', 'steering'],
};

/**
 * Imports the table does not allow, kept visible until their issue fixes them.
 * Each names the importing file and the imported file (paths under server/).
 */
export const EXCEPTIONS: readonly { from: string; to: string; issue: number; why: string }[] = [];

/** Module name of a path under server/: its directory, or a top-level file without .ts. */
function moduleOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, '');
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
/** Every directory under server/, nested ones too, as paths under server/ (admin, admin/routes, …). */
const serverDirectories = (under = ''): string[] => readdirSync(join(SERVER, under))
  .filter((name) => statSync(join(SERVER, under, name)).isDirectory())
  .flatMap((name) => [under + name, ...serverDirectories(`${under}${name}/`)]);

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
  assert.ok(directories.length >= 15 && directories.includes('admin/routes'), `found ${directories.join(', ')}`);
  const inTable = (d: string): boolean => new RegExp(`^\\| [^|]*\`server/${d}/\``, 'm').test(readme);
  assert.deepEqual(directories.filter((d) => !inTable(d)), [], 'missing from the README directory table');
  assert.deepEqual(directories.filter((d) => !notes.includes(`- **\`server/${d}/\`**`)), [], 'missing from docs/architecture.md');
  assert.match(readme, /\]\(docs\/architecture\.md\)/, 'README links the architecture notes in the repository');
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
