// What signing costs at compile time (issue 21): the example configuration
// compiled unsigned, signed with P-256 and with Ed25519, and with one more
// policy that can answer any 3 of all PoPs (`first: 3`), printing compile
// time (median of 5), distinct signatures and heap growth, and for a signed
// set the size of the signatures a published revision carries (the gzip
// file and the whole revision record, against NATS's 1 MB); then the engine's
// time per query with DO=0 and DO=1 on the same stream. Not a test.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { nameToWire } from '../../server/dns/name.ts';
import { generateKey } from '../../server/dnssec/keys.ts';
import { encodeSignatureSet } from '../../server/dnssec/presigned.ts';
import { loadKeySet } from '../../server/dnssec/rollover.ts';
import { encodeRevision, newRevision, readConfigFiles } from '../../server/fleet/revision-record.ts';
import { Engine, TRANSPORT_UDP } from '../../server/engine/engine.ts';
import { loadGeo } from '../../server/geo-context.ts';
import { loadSnapshot } from '../../server/policy/load.ts';
import { compileZones, zoneFilesIn } from '../../server/policy/zones.ts';
import { message } from '../conformance/wire.ts';
import { REPO_ROOT } from '../helpers/server.ts';

const geo = loadGeo({ geoDataDir: join(REPO_ROOT, 'geo-data'), geoipDatabase: [], asnDatabase: [], cacheDir: null });

function configWith(algorithm: number | null, extraPolicy: boolean, nsec = 'nsec'): string {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-bench-'));
  cpSync(join(REPO_ROOT, 'policies'), dir, { recursive: true });
  if (algorithm !== null) {
    generateKey(join(dir, 'keys'), 'cdn.example', algorithm);
    const zone = join(dir, 'zones', 'cdn.example.yaml');
    writeFileSync(zone, readFileSync(zone, 'utf8').replace(/^zone: cdn\.example$/m, `zone: cdn.example\ndnssec: { keys: keys, algorithm: ${algorithm}, nsec: ${nsec} }`));
  }
  if (extraPolicy) {
    writeFileSync(join(dir, 'steering', 'three.yaml'), `policies:
  - name: three.cdn.example
    ttl: 60
    pools: { edge: { pops: all } }
    rules: [{ name: three, match: default, pool: edge, steps: [healthy, nearest, { first: 3 }] }]
`);
  }
  return dir;
}

/** What `popsteer publish` would store: the zone's signature file and the revision record with every file. */
function publishedSize(dir: string, algorithm: number, signatures: ReadonlyMap<string, Uint8Array>): string {
  const set = encodeSignatureSet('cdn.example', loadKeySet(join(dir, 'keys'), 'cdn.example', algorithm), signatures);
  const files = [...readConfigFiles(dir), { path: 'keys/cdn.example.signatures', data: set.bytes.toString('base64') }];
  const record = encodeRevision(newRevision(files, { author: 'bench', message: '', canary: [], rollbackOf: null, at: 0 })).length;
  return `  published: set ${set.bytes.length} B, revision ${record} B`;
}

function measure(label: string, algorithm: number | null, extraPolicy: boolean, nsec = 'nsec'): void {
  const dir = configWith(algorithm, extraPolicy, nsec);
  const times: number[] = [];
  let signatures = 0;
  let heap = 0;
  let published = '';
  for (let i = 0; i < 5; i++) {
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    const started = performance.now();
    const result = loadSnapshot(dir, geo.context, 'ams');
    times.push(performance.now() - started);
    if (!result.snapshot) throw new Error(result.errors.map((e) => e.format()).join('\n'));
    signatures = result.snapshot.dnssec?.signatures.size ?? 0;
    heap = process.memoryUsage().heapUsed - before;
    if (i === 0 && algorithm !== null) published = publishedSize(dir, algorithm, result.snapshot.dnssec!.signatures);
  }
  times.sort((a, b) => a - b);
  const mib = globalThis.gc ? `${(heap / 1048576).toFixed(1)} MiB` : 'n/a (run with --expose-gc)';
  process.stdout.write(`${label.padEnd(44)} compile ${times[2].toFixed(0).padStart(5)} ms  signatures ${String(signatures).padStart(6)}  heap +${mib}${published}\n`);
  rmSync(dir, { recursive: true, force: true });
}

process.stdout.write(`DNSSEC compile, ${new Date().toISOString().slice(0, 10)} (node --expose-gc test/bench/dnssec.bench.ts)\n`);
measure('example config, unsigned', null, false);
measure('example config, P-256 (13)', 13, false);
measure('example config, Ed25519 (15)', 15, false);
measure('example config, P-256, NSEC3', 13, false, 'nsec3');
measure('+ three.cdn.example (first: 3 of all PoPs), P-256', 13, true);
measure('+ three.cdn.example (first: 3 of all PoPs), Ed25519', 15, true);
measure('+ three.cdn.example (first: 3 of all PoPs), P-256, NSEC3', 13, true, 'nsec3');

// Per query, in-process (no sockets): the same query stream with DO=0 and DO=1
// through the engine over the signed example zone (static names only).

function perQuery(nsec: string): void {
  const dir = configWith(13, false, nsec);
  const { result } = compileZones(zoneFilesIn(dir), []);
  if (!result) throw new Error('the signed example zone did not compile');
  const engine = new Engine({ names: result.names, zones: result.zones, steering: null, hash: 'b', loadedAt: 0, dnssec: result.dnssec! }, { popId: 'ams', versionBind: null });
  const names: Array<[string, number]> = [['status.cdn.example.', 1], ['status.cdn.example.', 28], ['cdn.example.', 15], ['nope.cdn.example.', 1], ['status.cdn.example.', 16]];
  const stream = (dnssecOk: boolean): Uint8Array[] => names.map(([n, t]) => message({ questions: [{ name: nameToWire(n), type: t }], edns: { dnssecOk } }));
  const client = { address: '192.0.2.1', family: 0 };
  const run = (queries: Uint8Array[], rounds: number): number => {
    const started = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) for (const q of queries) engine.handle(q, q.length, TRANSPORT_UDP, client);
    return Number(process.hrtime.bigint() - started) / (rounds * queries.length);
  };
  const plain = stream(false);
  const signed = stream(true);
  run(plain, 50_000);
  run(signed, 50_000);
  const ns = { plain: [] as number[], signed: [] as number[] };
  for (let i = 0; i < 5; i++) {
    ns.plain.push(run(plain, 100_000));
    ns.signed.push(run(signed, 100_000));
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[2];
  process.stdout.write(`per query (${nsec}), static answers + NXDOMAIN + NODATA: DO=0 ${median(ns.plain).toFixed(0)} ns, DO=1 ${median(ns.signed).toFixed(0)} ns (${(median(ns.signed) / median(ns.plain)).toFixed(2)}×)\n`);
  rmSync(dir, { recursive: true, force: true });
}
perQuery('nsec');
perQuery('nsec3');
