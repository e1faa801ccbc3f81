// NATS credentials from --fleet-creds: a .creds file (the JWT and nkey seed
// nsc writes), a bare nkey seed, or "user:password" on the first line. An
// unreadable or unrecognised file stops start-up (exit 2, naming the file).

import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, usernamePasswordAuthenticator, type Authenticator } from 'nats';
import { ConfigError, ConfigErrors } from '../config/errors.ts';

const refuse = (file: string, message: string): never => {
  throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', file, null, '', `--fleet-creds: ${message}`)]);
};

export function readCredentials(file: string): Authenticator {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    refuse(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (text.includes('BEGIN NATS USER JWT')) return credsAuthenticator(new TextEncoder().encode(text));
  const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#')) ?? '';
  if (/^SU[A-Z2-7]{56}$/.test(first)) return nkeyAuthenticator(new TextEncoder().encode(first));
  const colon = first.indexOf(':');
  if (colon > 0 && colon < first.length - 1) return usernamePasswordAuthenticator(first.slice(0, colon), first.slice(colon + 1));
  return refuse(file, 'not a NATS .creds file, an nkey seed (SU…) or a "user:password" line');
}
