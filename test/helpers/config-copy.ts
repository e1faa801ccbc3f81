// A private copy of the example configuration, for tests that edit it under a running server.

import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './server.ts';

export function copyExampleConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-config-'));
  cpSync(join(REPO_ROOT, 'policies'), dir, { recursive: true });
  return dir;
}
