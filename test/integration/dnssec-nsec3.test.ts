// NSEC3 with real validators (issue 21, round 3): the example configuration
// with cdn.example signed and `nsec: nsec3` (RFC 9276 parameters), behind
// unbound trusting only the zone's DS. AD=1 on NXDOMAIN, NODATA, a wildcard
// expansion and its NODATA, the insecure lab delegation's missing DS, a
// steered answer and a CNAME chased to a missing name; delv "fully
// validated"; the answers carry NSEC3, never NSEC.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { delv, dig, signExampleZone, startUnboundOnFreePort, stopChild } from '../helpers/dnssec-lab.ts';
import { startServer, type StartedServer } from '../helpers/server.ts';

let server: StartedServer;
let unbound: ChildProcess | undefined;
let unboundPort = 0;
let dsRecord = '';

before(async () => {
  const config = copyExampleConfig();
  const zoneFile = join(config, 'zones', 'cdn.example.yaml');
  writeFileSync(zoneFile, readFileSync(zoneFile, 'utf8').replace(/^records:\n/m, 'records:\n  dangling: { CNAME: gone }\n  "*.txt": { TXT: wild }\n'));
  dsRecord = await signExampleZone(config, '{ keys: keys, algorithm: 13, nsec: nsec3 }');
  server = await startServer({ workers: 1, args: ['--pop', 'ams', '--config', config] });
  ({ child: unbound, port: unboundPort } = await startUnboundOnFreePort(mkdtempSync(join(tmpdir(), 'popsteer-nsec3-unbound-')), server.dnsPort, dsRecord));
});

after(async () => {
  await stopChild(unbound);
  await server?.stop();
});

async function validated(name: string, type: string, status: string, ...extra: string[]): Promise<string[]> {
  const r = await dig(unboundPort, name, type, ...extra);
  assert.equal(r.status, status, r.text);
  assert.ok(r.flags.includes('ad'), `AD set:\n${r.text}`);
  return r.answers;
}

describe('unbound validates NSEC3 denials (AD=1)', () => {
  test('NXDOMAIN, directly below the apex and two labels down', async () => {
    await validated('no-such-name.cdn.example', 'A', 'NXDOMAIN');
    await validated('a.b.no-such.cdn.example', 'AAAA', 'NXDOMAIN');
  });

  test('NODATA at a static name and at an empty non-terminal', async () => {
    assert.deepEqual(await validated('status.cdn.example', 'TXT', 'NOERROR'), []);
    assert.deepEqual(await validated('_tcp.origin.cdn.example', 'A', 'NOERROR'), []);
  });

  test('a wildcard expansion and a wildcard NODATA', async () => {
    const answers = await validated('img7.assets.cdn.example', 'A', 'NOERROR', '+subnet=81.2.69.0/24');
    assert.ok(answers.some((l) => /\sCNAME\s/.test(l)), answers.join('\n'));
    const txt = await validated('q.txt.cdn.example', 'TXT', 'NOERROR');
    assert.ok(txt.some((l) => /^q\.txt\.cdn\.example\.\s.*\sTXT\s+"wild"$/.test(l)), txt.join('\n'));
    assert.deepEqual(await validated('r.txt.cdn.example', 'A', 'NOERROR'), []);
  });

  test('the insecure lab delegation: no DS, proven', async () => {
    assert.deepEqual(await validated('lab.cdn.example', 'DS', 'NOERROR'), []);
  });

  test('a steered answer and a CNAME chased to a missing name', async () => {
    await validated('www.cdn.example', 'A', 'NOERROR', '+subnet=216.160.83.0/24');
    await validated('dangling.cdn.example', 'A', 'NXDOMAIN');
  });
});

describe('straight from popsteer', () => {
  test('denials carry NSEC3 and never NSEC; NSEC3PARAM answers at the apex', async () => {
    const r = await dig(server.dnsPort, 'no-such-name.cdn.example', 'A', '+norec');
    const nsec3 = r.authority.filter((l) => /\sIN\s+NSEC3\s+1 0 0 - /.test(l));
    assert.ok(nsec3.length >= 2 && nsec3.length <= 3, r.text);
    assert.ok(!r.authority.some((l) => /\sIN\s+NSEC\s/.test(l)), r.text);
    const param = await dig(server.dnsPort, 'cdn.example', 'NSEC3PARAM', '+norec');
    assert.ok(param.answers.some((l) => /\sNSEC3PARAM\s+1 0 0 -$/.test(l)), param.text);
  });

  test('delv: "fully validated" for NXDOMAIN and a steered name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'popsteer-delv-'));
    assert.match(await delv(dir, server.dnsPort, dsRecord, 'www.cdn.example', 'A'), /; fully validated/);
    assert.match(await delv(dir, server.dnsPort, dsRecord, 'no-such-name.cdn.example', 'A'), /fully validated/);
  });
});
