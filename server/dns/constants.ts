// Wire constants (RFC 1035, 6891, 7871, 7873, 5001, 9460). Plain numbers so
// that the per-query path compares integers only.

export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_MB = 7;
export const TYPE_MG = 8;
export const TYPE_MR = 9;
export const TYPE_NULL = 10;
export const TYPE_PTR = 12;
export const TYPE_HINFO = 13;
export const TYPE_MX = 15;
export const TYPE_TXT = 16;
export const TYPE_AAAA = 28;
export const TYPE_SRV = 33;
export const TYPE_OPT = 41;
export const TYPE_DS = 43;
export const TYPE_SVCB = 64;
export const TYPE_HTTPS = 65;
export const TYPE_TKEY = 249;
export const TYPE_TSIG = 250;
export const TYPE_IXFR = 251;
export const TYPE_AXFR = 252;
export const TYPE_MAILB = 253;
export const TYPE_MAILA = 254;
export const TYPE_ANY = 255;
export const TYPE_CAA = 257;

export const CLASS_IN = 1;
export const CLASS_CH = 3;
export const CLASS_NONE = 254;
export const CLASS_ANY = 255;

export const OPCODE_QUERY = 0;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended RCODE 16 (RFC 6891): needs an OPT record to carry its upper bits. */
export const RCODE_BADVERS = 16;
/** Extended RCODE 23 (RFC 7873): bad server cookie. */
export const RCODE_BADCOOKIE = 23;

export const EDNS_OPTION_NSID = 3;
export const EDNS_OPTION_ECS = 8;
export const EDNS_OPTION_COOKIE = 10;

export const FAMILY_IPV4 = 1;
export const FAMILY_IPV6 = 2;

/** Payload size we advertise and never exceed over UDP (DNS Flag Day 2020). */
export const EDNS_ADVERTISED_PAYLOAD = 1232;
export const MAX_UDP_PAYLOAD_WITHOUT_EDNS = 512;
export const MAX_NAME_WIRE_LENGTH = 255;
export const MAX_LABEL_LENGTH = 63;

const TYPE_NAMES: Record<string, number> = {
  A: TYPE_A, NS: TYPE_NS, CNAME: TYPE_CNAME, SOA: TYPE_SOA, PTR: TYPE_PTR, HINFO: TYPE_HINFO,
  MX: TYPE_MX, TXT: TYPE_TXT, AAAA: TYPE_AAAA, SRV: TYPE_SRV, OPT: TYPE_OPT, SVCB: TYPE_SVCB,
  HTTPS: TYPE_HTTPS, TSIG: TYPE_TSIG, IXFR: TYPE_IXFR, AXFR: TYPE_AXFR, ANY: TYPE_ANY, CAA: TYPE_CAA,
};

/** "A" → 1; also accepts the RFC 3597 form "TYPE65". */
export function typeFromName(name: string): number | undefined {
  const upper = name.toUpperCase();
  if (upper in TYPE_NAMES) return TYPE_NAMES[upper];
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  if (m) {
    const n = Number(m[1]);
    if (n <= 0xffff) return n;
  }
  return undefined;
}

export function typeToName(type: number): string {
  for (const [name, value] of Object.entries(TYPE_NAMES)) if (value === type) return name;
  return `TYPE${type}`;
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
export function rcodeToName(rcode: number): string {
  if (rcode === RCODE_BADVERS) return 'BADVERS';
  if (rcode === RCODE_BADCOOKIE) return 'BADCOOKIE';
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}
