// Log lines as a log pipeline reads them: JSON parsers keep the last of two
// equal keys, so a line that repeats a key loses data silently. Every line a
// test server writes goes through duplicateKeys(); the server helper fails
// the test that saw one.

import { visit } from 'jsonc-parser';

/** Keys that occur twice in one object of `text` (JSON), as "path.key"; empty when none. */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  const open: Array<{ path: string; keys: Set<string> }> = [];
  let lastKey = '';
  visit(text, {
    onObjectBegin: () => {
      const parent = open.at(-1);
      open.push({ path: parent ? `${parent.path}${lastKey}.` : '', keys: new Set() });
    },
    onObjectProperty: (key) => {
      const current = open.at(-1)!;
      if (current.keys.has(key)) found.push(`${current.path}${key}`);
      current.keys.add(key);
      lastKey = key;
    },
    onObjectEnd: () => { open.pop(); },
  });
  return found;
}
