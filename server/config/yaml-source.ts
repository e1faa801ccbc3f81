// Reads a YAML file and keeps the map from JSON pointers to line and column,
// so that schema and meaning errors can name the exact place to edit.

import { readFileSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
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
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const pos = err.pos ? lineCounter.linePos(err.pos[0]) : null;
    throw new ConfigError('POPSTEER_ERR_YAML_SYNTAX', file, pos ? { line: pos.line, column: pos.col } : null, '',
      `${err.message.split('\n')[0]} (fix the YAML syntax here)`);
  }
  const data = doc.toJS({ maxAliasCount: 100 });
  const position = (pointer: string): SourcePosition | null => {
    const segments = pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node: unknown = doc.contents;
    let best: Node | null = (doc.contents as Node) ?? null;
    let keyNode: Node | null = null;
    for (const segment of segments) {
      if (isMap(node)) {
        const pair = node.items.find((p) => String((p.key as { value?: unknown })?.value ?? p.key) === segment);
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

export function readYamlFile(file: string): YamlSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('POPSTEER_ERR_FILE_UNREADABLE', file, null, '', `cannot read file: ${(err as Error).message}`);
  }
  return parseYamlText(file, text);
}
