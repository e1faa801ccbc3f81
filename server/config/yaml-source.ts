// Reads a YAML file and keeps the map from JSON pointers to line and column,
// so that schema and meaning errors can name the exact place to edit.

import { readFileSync } from 'node:fs';
import { load as loadQuickly } from 'js-yaml';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { ConfigError, type SourcePosition } from './errors.ts';

export interface YamlSource {
  file: string;
  text: string;
  data: unknown;
  /** Line and column of the value at a JSON pointer ("/records/www/A/0"), or of its nearest ancestor. */
  position(pointer: string): SourcePosition | null;
}

export function parseYamlText(file: string, text: string): YamlSource {
  const lineCounter = new LineCounter();
  // Duplicate keys are found by duplicateKey() below: the parser's own check
  // (uniqueKeys) compares each key with every earlier one of its map, which
  // made a 40,000-entry networks.yaml take most of a minute.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const syntaxError = (offset: number | null, message: string): ConfigError => {
    const pos = offset !== null ? lineCounter.linePos(offset) : null;
    return new ConfigError('POPSTEER_ERR_YAML_SYNTAX', file, pos ? { line: pos.line, column: pos.col } : null, '', `${message} (fix the YAML syntax here)`);
  };
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    throw syntaxError(err.pos ? err.pos[0] : null, err.message.split('\n')[0]);
  }
  const duplicate = duplicateKey(doc);
  if (duplicate) throw syntaxError(duplicate.range?.[0] ?? null, 'Map keys must be unique');
  const data = doc.toJS({ maxAliasCount: 100 });
  // Pairs of each map by key text, made the first time a pointer goes through
  // that map: a lookup per segment instead of a scan of the map's items.
  const pairIndexes = new WeakMap<YAMLMap, Map<string, Pair>>();
  const pairOf = (map: YAMLMap, segment: string): Pair | undefined => {
    let index = pairIndexes.get(map);
    if (!index) {
      index = new Map();
      for (const pair of map.items) {
        const key = keyText(pair);
        if (!index.has(key)) index.set(key, pair as Pair);
      }
      pairIndexes.set(map, index);
    }
    return index.get(segment);
  };
  const position = (pointer: string): SourcePosition | null => {
    const segments = pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node: unknown = doc.contents;
    let best: Node | null = (doc.contents as Node) ?? null;
    let keyNode: Node | null = null;
    for (const segment of segments) {
      if (isMap(node)) {
        const pair = pairOf(node as YAMLMap, segment);
        if (!pair) break;
        keyNode = pair.key as Node;
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(segment)];
        if (item === undefined) break;
        keyNode = null;
        node = item;
      } else {
        break;
      }
      if (node && typeof node === 'object' && 'range' in (node as object)) best = node as Node;
      else if (keyNode) best = keyNode;
    }
    const range = best?.range ?? keyNode?.range;
    if (!range) return null;
    const lp = lineCounter.linePos(range[0]);
    return { line: lp.line, column: lp.col };
  };
  return { file, text, data, position };
}

/** A pair's key as a JSON pointer segment names it. */
function keyText(pair: { key: unknown }): string {
  return String((pair.key as { value?: unknown })?.value ?? pair.key);
}

/**
 * The first key that repeats an earlier key of the same map, with the
 * parser's notion of equal (scalars of equal value; other keys only when they
 * are the same node), found with one hash lookup per key.
 */
function duplicateKey(doc: Document): Node | null {
  let found: Node | null = null;
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key)) {
          found = pair.key as Node;
          return visit.BREAK;
        }
        seen.add(key);
      }
      return undefined;
    },
  });
  return found;
}

/**
 * For files that may hold hundreds of thousands of entries (networks.yaml),
 * or that come by the thousand (policy files, policy/policies.ts):
 * the same result as parseYamlText, but the data comes from js-yaml, which
 * builds no document tree (200,000 entries: about 1.5 s of CPU instead of
 * 20 s and 2.5 GB of tree). Line and column are found only when an error
 * needs them, by parsing again with positions. Anything js-yaml refuses (a
 * syntax error, a repeated key, an alias) goes to parseYamlText, so errors,
 * their wording and the alias limit are the same as for every other file.
 */
export function parseLargeYamlText(file: string, text: string): YamlSource {
  let data: unknown;
  try {
    data = loadQuickly(text, { filename: file, maxAliases: 0 });
  } catch {
    return parseYamlText(file, text);
  }
  let positioned: YamlSource | null = null;
  return {
    file, text, data,
    position: (pointer) => (positioned ??= parseYamlText(file, text)).position(pointer),
  };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_FILE_UNREADABLE', file, null, '', `cannot read file: ${(err as Error).message}`);
  }
}

export function readYamlFile(file: string): YamlSource {
  return parseYamlText(file, readText(file));
}

/** readYamlFile for files with very many entries (see parseLargeYamlText). */
export function readLargeYamlFile(file: string): YamlSource {
  return parseLargeYamlText(file, readText(file));
}
