// Fleet drain benchmark: how long from an override posted to one instance
// until JetStream acknowledged it (the admin's 200), and until the last of
// three instances applied it (its "fleet: override applied" log line, by the
// line's own timestamp). A real 3-server JetStream cluster and three popsteer
// instances on loopback (test/helpers/nats.ts); drains and undrains of mad
// alternate, each through the next instance in turn.
//
//   node test/bench/fleet-drain.bench.ts [--rounds 40]

import { parseArgs } from 'node:util';
import { startNatsCluster } from '../helpers/nats.ts';
import { startServer } from '../helpers/server.ts';

const rounds = Number(parseArgs({ options: { rounds: { type: 'string' } } }).values.rounds ?? 40);
const TOKEN = 'fleet-bench';
const hub = await startNatsCluster();
const servers = await Promise.all(['lhr', 'ams', 'fra'].map((pop) => startServer({
  env: { POPSTEER_ADMIN_TOKEN: TOKEN }, args: ['--pop', pop, '--fleet', hub.urls, '--fleet-insecure-loopback'],
})));
await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: following overrides and instances', 60_000)));
const ack: number[] = [];
const everywhere: number[] = [];
for (let i = 0; i < rounds; i++) {
  const reason = `bench round ${i}`;
  const started = Date.now();
  const answer = await fetch(`http://127.0.0.1:${servers[i % 3].adminPort}/v1/pops/mad/${i % 2 === 0 ? 'drain' : 'undrain'}`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason }),
  });
  ack.push(Date.now() - started);
  if (answer.status !== 200) throw new Error(await answer.text());
  const lines = await Promise.all(servers.map((s) => s.waitForLog((l) => l.msg === 'fleet: override applied' && l.reason === reason, 30_000)));
  everywhere.push(Math.max(...lines.map((l) => Date.parse(String(l.time)))) - started);
}
const quantile = (values: number[], q: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))];
console.log(`fleet drain, ${rounds} rounds, 3 instances, 3 hub servers:`);
console.log(`  POST → 200 (acknowledged)        p50 ${quantile(ack, 0.5)} ms, p99 ${quantile(ack, 0.99)} ms`);
console.log(`  POST → last instance applied     p50 ${quantile(everywhere, 0.5)} ms, p99 ${quantile(everywhere, 0.99)} ms`);
await Promise.all(servers.map((s) => s.stop()));
await hub.stop();
process.exit(0);
