// NATS credentials from --fleet-creds: a .creds file (the JWT and nkey seed
// nsc writes), a bare nkey seed, or "user:password" on the first line; and
// the CA of --fleet-ca that the servers' TLS certificates are checked
// against. An unreadable or unrecognised file stops start-up (exit 2, naming
// the file).

import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, usernamePasswordAuthenticator, type Authenticator } from 'nats';
import { ConfigError, ConfigErrors } from '../config/errors.ts';

const refuse = (file: string, message: string, flag = '--fleet-creds'): never => {
  throw new ConfigErrors([new ConfigError('POPSTEER_ERR_SETTING', file, null, '', `${flag}: ${message}`)]);
};

/** The TLS options of a connection to the fleet: the servers' CA from --fleet-ca, else the system's CAs (nothing to add). */
export function tlsOptions(caFile: string | null): { ca: string } | undefined {
  if (caFile === null) return undefined;
  let text = '';
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (err) {
    refuse(caFile, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, '--fleet-ca');
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) refuse(caFile, 'not a PEM certificate (no BEGIN CERTIFICATE line)', '--fleet-ca');
  return { ca: text };
}

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
