// Dead code does not stay: every file under server/ is reached from an entry
// point (the popsteer command, the scripts the Makefile runs, and the files
// started as worker threads), every export is imported somewhere (by another
// file under server/, or by a test that uses it as a seam), and the per-query
// DNS worker never loads the admin or the commands. Exports in files that
// other open work is changing are listed in KNOWN_UNUSED (file and name);
// an entry that is used or gone fails too, so the list only shrinks.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exportedNames, importEdges, serverSources, tsFilesUnder, workerEntries } from '../helpers/import-graph.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Exports nothing imports, in files other branches are rewriting (steering,
 * policies, geo scale, DNS wire and zone compile, health): dropped when that
 * work lands, not under it. Paths under server/.
 */
const KNOWN_UNUSED: readonly string[] = [
  'dns/constants.ts:CLASS_ANY', 'dns/constants.ts:CLASS_NONE', 'dns/constants.ts:MAX_UDP_PAYLOAD_WITHOUT_EDNS', 'dns/constants.ts:OPCODE_QUERY',
  'dns/constants.ts:RCODE_BADCOOKIE', 'dns/constants.ts:TYPE_HINFO', 'dns/constants.ts:TYPE_MB', 'dns/constants.ts:TYPE_MG',
  'dns/constants.ts:TYPE_MR', 'dns/constants.ts:TYPE_NULL', 'dns/constants.ts:TYPE_PTR', 'dns/constants.ts:typeToName', 'dns/query.ts:ParseStatus',
  'dns/rdata.ts:SoaValue', 'dns/rdata.ts:characterString', 'dns/rdata.ts:u16', 'dns/rdata.ts:u32', 'dns/template.ts:emptyTemplate',
  'geo/asn-source.ts:AsnFile', 'geo/asn-source.ts:AsnTrie', 'geo/asn-source.ts:networkOf', 'geo/asn-source.ts:readSourceFile',
  'geo/asn-text.ts:ipv4RangeToCidrs', 'geo/asn-text.ts:parseAsn', 'geo/asn-watch.ts:AsnWatchOptions', 'geo/build-index.ts:addressBit',
  'geo/build-index.ts:leafOf', 'geo/catalog.ts:POPS_FILE', 'geo/database.ts:AddressExplanation', 'geo/database.ts:DEFAULT_CITY_DATABASE',
  'geo/database.ts:explainAddress', 'geo/distance.ts:EARTH_RADIUS_KM', 'geo/distance.ts:orderPops', 'geo/index-cache.ts:CachedIndex',
  'geo/networks.ts:NETWORKS_FILE', 'geo/networks.ts:customNetworksFromSource', 'geo/scope.ts:MIXED', 'geo/watch.ts:GeoWatchOptions',
  'health/config.ts:InitialState', 'health/config.ts:SubjectProbes', 'health/overrides.ts:OverrideKind', 'health/overrides.ts:STATE_FILE_VERSION',
  'health/service.ts:CutOffStatus', 'health/service.ts:HealthServiceOptions', 'health/service.ts:HealthStatus', 'health/service.ts:NotProbedEvent',
  'health/service.ts:ProbeResult', 'health/service.ts:TargetMetrics', 'health/service.ts:TargetStatus',
  'health/service.ts:TargetTransitionEvent', 'health/table.ts:FIRST_SUBJECT_SLOT', 'health/table.ts:HEALTH_DOWN', 'health/table.ts:HEALTH_UP',
  'health/table.ts:SLOT_CUT_OFF', 'policy/policies.ts:LoadedPolicies', 'policy/policies.ts:isHealthStep',
  'steering/cidr-trie.ts:bitAt', 'steering/decide.ts:OUTCOME_ANSWER', 'steering/types.ts:WEIGHTED_NONE',
];

/** Files under server/ that the repository starts: bin/ imports, `node server/….ts` in the Makefile. */
function commandEntries(): string[] {
  const entries = new Set<string>();
  for (const name of readdirSync(join(REPO, 'bin'))) {
    for (const m of readFileSync(join(REPO, 'bin', name), 'utf8').matchAll(/import\('\.\.\/server\/([^']+\.ts)'\)/g)) entries.add(m[1]);
  }
  for (const m of readFileSync(join(REPO, 'Makefile'), 'utf8').matchAll(/\bnode\s+server\/(\S+\.ts)/g)) entries.add(m[1]);
  return [...entries];
}

/** Every file reached from `roots` through imports and worker starts. */
function reachedFrom(roots: readonly string[], sources: Map<string, string>): Set<string> {
  const reached = new Set<string>();
  const pending = [...roots];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (reached.has(file) || !sources.has(file)) continue;
    reached.add(file);
    const text = sources.get(file)!;
    pending.push(...importEdges(file, text).map((e) => e.target), ...workerEntries(file, text));
  }
  return reached;
}

/** Names each file under server/ has imported from it, by other server files and by tests, tools and benches. */
function importedNames(sources: Map<string, string>): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  const add = (target: string, taken: string[]): void => {
    const set = names.get(target) ?? new Set<string>();
    for (const name of taken) set.add(name);
    names.set(target, set);
  };
  for (const [file, text] of sources) for (const edge of importEdges(file, text)) add(edge.target, edge.names);
  for (const path of tsFilesUnder(join(REPO, 'test'))) {
    // A test's imports, rewritten as if written under server/ so the one parser reads them.
    const text = readFileSync(path, 'utf8').replace(/'(?:\.\.\/)+server\//g, "'./");
    for (const edge of importEdges('x.ts', text)) add(edge.target, edge.names);
  }
  return names;
}

function unusedExports(sources: Map<string, string>): string[] {
  const imported = importedNames(sources);
  const unused: string[] = [];
  for (const [file, text] of sources) {
    const taken = imported.get(file) ?? new Set<string>();
    if (taken.has('*')) continue;
    for (const name of exportedNames(text)) if (!taken.has(name)) unused.push(`${file}:${name}`);
  }
  return unused.sort();
}

const entryPoints = (sources: Map<string, string>): string[] => [
  ...commandEntries(),
  ...[...sources].flatMap(([file, text]) => workerEntries(file, text)),
];

test('every file under server/ is reached from an entry point', () => {
  const sources = serverSources();
  const entries = entryPoints(sources);
  assert.ok(entries.includes('cli/popsteer.ts') && entries.includes('dns-worker.ts'), `entry points found: ${entries.join(', ')}`);
  const reached = reachedFrom(entries, sources);
  const unreached = [...sources.keys()].filter((f) => !reached.has(f) && !f.endsWith('.d.ts'));
  assert.deepEqual(unreached, [], 'nothing starts or imports these: delete them or import them');
});

test('every export is imported somewhere (known debt aside)', () => {
  const unused = unusedExports(serverSources());
  assert.deepEqual(unused.filter((e) => !KNOWN_UNUSED.includes(e)), [], 'drop the export (or the code) nothing uses');
  assert.deepEqual(KNOWN_UNUSED.filter((e) => !unused.includes(e)), [], 'used or gone now: remove from KNOWN_UNUSED');
});

test('the per-query DNS worker loads nothing of the admin or the commands', () => {
  const sources = serverSources();
  const reached = [...reachedFrom(['dns-worker.ts'], sources)];
  assert.ok(reached.some((f) => f.startsWith('engine/')), 'the worker reaches the engine: the walk follows imports');
  assert.deepEqual(reached.filter((f) => /^(admin|cli)\//.test(f) || f === 'main.ts'), []);
});

test('the helpers read exports and import names', () => {
  assert.deepEqual(exportedNames('export function a() {}\nexport interface B {}\nconst c = 1;\nexport { c };\nexport const d = 2;').sort(), ['B', 'a', 'c', 'd']);
  assert.deepEqual(importEdges('a/b.ts', "import { x, type Y, z as w } from '../c.ts';\nimport * as ns from './d.ts';"), [
    { target: 'c.ts', names: ['x', 'Y', 'z'] },
    { target: 'a/d.ts', names: ['*'] },
  ]);
  assert.deepEqual(workerEntries('main.ts', "new Worker(new URL('./dns-worker.ts', import.meta.url), {})"), ['dns-worker.ts']);
});
