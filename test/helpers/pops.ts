// The example PoP catalog as tests need it: id ↔ service address.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { REPO_ROOT } from './server.ts';

export interface CatalogPop { id: string; continent: string; country: string; ipv4: string[]; ipv6: string[] }

export const POPS: CatalogPop[] = (parse(readFileSync(`${REPO_ROOT}geo-data/pops.yaml`, 'utf8')) as { pops: CatalogPop[] }).pops;

const byAddress = new Map<string, CatalogPop>();
for (const p of POPS) for (const a of [...p.ipv4, ...p.ipv6]) byAddress.set(a, p);

/** The PoP id that owns a service address (throws for an address of no PoP). */
export function popOf(address: string | null): string {
  const pop = address === null ? undefined : byAddress.get(address);
  if (!pop) throw new Error(`${address} is no PoP's address`);
  return pop.id;
}

export function popById(id: string): CatalogPop {
  const pop = POPS.find((p) => p.id === id);
  if (!pop) throw new Error(`no PoP ${id}`);
  return pop;
}

/** A state file with overrides, in the health service's format, for starting a server with PoPs down. */
export function stateFileWith(overrides: Record<string, 'drain' | 'force-down' | 'force-up'>): string {
  const content = { version: 1, overrides: Object.fromEntries(Object.entries(overrides).map(([id, kind]) => [id, { kind, reason: 'test', since: Date.now(), expires: null }])) };
  return JSON.stringify(content);
}
