// popsteer pop drain|undrain|force-down|force-up <id> --reason … [--expires 30m]
// A thin client of the admin API: POST /v1/pops/{id}/{action} with a bearer
// token. The server validates, applies and persists; this only reports.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDurationMs } from '../health/duration.ts';
import { OVERRIDE_ACTIONS, type OverrideAction } from '../health/overrides.ts';

export const POP_HELP = `Usage: popsteer pop <action> <pop id> --reason "…" [options]

Actions:
  drain        take the PoP out of answers (planned work)
  undrain      remove any override: probes decide again
  force-down   mark the PoP down whatever its probes say
  force-up     mark the PoP up whatever its probes say

Options:
  --reason text        why (required; shown in status, logs and explain traces)
  --expires duration   lift the override by itself after this long (30m, 2h, 90s)
  --admin host:port    admin API address (default 127.0.0.1:8053, or POPSTEER_ADMIN)
  --token-file path    file holding the admin bearer token (default: POPSTEER_ADMIN_TOKEN)

Overrides win over probes and survive restarts.
Exit status: 0 applied, 1 refused or unreachable, 2 bad usage.`;

const DEFAULT_ADMIN = '127.0.0.1:8053';
const REQUEST_TIMEOUT_MS = 10_000;

interface CommandOutput {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

/** The admin token from --token-file or POPSTEER_ADMIN_TOKEN; null (the reason written to `io.err`) when there is none. */
function adminToken(tokenFile: string | undefined, io: CommandOutput): string | null {
  let token = process.env.POPSTEER_ADMIN_TOKEN ?? '';
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      io.err.write(`popsteer pop: cannot read the token file: ${(err as Error).message}\n`);
      return null;
    }
  }
  if (!token) {
    io.err.write('popsteer pop: no admin token (use --token-file or POPSTEER_ADMIN_TOKEN); the admin API refuses changes without one\n');
    return null;
  }
  return token;
}

/**
 * Runs the subcommand; `args` are the words after "pop". Returns the exit
 * status. It reads top to bottom as the command works: arguments, token, one
 * request to the admin API, its answer; each refusal returns its own status
 * on the spot.
 */
export async function runPopCommand(args: string[], io: CommandOutput = { out: process.stdout, err: process.stderr }): Promise<number> {
  const usage = (message: string): number => {
    io.err.write(`popsteer pop: ${message}\n\n${POP_HELP}\n`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        reason: { type: 'string' },
        expires: { type: 'string' },
        admin: { type: 'string' },
        'token-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out.write(`${POP_HELP}\n`);
    return 0;
  }
  const [action, popId, ...extra] = positionals;
  if (!action || !(OVERRIDE_ACTIONS as readonly string[]).includes(action)) return usage(`the action must be one of ${OVERRIDE_ACTIONS.join(', ')}`);
  if (!popId) return usage('name the PoP id');
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);
  const reason = values.reason?.trim();
  if (!reason) return usage('--reason is required');

  let expiresInSeconds: number | undefined;
  if (values.expires !== undefined) {
    if (action === 'undrain') return usage('undrain takes no --expires');
    const ms = parseDurationMs(values.expires);
    if (ms === null || ms <= 0) return usage(`--expires "${values.expires}" is not a duration (e.g. 30m, 2h, 90s)`);
    expiresInSeconds = ms / 1000;
  }

  const token = adminToken(values['token-file'], io);
  if (token === null) return 1;

  const admin = values.admin ?? process.env.POPSTEER_ADMIN ?? DEFAULT_ADMIN;
  const url = `${adminOrigin(admin)}/v1/pops/${encodeURIComponent(popId)}/${action as OverrideAction}`;
  const body: { reason: string; expires?: number } = { reason };
  if (expiresInSeconds !== undefined) body.expires = expiresInSeconds;

  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    io.err.write(`popsteer pop: cannot reach the admin API at ${admin}: ${cause}\n`);
    return 1;
  }
  const text = await response.text();
  let payload: Record<string, unknown> = {};
  try {
    payload = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: reported as text below
  }
  if (!response.ok) {
    const message = typeof payload.message === 'string' ? payload.message : text || response.statusText;
    const code = typeof payload.code === 'string' ? ` (${payload.code})` : '';
    io.err.write(`popsteer pop: ${action} ${popId} refused: HTTP ${response.status}: ${message}${code}\n`);
    return 1;
  }
  const state = typeof payload.state === 'string' ? payload.state : 'applied';
  const expires = expiresInSeconds === undefined ? '' : `, expires in ${values.expires}`;
  io.out.write(`${popId}: ${action} applied (now ${state}${expires}): ${reason}\n`);
  return 0;
}

/** "127.0.0.1:8053" → http://127.0.0.1:8053; a bare IPv6 "::1:8053" gets its brackets. */
function adminOrigin(address: string): string {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const needsBrackets = host.includes(':') && !host.startsWith('[');
  return `http://${needsBrackets ? `[${host}]` : host}${address.slice(colon)}`;
}
