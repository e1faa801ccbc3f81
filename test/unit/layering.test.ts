// The module boundaries of DESIGN.md, checked from the import lines: the fast
// path must not grow a dependency on the slow path, and the codec stays pure.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SERVER = fileURLToPath(new URL('../../server/', import.meta.url));

/** For each module directory under server/, the project modules it must never import. */
const FORBIDDEN: Record<string, string[]> = {
  dns: ['*'],
  transport: ['*'],
  fsutil: ['*'],
  snapshot: ['config', 'engine', 'geo', 'health', 'policy', 'transport', 'admin', 'cli', 'rrl', 'anycast'],
  steering: ['config', 'engine', 'health', 'policy', 'transport', 'admin', 'cli', 'rrl', 'anycast', 'snapshot'],
  engine: ['policy', 'transport', 'admin', 'health', 'cli', 'config', 'anycast'],
  geo: ['engine', 'transport', 'admin', 'steering', 'health', 'cli', 'anycast'],
  policy: ['engine', 'transport', 'admin', 'health', 'cli', 'anycast'],
  health: ['engine', 'transport', 'steering', 'admin', 'cli', 'anycast'],
  anycast: ['engine', 'policy', 'steering', 'geo', 'health', 'admin', 'transport'],
  // dnstap sees bytes and numbers; the DNS worker's hook (server/dnstap-hook.ts) hands it the decision.
  dnstap: ['engine', 'policy', 'steering', 'health', 'admin', 'cli', 'transport', 'rrl', 'anycast', 'snapshot'],
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : name.endsWith('.ts') ? [path] : [];
  });
}

function importedModules(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const modules: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.{1,2}\/[^']+)'/g)) {
    const target = relative(SERVER, join(file, '..', m[1]));
    const top = target.split('/')[0];
    if (!target.startsWith('..')) modules.push(top.endsWith('.ts') ? top.replace(/\.ts$/, '') : top);
  }
  return modules;
}

test('module imports follow the layering of DESIGN.md', () => {
  const violations: string[] = [];
  let checked = 0;
  for (const [module, forbidden] of Object.entries(FORBIDDEN)) {
    for (const file of filesUnder(join(SERVER, module))) {
      checked++;
      for (const target of importedModules(file)) {
        if (target === module) continue;
        if (forbidden.includes('*') || forbidden.includes(target)) violations.push(`${relative(SERVER, file)} imports ${target}/`);
      }
    }
  }
  assert.ok(checked > 30, `checked ${checked} files`);
  assert.deepEqual(violations, []);
});

test('the checker sees imports (a file importing across a boundary is caught)', () => {
  const engineFiles = filesUnder(join(SERVER, 'engine'));
  const imports = engineFiles.flatMap(importedModules);
  assert.ok(imports.includes('dns'), 'engine imports dns/: the parser found it');
});
