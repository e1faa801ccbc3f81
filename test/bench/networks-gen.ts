// Generates a large geo-data/networks.yaml for the networks-load benchmark and
// the scaling test: distinct IPv4 /24s (every tenth one with a /28 inside it,
// so overlaps resolve longest prefix first), IPv6 /48s, and a share of
// entries that pin a PoP. Deterministic: the same count gives the same text.

/** YAML text of `count` custom networks; `pops` are PoP ids that exist in the catalog. */
export function networksYaml(count: number, pops: readonly string[]): string {
  const lines = ['networks:'];
  for (let i = 0; i < count; i++) lines.push(`  ${networkEntry(i, pops)}`);
  return `${lines.join('\n')}\n`;
}

function networkEntry(i: number, pops: readonly string[]): string {
  const kind = i % 10;
  if (kind === 9) {
    // 2001:db8::/32 has 65,536 /48s; further ones go to other /32s of 2001:db9.. (never ::/96 or ::ffff:0:0/96).
    const block = 0xdb8 + Math.floor(i / 10 / 65536);
    return `2001:${block.toString(16)}:${(Math.floor(i / 10) % 65536).toString(16)}::/48: { pop: ${pops[i % pops.length]}, name: v6-${i} }`;
  }
  // 10.0.0.0/8 up to 65,536 /24s, then 100.64.0.0/10 and onwards: each i gets its own /24.
  const n = Math.floor(i / 10) * 9 + kind;
  const a = 10 + Math.floor(n / 65536);
  const b = Math.floor(n / 256) % 256;
  const c = n % 256;
  if (kind === 8) return `${a}.${b}.${c}.16/28: { pop: ${pops[i % pops.length]} }`;
  const lat = ((i * 7919) % 17000) / 100 - 85;
  const lon = ((i * 104729) % 35000) / 100 - 175;
  return `${a}.${b}.${c}.0/24: { lat: ${lat.toFixed(2)}, lon: ${lon.toFixed(2)}, country: NL, continent: EU, name: net-${i} }`;
}
