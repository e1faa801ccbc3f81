import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type StartedServer } from '../helpers/server.ts';

const exec = promisify(execFile);
let server: StartedServer;

before(async () => { server = await startServer({ workers: 2 }); });
after(async () => { await server.stop(); });

test('dig gets an authoritative answer for www.cdn.example from the example zone', async () => {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(server.dnsPort), 'www.cdn.example', 'A', '+norec', '+time=2', '+tries=1']);
  assert.match(stdout, /status: NOERROR/);
  assert.match(stdout, /flags: qr aa;/);
  assert.match(stdout, /www\.cdn\.example\.\s+\d+\s+IN\s+A\s+\d+\.\d+\.\d+\.\d+/);
});

test('SIGTERM stops the server with exit code 0', async () => {
  const other = await startServer({ admin: false });
  assert.equal(await other.stop('SIGTERM'), 0);
});
