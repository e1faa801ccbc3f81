// One policy serving many names (`names:`, exact and wildcard), through a
// real server; and the clear error when a name has two policies.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { TestDnsClient, firstAnswer, records } from '../helpers/dns-client.ts';
import { runCli, startServer } from '../helpers/server.ts';

// San Jose only: whoever asks, the answer is 192.0.2.7 (pops.yaml).
const SHOP = `policies:
  - name: shop.cdn.example
    names: [customer-1.cdn.example, "*.img.cdn.example"]
    ttl: 45
    pools: { west: { pops: [sjc] } }
    rules: [{ match: default, pool: west, steps: [healthy, nearest, { first: 1 }] }]
`;

test('every name of `names:` (exact and wildcard) is answered by its policy', async () => {
  const dir = copyExampleConfig();
  writeFileSync(join(dir, 'steering', 'zz-shop.yaml'), SHOP);
  const server = await startServer({ admin: false, args: ['--config', dir, '--pop', 'ams'] });
  const client = new TestDnsClient(server.dnsPort);
  try {
    for (const name of ['shop.cdn.example', 'customer-1.cdn.example', 'a.img.cdn.example', 'b.c.img.cdn.example']) {
      const reply = await client.query(name, 'A', { subnet: '81.2.69.0/24' });
      assert.equal(firstAnswer(reply), '192.0.2.7', name);
      assert.equal(records(reply)[0].ttl, 45, name);
      assert.equal(records(reply)[0].name.toLowerCase(), name, 'the answer is owned by the name asked');
    }
    // A name listed nowhere is still NXDOMAIN.
    const other = await client.query('customer-2.cdn.example', 'A', {});
    assert.equal(other.rcode, 'NXDOMAIN');
  } finally {
    client.close();
    await server.stop();
  }
});

test('a name listed by two policies is refused with file:line and both places', async () => {
  const dir = copyExampleConfig();
  writeFileSync(join(dir, 'steering', 'zz-shop.yaml'), SHOP.replace('customer-1.cdn.example', 'www.cdn.example'));
  const r = await runCli(['validate', '--geo-data', 'geo-data', dir]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const line = readFileSync(join(dir, 'steering', 'zz-shop.yaml'), 'utf8').split('\n').findIndex((l) => l.includes('names:')) + 1;
  assert.match(r.stdout, new RegExp(`zz-shop\\.yaml:${line}:\\d+: POPSTEER_ERR_POLICY_DUPLICATE_NAME: /policies/0/names/0: www\\.cdn\\.example already has a policy \\(.*www\\.yaml:\\d+\\)`));
});
