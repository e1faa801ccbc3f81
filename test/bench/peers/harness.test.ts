// The harness itself must be right before its numbers mean anything: the
// queries carry the ECS option a real resolver would send, the sample is
// what it claims, and each peer accepts the configuration rendered for it.
//   node --test test/bench/peers/harness.test.ts

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { missingPackages } from './install.ts';
import { encodeQuery, sampleNetworks } from './queries.ts';
import { distanceKm } from '../../../server/geo/distance.ts';
import { loadScenario, nearestPop } from './scenario.ts';
import { gdnsd, knot, powerdns } from './servers.ts';

const scenario = loadScenario();
const work = mkdtempSync(join(tmpdir(), 'popsteer-bench-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** One spelling per address, so "2001:db8:0:0::" equals "2001:db8::". */
const canonicalIp = (ip: string): string => (ip.includes(':') ? new URL(`http://[${ip}]`).hostname : ip);

describe('query files', () => {
  const samples = sampleNetworks(scenario, 300, 0.2);

  it('samples distinct located networks in the stated IPv4/IPv6 split', () => {
    assert.equal(new Set(samples.map((s) => s.subnet)).size, 300);
    assert.equal(samples.filter((s) => s.family === 2).length, 60);
    for (const s of samples) {
      assert.equal(s.address.length, s.sourcePrefix / 8);
      assert.ok(Math.abs(s.lat) <= 90 && Math.abs(s.lon) <= 180);
    }
  });

  it('encodes each query with its own ECS option, as a resolver sends it', () => {
    for (const s of [samples.find((x) => x.family === 1)!, samples.find((x) => x.family === 2)!]) {
      const decoded = packet.decode(encodeQuery('www.cdn.example', s, 0x1234));
      assert.equal(decoded.id, 0x1234);
      assert.equal(decoded.questions![0].name, 'www.cdn.example');
      assert.equal(decoded.questions![0].type, 'A');
      const opt = decoded.additionals![0] as packet.OptAnswer;
      assert.equal(opt.type, 'OPT');
      const ecs = opt.options[0] as { code: number; family: number; sourcePrefixLength: number; scopePrefixLength: number; ip: string };
      assert.equal(ecs.code, 8);
      assert.equal(ecs.family, s.family);
      assert.equal(ecs.sourcePrefixLength, s.sourcePrefix);
      assert.equal(ecs.scopePrefixLength, 0);
      assert.equal(canonicalIp(ecs.ip), canonicalIp(s.subnet.split('/')[0]));
    }
  });

  it('computes the reference nearest PoP by great-circle distance', () => {
    assert.ok(Math.abs(distanceKm(51.5072, -0.1276, 52.3676, 4.9041) - 357) < 5); // London–Amsterdam
    assert.equal(nearestPop(scenario.pops, 48.8566, 2.3522).id, 'lhr'); // Paris: London 344 km, Frankfurt 479 km
    assert.equal(nearestPop(scenario.pops, -41.29, 174.78).id, 'akl'); // Wellington
  });
});

// The peers' own checkers, on the exact files the harness writes.
// Skipped per test, not per suite: node --test counts skipped tests, while a
// skipped describe() would vanish from its summary ("skipped 0").
const missing = missingPackages(['gdnsd', 'knot', 'pdns-server', 'pdns-backend-bind', 'pdns-backend-geoip']);
const skip = missing.length ? `not installed: ${missing.join(' ')} (make bench installs them)` : false;
describe('peer configurations', () => {
  it('gdnsd checkconf accepts the geoip map over all PoPs', { skip }, () => {
    const dir = mkdtempSync(join(work, 'gdnsd-'));
    gdnsd.prepare(scenario, dir, 5300);
    const result = spawnSync('gdnsd', ['-c', dir, 'checkconf'], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
  });

  it('knotc conf-check accepts the configuration and the zone', { skip }, () => {
    const dir = mkdtempSync(join(work, 'knot-'));
    knot.prepare(scenario, dir, 5301);
    const result = spawnSync('knotc', ['-c', `${dir}/knot.conf`, 'conf-check'], { encoding: 'utf8' });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  });

  it('pdnsutil check-zone accepts the zone with its LUA record', { skip }, () => {
    const dir = mkdtempSync(join(work, 'pdns-'));
    powerdns.prepare(scenario, dir, 5302);
    const result = spawnSync('pdnsutil', [`--config-dir=${dir}`, 'check-zone', scenario.zone], { encoding: 'utf8' });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /0 errors/);
  });
});
