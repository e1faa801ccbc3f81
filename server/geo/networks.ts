// Custom networks loader: geo-data/networks.yaml → CustomNetworkSet. The
// file is optional (no file = no custom networks). Errors name file:line and
// carry stable codes.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrors, type SourcePosition } from '../config/errors.ts';
import { readLargeYamlFile, type YamlSource } from '../config/yaml-source.ts';
import { validateAgainstSchema } from '../config/schema.ts';
import { formatAddress } from '../lib/address.ts';
import { isCidrProblem, parseCidr, type CidrProblem } from '../lib/cidr.ts';
import { recodeByField } from './catalog.ts';
import type { CustomNetwork, CustomNetworkSet, PopCatalog } from './types.ts';

export const NETWORKS_FILE = 'networks.yaml';

const CODE_BY_FIELD: Record<string, string> = {
  lat: 'POPSTEER_ERR_NETWORK_BAD_COORDINATES',
  lon: 'POPSTEER_ERR_NETWORK_BAD_COORDINATES',
};

type Entry = { lat?: number; lon?: number; country?: string; continent?: string; pop?: string; name?: string };

export function loadCustomNetworks(geoDataDir: string, catalog: PopCatalog): CustomNetworkSet {
  const file = join(geoDataDir, NETWORKS_FILE);
  if (!existsSync(file)) return { file, networks: [] };
  return customNetworksFromSource(readLargeYamlFile(file), catalog);
}

export function customNetworksFromSource(source: YamlSource, catalog: PopCatalog): CustomNetworkSet {
  const schemaErrors = recodeByField(validateAgainstSchema('networks', source, 'POPSTEER_ERR_NETWORK_SCHEMA'), CODE_BY_FIELD);
  if (schemaErrors.length > 0) throw new ConfigErrors(schemaErrors);
  const entries = (source.data as { networks: Record<string, Entry> | null }).networks ?? {};
  const errors: ConfigError[] = [];
  const networks: CustomNetwork[] = [];
  const seen = new Map<string, string>();
  const lines = keyLines(source.text);
  for (const [cidr, entry] of Object.entries(entries)) {
    const pointer = `/networks/${cidr.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    // Where the key is written, found without the slow second parse when it is a plain key at a line start.
    const fail = (code: string, message: string) => { errors.push(new ConfigError(code, source.file, lines.get(cidr) ?? source.position(pointer), pointer, message)); };
    const parsed = parseCidr(cidr, 'trie');
    if (isCidrProblem(parsed)) {
      fail(CODE_BY_PROBLEM[parsed.problem], parsed.message);
      continue;
    }
    const canonical = `${formatAddress(parsed.family, parsed.address)}/${parsed.prefixLength}`;
    const earlier = seen.get(canonical);
    if (earlier !== undefined) {
      fail('POPSTEER_ERR_NETWORK_DUPLICATE', `${cidr} is the same network as "${earlier}"; keep one`);
      continue;
    }
    seen.set(canonical, cidr);
    let pop = -1;
    let { lat = NaN, lon = NaN, country = '', continent = '' } = entry;
    if (entry.pop !== undefined) {
      const ordinal = catalog.ordinalOf.get(entry.pop);
      if (ordinal === undefined) {
        fail('POPSTEER_ERR_NETWORK_UNKNOWN_POP', `PoP "${entry.pop}" is not in ${catalog.file} (known: ${catalog.ids.join(', ')})`);
        continue;
      }
      const target = catalog.pops[ordinal];
      pop = ordinal;
      ({ lat, lon, country, continent } = target);
    }
    networks.push({
      cidr: canonical,
      family: parsed.family,
      address: parsed.address,
      prefixLength: parsed.prefixLength,
      lat,
      lon,
      country,
      continent,
      pop,
      label: entry.name ?? '',
      line: (lines.get(cidr) ?? source.position(pointer))?.line ?? 0,
    });
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return { file: source.file, networks };
}

/**
 * Line and column of every plain key written at the start of a line
 * (`  10.0.0.0/24: …`), from one pass over the text: finding each entry
 * through the YAML tree would cost a second, slow parse (see
 * readLargeYamlFile). Keys written any other way (quoted, flow style) are not
 * here and are looked up in the tree.
 */
function keyLines(text: string): Map<string, SourcePosition> {
  const lines = new Map<string, SourcePosition>();
  const keyAtLineStart = /^([ \t]*)([^\s#'"{}[\],&*!|>%@`-][^\s#]*?)[ \t]*:(?:[ \t]|$)/gm;
  let line = 1;
  let counted = 0;
  for (const match of text.matchAll(keyAtLineStart)) {
    for (let i = text.indexOf('\n', counted); i !== -1 && i < match.index; i = text.indexOf('\n', i + 1)) line++;
    counted = match.index;
    if (!lines.has(match[2])) lines.set(match[2], { line, column: match[1].length + 1 });
  }
  return lines;
}

const CODE_BY_PROBLEM: Record<CidrProblem['problem'], string> = {
  'syntax': 'POPSTEER_ERR_NETWORK_BAD_CIDR',
  'host-bits': 'POPSTEER_ERR_NETWORK_HOST_BITS',
  'ipv4-space': 'POPSTEER_ERR_NETWORK_IPV4_SPACE',
};
