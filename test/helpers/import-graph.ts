// The import graph of server/, read from the source text, shared by the
// layering test (which module may import which, no cycles) and the
// reachability test (every file and export is used). It reads only static
// `import … from` / `export … from` lines with relative paths, plus the files
// a `new Worker(new URL('./x.ts', import.meta.url))` starts: that is how every
// file under server/ refers to another.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SERVER = fileURLToPath(new URL('../../server/', import.meta.url));

/** Every .ts file under `dir`, as absolute paths. */
export function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? tsFilesUnder(path) : name.endsWith('.ts') ? [path] : [];
  });
}

/** `spec` (relative to the file at `file`, both under server/) as a path under server/, or null when it leaves server/. */
function resolveUnderServer(file: string, spec: string): string | null {
  const target = relative(SERVER, join(SERVER, file, '..', spec));
  return target.startsWith('..') ? null : target;
}

/** One import or re-export line: the file it names and the names it takes ('*' for a namespace or `export *`). */
export interface ImportEdge {
  target: string;
  names: string[];
}

const IMPORT_LINE = /(?:^|\n)\s*(import|export)\s+(type\s+)?([^'"]*?)\s*from\s+'(\.{1,2}\/[^']+)'/g;

/** The imports and re-exports of `text` (a file at `file`, under server/) that stay under server/. */
export function importEdges(file: string, text: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const m of text.matchAll(IMPORT_LINE)) {
    const target = resolveUnderServer(file, m[4]);
    if (target !== null) edges.push({ target, names: namesTaken(m[3]) });
  }
  return edges;
}

/** The names an import clause takes: `{ a, b as c, type d }` → a, b, d; `* as ns` or `*` → '*'; a default import → 'default'. */
function namesTaken(clause: string): string[] {
  if (clause.includes('*')) return ['*'];
  const braces = /\{([^}]*)\}/.exec(clause);
  const names = braces ? braces[1].split(',').map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]).filter((s) => s !== '') : [];
  const beforeBraces = clause.replace(/\{[^}]*\}/, '').replace(/,/g, '').trim();
  if (beforeBraces !== '') names.push('default');
  return names;
}

/** Paths under server/ that `text` (a file at `file`, under server/) imports or re-exports. */
export function importedFiles(file: string, text: string): string[] {
  return importEdges(file, text).map((e) => e.target);
}

/** Files `text` starts as worker threads (`new Worker(new URL('./x.ts', import.meta.url))`). */
export function workerEntries(file: string, text: string): string[] {
  const entries: string[] = [];
  for (const m of text.matchAll(/new Worker\(\s*new URL\(\s*'(\.{1,2}\/[^']+\.ts)'/g)) {
    const target = resolveUnderServer(file, m[1]);
    if (target !== null) entries.push(target);
  }
  return entries;
}

/** The text of every .ts file under server/, by path under server/. */
export function serverSources(): Map<string, string> {
  return new Map(tsFilesUnder(SERVER).map((path) => [relative(SERVER, path), readFileSync(path, 'utf8')]));
}

/** Every .ts file under server/ with the files it imports. */
export function importGraph(sources = serverSources()): Map<string, string[]> {
  return new Map([...sources].map(([file, text]) => [file, importedFiles(file, text)]));
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

/** The names `text` exports itself (declarations and `export { … }` without `from`). */
export function exportedNames(text: string): string[] {
  const names = new Set<string>();
  const declaration = /(?:^|\n)export\s+(?:declare\s+)?(?:default\s+)?(?:async\s+)?(?:abstract\s+)?(?:function\*?|const|let|var|class|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g;
  for (const m of text.matchAll(declaration)) names.add(m[1]);
  for (const m of text.matchAll(/(?:^|\n)export\s+(?:type\s+)?\{([^}]*)\}\s*;/g)) {
    for (const part of m[1].split(',')) {
      const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()!;
      if (name !== '') names.add(name);
    }
  }
  if (/(?:^|\n)export\s+default\s/.test(text)) names.add('default');
  return [...names];
}
