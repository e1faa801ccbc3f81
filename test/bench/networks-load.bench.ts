// networks.yaml at scale: how long a large custom-network file takes to read
// and validate (geo/networks.ts), and to be spliced into the GeoLite2-City
// index with the nearest-PoP orders (what a start or a database replacement
// adds for it). The file comes from networks-gen.ts.
//
//   node test/bench/networks-load.bench.ts            (NETWORKS_BENCH_SIZES=50000,200000 to change)

import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadPopCatalog } from '../../server/geo/catalog.ts';
import { loadGeoDatabase } from '../../server/geo/database.ts';
import { nearestOrderClasses } from '../../server/geo/distance.ts';
import { loadCustomNetworks } from '../../server/geo/networks.ts';
import { fileURLToPath } from 'node:url';
import { networksYaml } from './networks-gen.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SIZES = (process.env.NETWORKS_BENCH_SIZES ?? '25000,50000,100000,200000').split(',').map(Number);

const dir = mkdtempSync(join(tmpdir(), 'popsteer-networks-bench-'));
try {
  copyFileSync(join(REPO_ROOT, 'geo-data', 'pops.yaml'), join(dir, 'pops.yaml'));
  const catalog = loadPopCatalog(dir);
  process.stdout.write('entries   read+validate (wall, cpu)   index build (City + networks)   nearest orders\n');
  for (const size of SIZES) {
    writeFileSync(join(dir, 'networks.yaml'), networksYaml(size, catalog.ids));
    let started = performance.now();
    const cpu = process.cpuUsage();
    const networks = loadCustomNetworks(dir, catalog);
    const validateMs = performance.now() - started;
    const validateCpu = process.cpuUsage(cpu);
    started = performance.now();
    const database = loadGeoDatabase(undefined, { networks });
    const indexMs = performance.now() - started;
    started = performance.now();
    nearestOrderClasses(database.index, catalog);
    const ordersMs = performance.now() - started;
    process.stdout.write(`${String(size).padStart(7)}   ${(validateMs / 1000).toFixed(2).padStart(10)} s, ${((validateCpu.user + validateCpu.system) / 1e6).toFixed(2)} s   ${(indexMs / 1000).toFixed(2).padStart(20)} s   ${(ordersMs / 1000).toFixed(2).padStart(14)} s\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
