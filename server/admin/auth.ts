// Bearer-token check for mutating admin calls. The token comes from
// --admin-token-file (contents trimmed) or POPSTEER_ADMIN_TOKEN; with neither,
// mutating calls are refused, never open. Tokens are compared as SHA-256
// digests with timingSafeEqual, so neither the content nor the length of the
// configured token leaks through response timing.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface AdminToken {
  /** SHA-256 of the configured token, or null when none is configured. */
  digest: Buffer | null;
  /** Where it came from, for the start-up log (never the token itself). */
  source: string;
}

type AuthResult =
  | { ok: true }
  | { ok: false; status: 401 | 403; error: string; message: string };

const digestOf = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Throws Error when the token file is set but unreadable or empty. */
export function loadAdminToken(tokenFile: string | null, env: NodeJS.ProcessEnv): AdminToken {
  if (tokenFile !== null) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`admin token file ${tokenFile}: ${(err as Error).message}`);
    }
    if (text === '') throw new Error(`admin token file ${tokenFile} is empty`);
    return { digest: digestOf(text), source: `file ${tokenFile}` };
  }
  const fromEnv = env.POPSTEER_ADMIN_TOKEN?.trim();
  if (fromEnv) return { digest: digestOf(fromEnv), source: 'environment POPSTEER_ADMIN_TOKEN' };
  return { digest: null, source: 'none' };
}

export function checkBearer(token: AdminToken, authorization: string | undefined): AuthResult {
  if (token.digest === null) {
    return {
      ok: false, status: 403, error: 'admin_token_not_configured',
      message: 'mutating admin calls are disabled: no admin token is configured; start popsteer with --admin-token-file <file> or set POPSTEER_ADMIN_TOKEN, then send "Authorization: Bearer <token>"',
    };
  }
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  if (!match) {
    return { ok: false, status: 401, error: 'unauthorized', message: 'this call changes state: send "Authorization: Bearer <admin token>"' };
  }
  if (!timingSafeEqual(digestOf(match[1]), token.digest)) {
    return { ok: false, status: 401, error: 'unauthorized', message: 'the bearer token does not match the configured admin token' };
  }
  return { ok: true };
}
