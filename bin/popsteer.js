#!/usr/bin/env node
// The popsteer command's entry point. Plain JavaScript on purpose: it is the
// first file any Node runs, so an older runtime (Debian 12's /usr/bin/node is
// 18) gets a clear message and exit code 2 instead of a raw
// ERR_UNKNOWN_FILE_EXTENSION for the TypeScript sources.

const REQUIRED_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < REQUIRED_MAJOR) {
  process.stderr.write(`popsteer: needs Node.js ${REQUIRED_MAJOR} or later, and this is ${process.version} (${process.execPath}).\n`
    + 'Run the packaged /usr/bin/popsteer (it carries its own runtime), or, in a clone, `make run` / `npx popsteer`,\n'
    + 'which use the Node.js 24 of node_modules/.bin.\n');
  process.exit(2);
}
await import('../server/cli/popsteer.ts');
