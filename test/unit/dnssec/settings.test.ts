// The DNSSEC thresholds as settings (config/settings.ts): defaults, the
// popsteer.yaml dnssec: mapping, flags over it, and the order they must keep
// (check interval < unfit margin < re-sign threshold < validity - 1 day),
// refused with the file, line and what to lower. The chosen validity reaches
// the compile (signature windows), the thresholds reach SignatureRefresh.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigErrors } from '../../../server/config/errors.ts';
import { resolveSettings } from '../../../server/config/settings.ts';
import { SignatureRefresh } from '../../../server/dnssec/refresh.ts';
import { validityAt } from '../../../server/dnssec/sign.ts';

const configDir = (yaml: string | null): string => {
  const dir = mkdtempSync(join(tmpdir(), 'popsteer-dnssec-settings-'));
  if (yaml !== null) writeFileSync(join(dir, 'popsteer.yaml'), yaml);
  return dir;
};
const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveSettings(argv, env, tmpdir()).settings;
const messages = (call: () => unknown): string => {
  try {
    call();
  } catch (err) {
    assert.ok(err instanceof ConfigErrors);
    return err.errors.map((e) => e.format()).join('\n');
  }
  return assert.fail('expected ConfigErrors');
};

test('defaults: 14-day validity, re-sign within 7 days, unfit within 48 hours, checked every 10 minutes', () => {
  const s = resolve(['--config', configDir(null)]);
  assert.deepEqual([s.dnssecValidityDays, s.dnssecResignDays, s.dnssecUnfitHours, s.dnssecCheckMinutes], [14, 7, 48, 10]);
});

test('popsteer.yaml\'s dnssec: mapping, the environment and flags over it', () => {
  const dir = configDir('dnssec:\n  validity_days: 30\n  resign_days: 10\n  unfit_hours: 72\n  check_minutes: 5\n');
  const s = resolve(['--config', dir]);
  assert.deepEqual([s.dnssecValidityDays, s.dnssecResignDays, s.dnssecUnfitHours, s.dnssecCheckMinutes], [30, 10, 72, 5]);
  assert.equal(resolve(['--config', dir], { POPSTEER_DNSSEC_RESIGN_DAYS: '12' }).dnssecResignDays, 12);
  assert.equal(resolve(['--config', dir, '--dnssec-resign-days', '20'], { POPSTEER_DNSSEC_RESIGN_DAYS: '12' }).dnssecResignDays, 20);
});

test('out of order: refused naming popsteer.yaml, the line and what to lower', () => {
  const dir = configDir('dnssec:\n  validity_days: 8\n  resign_days: 7\n');
  assert.match(messages(() => resolve(['--config', dir])),
    new RegExp(`${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/popsteer\\.yaml:3:\\d+: POPSTEER_ERR_SETTING: /dnssec/resign_days: dnssec\\.resign_days \\(7\\) must be below dnssec\\.validity_days - 1 \\(7\\): lower resign_days or raise validity_days`));
  const unfit = configDir('dnssec:\n  resign_days: 2\n  unfit_hours: 48\n');
  assert.match(messages(() => resolve(['--config', unfit])), /popsteer\.yaml:3:\d+: .*dnssec\.unfit_hours \(48\) must be below dnssec\.resign_days in hours \(48\).*lower unfit_hours/);
  assert.match(messages(() => resolve(['--config', configDir(null), '--dnssec-check-minutes', '2880'])), /dnssec\.check_minutes \(2880\) must be below dnssec\.unfit_hours in minutes \(2880\)/);
  assert.match(messages(() => resolve(['--config', configDir('dnssec:\n  validity_days: 0\n')])), /popsteer\.yaml:2:\d+: .*must be a whole number ≥ 1/);
  assert.match(messages(() => resolve(['--config', configDir('dnssec:\n  resign: 3\n')])), /unknown setting "dnssec\.resign"/);
});

test('the validity and thresholds take effect: window length, re-sign and unfit points', async () => {
  const day = 86_400_000;
  const t0 = Date.UTC(2026, 0, 10, 12);
  assert.equal(validityAt(t0, 30).expiration * 1000, Date.UTC(2026, 1, 9));
  let now = t0;
  const refreshes: string[] = [];
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const refresh = new SignatureRefresh({
    now: () => now, expiry: () => Date.UTC(2026, 1, 9), log: quiet,
    refresh: async (reason) => { refreshes.push(reason); return { ok: false, errors: ['x'] }; },
    thresholdMs: 10 * day, marginMs: 72 * 3_600_000,
  });
  now = Date.UTC(2026, 0, 30, 1); // 9.96 days left: within 10
  await refresh.check();
  assert.equal(refreshes.length, 1);
  assert.equal(refresh.unfitReason(), null);
  now = Date.UTC(2026, 1, 6, 1); // 71 hours left
  assert.match(refresh.unfitReason() ?? '', /in 71\.0 h/);
});
