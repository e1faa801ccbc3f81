// Background re-signing and the unfit verdict (server/dnssec/refresh.ts),
// driven by a manual clock: a refresh starts when the served signatures
// expire within the threshold and never before; one refresh runs at a time;
// a failed refresh leaves the instance fit until the safety margin, then
// unfit with a reason naming the expiry, logged once; a successful one makes
// it fit again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REFRESH_THRESHOLD_MS, SignatureRefresh, UNFIT_MARGIN_MS } from '../../../server/dnssec/refresh.ts';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 10, 12);

interface Line { level: string; message: string; fields: Record<string, unknown> }

function harness(options: { refreshOk: boolean }) {
  const state = { now: T0, expiry: T0 + 13.5 * DAY as number | null, refreshes: [] as string[], ok: options.refreshOk };
  const lines: Line[] = [];
  const log = {
    info: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'info', message, fields }),
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'warn', message, fields }),
    error: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'error', message, fields }),
  };
  const refresh = new SignatureRefresh({
    now: () => state.now,
    expiry: () => state.expiry,
    refresh: async (reason) => {
      state.refreshes.push(reason);
      // A successful re-sign moves the window to 14 days after the clock's day.
      if (state.ok) state.expiry = Math.floor(state.now / DAY) * DAY + 14 * DAY;
      return state.ok ? { ok: true, errors: [] } : { ok: false, errors: ['zones/cdn.example.yaml: no key'] };
    },
    log,
  });
  return { state, lines, refresh };
}

test('the defaults: re-sign 7 days before expiry, unfit within 2', () => {
  assert.equal(REFRESH_THRESHOLD_MS, 7 * DAY);
  assert.equal(UNFIT_MARGIN_MS, 2 * DAY);
});

test('no refresh while the expiry is further than the threshold; one when it comes nearer', async () => {
  const { state, lines, refresh } = harness({ refreshOk: true });
  await refresh.check();
  assert.deepEqual(state.refreshes, []);
  assert.equal(refresh.secondsLeft(), 13.5 * 86400);
  state.now = T0 + 6.4 * DAY; // 7.1 days left
  await refresh.check();
  assert.deepEqual(state.refreshes, []);
  state.now = T0 + 6.6 * DAY; // 6.9 days left
  await refresh.check();
  assert.equal(state.refreshes.length, 1);
  assert.match(state.refreshes[0], /DNSSEC signatures expire at 2026-01-24T00:00:00\.000Z/);
  assert.equal(state.expiry, Date.UTC(2026, 0, 31));
  assert.ok(lines.some((l) => l.message === 'DNSSEC signatures refreshed'));
  assert.equal(refresh.unfitReason(), null);
  await refresh.check();
  assert.equal(state.refreshes.length, 1, 'fresh signatures: no second refresh');
});

test('one refresh at a time: checks during a refresh join it', async () => {
  const { state, refresh } = harness({ refreshOk: true });
  state.now = T0 + 10 * DAY;
  const first = refresh.check();
  const second = refresh.check();
  await Promise.all([first, second]);
  assert.equal(state.refreshes.length, 1);
});

test('refresh failing: fit until the margin, then unfit with the expiry, logged once; expired says expired', async () => {
  const { state, lines, refresh } = harness({ refreshOk: false });
  state.now = T0 + 10 * DAY; // 3.5 days left
  await refresh.check();
  assert.equal(state.refreshes.length, 1);
  assert.ok(lines.some((l) => l.level === 'error' && l.message === 'DNSSEC re-signing failed; the old signatures keep serving'));
  assert.equal(refresh.unfitReason(), null);
  state.now = T0 + 12 * DAY; // 1.5 days left
  assert.match(refresh.unfitReason() ?? '', /^DNSSEC signatures expire at 2026-01-24T00:00:00\.000Z, in 36\.0 h; re-signing has not succeeded/);
  await refresh.check();
  await refresh.check();
  assert.equal(lines.filter((l) => l.message === 'unfit: DNSSEC signatures expire within the safety margin').length, 1);
  state.now = T0 + 14 * DAY;
  assert.match(refresh.unfitReason() ?? '', /^DNSSEC signatures expired at 2026-01-24T00:00:00\.000Z/);
  assert.ok(refresh.secondsLeft()! < 0);
  state.ok = true;
  await refresh.check();
  assert.equal(refresh.unfitReason(), null, 'a refresh that succeeds makes the instance fit again');
  assert.ok(lines.some((l) => l.message === 'DNSSEC signatures fresh again: fit'));
});

test('nothing signed: no refresh, never unfit, no expiry', async () => {
  const { state, refresh } = harness({ refreshOk: true });
  state.expiry = null;
  state.now = T0 + 100 * DAY;
  await refresh.check();
  assert.deepEqual(state.refreshes, []);
  assert.equal(refresh.unfitReason(), null);
  assert.equal(refresh.secondsLeft(), null);
});
