// ECS scope widths on the same data: popsteer and gdnsd (plugin_geoip,
// auto_dc_coords over the same 16 PoPs and GeoLite2-City), each asked for
// www.cdn.example by 3,000 IPv4 /24s and 600 IPv6 /48s sampled from the
// database. Wider is better as long as it is right: a resolver caches the
// answer for the whole scope. Also prints popsteer's scopes for each example
// policy. Prints figures; not a test.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyExampleConfig } from '../helpers/config-copy.ts';
import { TestDnsClient, firstAnswer, replyEcs } from '../helpers/dns-client.ts';
import { startServer } from '../helpers/server.ts';
import { sampleNetworks } from './peers/queries.ts';
import { loadScenario } from './peers/scenario.ts';
import { gdnsd, popsteer, startBenchServer } from './peers/servers.ts';
import { ensurePackages } from './peers/install.ts';

function quartiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return `p25 /${at(0.25)}  median /${at(0.5)}  p75 /${at(0.75)}  mean /${mean.toFixed(1)}`;
}

const scenario = loadScenario();
const networks = sampleNetworks(scenario, 3600, 1 / 6, 7);
ensurePackages(['gdnsd']);
const dir = mkdtempSync(join(tmpdir(), 'popsteer-scopes-'));
const servers = [await startBenchServer(popsteer, scenario, join(dir, 'popsteer')), await startBenchServer(gdnsd, scenario, join(dir, 'gdnsd'))];
const lines: string[] = [`ECS scopes, ${new Date().toISOString().slice(0, 10)}: ${networks.length} networks from GeoLite2-City (node test/bench/scopes.bench.ts)`];
try {
  const answers: string[][] = [];
  for (const server of servers) {
    const client = new TestDnsClient(server.port);
    const replies = await client.queryAll(networks, (n) => client.query('www.cdn.example', 'A', { subnet: n.subnet }), 64);
    answers.push(replies.map((r) => firstAnswer(r) ?? '-'));
    for (const family of [1, 2]) {
      const scopes = replies.filter((_, i) => networks[i].family === family).map((r) => replyEcs(r)?.scopePrefixLength ?? -1);
      lines.push(`  ${server.definition.name.padEnd(9)} www  ${family === 1 ? 'IPv4 /24 sources' : 'IPv6 /48 sources'}: ${quartiles(scopes)}`);
    }
    if (server.definition.name === 'popsteer') {
      for (const name of ['eu', 'downloads', 'video', 'api']) {
        const r = await client.queryAll(networks.filter((n) => n.family === 1), (n) => client.query(`${name}.cdn.example`, 'A', { subnet: n.subnet }), 64);
        lines.push(`  popsteer  ${name.padEnd(9)} IPv4: ${quartiles(r.map((x) => replyEcs(x)?.scopePrefixLength ?? -1))}`);
      }
    }
    client.close();
  }
  const same = answers[0].filter((a, i) => a === answers[1][i]).length;
  lines.push(`  same www answer from both servers: ${same} of ${networks.length}`);
  // gdnsd's city-auto-mode keeps the 3 nearest datacenters (auto_dc_limit 3);
  // the same bound in popsteer is `nearest: { limit: 3 }`.
  const config = copyExampleConfig();
  const www = join(config, 'steering', 'www.yaml');
  writeFileSync(www, readFileSync(www, 'utf8').replace('steps: [healthy, nearest, { first: 1 }]', 'steps: [healthy, { nearest: { limit: 3 } }, { first: 1 }]'));
  const limited = await startServer({ admin: false, args: ['--config', config, '--pop', 'ams'] });
  const client = new TestDnsClient(limited.dnsPort);
  const replies = await client.queryAll(networks, (n) => client.query('www.cdn.example', 'A', { subnet: n.subnet }), 64);
  for (const family of [1, 2]) {
    const scopes = replies.filter((_, i) => networks[i].family === family).map((r) => replyEcs(r)?.scopePrefixLength ?? -1);
    lines.push(`  popsteer  www with nearest limit 3 (as gdnsd's auto_dc_limit)  ${family === 1 ? 'IPv4' : 'IPv6'}: ${quartiles(scopes)}`);
  }
  const sameLimited = replies.filter((r, i) => (firstAnswer(r) ?? '-') === answers[1][i]).length;
  lines.push(`  same www answer as gdnsd with the limit: ${sameLimited} of ${networks.length}`);
  client.close();
  await limited.stop();
} finally {
  for (const s of servers) await s.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${lines.join('\n')}\n`);
