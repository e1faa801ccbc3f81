// Configuration errors carry a stable code, the file, the line and column,
// the JSON pointer inside the document, and what to change. Tests assert on
// codes; people read the formatted line.

export interface SourcePosition {
  line: number;
  column: number;
}

/**
 * Every error code popsteer reports, with what it means: the one list that
 * the code, the tests (test/unit/error-codes.test.ts) and the README's error
 * table are checked against. A code is never reused for another meaning.
 */
export const ERROR_CODES = {
  // Daemon settings, command line, files in general
  POPSTEER_ERR_USAGE: 'the command line is not understood (unknown command or flag)',
  POPSTEER_ERR_SETTING: 'a daemon setting (flag, environment variable or settings file) has a value it cannot take',
  POPSTEER_ERR_FILE_UNREADABLE: 'a configuration file cannot be read',
  POPSTEER_ERR_YAML_SYNTAX: 'a configuration file is not valid YAML',
  POPSTEER_ERR_UNSAFE_PATH: 'a state or cache path is a symbolic link, or its directory can be changed by other users',
  POPSTEER_ERR_LISTEN: 'a DNS worker cannot listen on its address',
  POPSTEER_ERR_ADDRESS_IN_USE: 'another process already serves a DNS or admin address (use --share-listen for a handover)',
  POPSTEER_ERR_ADMIN_ADDRESS: 'the admin API cannot listen on its address',
  // GeoIP data
  POPSTEER_ERR_GEOIP_UNREADABLE: 'the GeoIP database file cannot be read',
  POPSTEER_ERR_GEOIP_TYPE: 'the GeoIP database is not a City or Country database',
  POPSTEER_ERR_GEOIP_CORRUPT: 'the GeoIP database is not a valid MaxMind DB file',
  POPSTEER_ERR_ASN_SOURCE: 'an ASN source file cannot be read, is corrupt, or has no networks',
  POPSTEER_ERR_ASN_CHANGE: 'a replaced ASN source changes more networks than asn_max_change allows (refused, the old data keeps serving)',
  // PoP catalog (pops.yaml)
  POPSTEER_ERR_NO_POP_CATALOG: 'the geo-data directory has no pops.yaml',
  POPSTEER_ERR_POP_SCHEMA: 'pops.yaml does not match its schema',
  POPSTEER_ERR_POP_DUPLICATE_ID: 'two PoPs share one id',
  POPSTEER_ERR_POP_BAD_COORDINATES: 'a PoP\'s latitude or longitude is out of range',
  POPSTEER_ERR_POP_UNKNOWN_CONTINENT: 'a PoP names a continent code that does not exist',
  POPSTEER_ERR_POP_BAD_ADDRESS: 'a PoP\'s ipv4 or ipv6 address is not an address of that family',
  POPSTEER_ERR_POP_NO_ADDRESS: 'a PoP has neither an IPv4 nor an IPv6 address',
  // Custom networks (networks.yaml)
  POPSTEER_ERR_NETWORK_SCHEMA: 'networks.yaml does not match its schema',
  POPSTEER_ERR_NETWORK_BAD_CIDR: 'a custom network is not in CIDR notation',
  POPSTEER_ERR_NETWORK_HOST_BITS: 'a custom network has host bits set beyond its prefix length',
  POPSTEER_ERR_NETWORK_IPV4_SPACE: 'an IPv6 custom network overlaps the IPv4-mapped space; write it as IPv4',
  POPSTEER_ERR_NETWORK_DUPLICATE: 'a custom network is listed twice',
  POPSTEER_ERR_NETWORK_UNKNOWN_POP: 'a custom network names a PoP the catalog does not have',
  POPSTEER_ERR_NETWORK_BAD_COORDINATES: 'a custom network\'s latitude or longitude is out of range',
  // Zones (zones/*.yaml)
  POPSTEER_ERR_NO_ZONES: 'the configuration directory serves no zone',
  POPSTEER_ERR_ZONE_SCHEMA: 'a zone file does not match its schema',
  POPSTEER_ERR_ZONE_NAME: 'a zone or owner name is not a valid domain name',
  POPSTEER_ERR_ZONE_DUPLICATE: 'one zone is defined in two files',
  POPSTEER_ERR_ZONE_DUPLICATE_NAME: 'one owner name appears twice in a zone (names are case-insensitive)',
  POPSTEER_ERR_ZONE_OUT_OF_ZONE: 'an owner name lies outside its zone',
  POPSTEER_ERR_ZONE_RDATA: 'a record\'s data cannot be encoded (bad address, name, or field)',
  POPSTEER_ERR_ZONE_NO_APEX_NS: 'a zone has no NS records at its apex',
  POPSTEER_ERR_ZONE_APEX_CNAME: 'a zone\'s apex has a CNAME',
  POPSTEER_ERR_ZONE_CNAME_AND_OTHER_DATA: 'a name has a CNAME and other records',
  POPSTEER_ERR_ZONE_OCCLUDED: 'records other than glue lie below a delegation',
  POPSTEER_ERR_ZONE_DNSSEC: 'a signed zone\'s key is missing, readable by others or of another algorithm, or it has too many answers to sign',
  // Steering policies (steering/*.yaml)
  POPSTEER_ERR_POLICY_SCHEMA: 'a policy file does not match its schema',
  POPSTEER_ERR_POLICY_NAME: 'a steered name is not a valid domain name',
  POPSTEER_ERR_POLICY_OUTSIDE_ZONES: 'a steered name is in no served zone',
  POPSTEER_ERR_POLICY_DUPLICATE_NAME: 'a name is steered by two policies',
  POPSTEER_ERR_POLICY_STATIC_CONFLICT: 'a steered name also has static A, AAAA or CNAME records',
  POPSTEER_ERR_POLICY_BELOW_DELEGATION: 'a steered name lies below a delegation',
  POPSTEER_ERR_POLICY_UNKNOWN_POP: 'a policy names a PoP the catalog does not have',
  POPSTEER_ERR_POLICY_UNKNOWN_POOL: 'a rule names a pool the policy does not define',
  POPSTEER_ERR_POLICY_EMPTY_POOL: 'a pool has no endpoints',
  POPSTEER_ERR_POLICY_ENDPOINT: 'an endpoint names neither a PoP nor its own addresses or CNAME',
  POPSTEER_ERR_POLICY_ZERO_WEIGHTS: 'every endpoint of a weighted pool has weight 0',
  POPSTEER_ERR_POLICY_RULE: 'a rule is contradictory (e.g. both `pool` and `pools`)',
  POPSTEER_ERR_POLICY_MATCH: 'a rule\'s match is contradictory (e.g. CIDRs and locations together)',
  POPSTEER_ERR_POLICY_BAD_CIDR: 'a rule matches on a network that is not valid CIDR notation',
  POPSTEER_ERR_POLICY_NO_ASN_SOURCE: 'a rule matches asn or resolver_asn but no ASN source is configured (asn_database)',
  POPSTEER_ERR_POLICY_STEP: 'a steering step is misconfigured (e.g. failover with fewer than two pools)',
  POPSTEER_ERR_POLICY_TTL: 'ttl_from_health is contradictory (min above max)',
  POPSTEER_ERR_POLICY_NO_DEFAULT: 'no rule of a policy matches every client (add a last rule with match: default)',
  POPSTEER_ERR_POLICY_UNREACHABLE_RULE: 'a rule can never match because an earlier one always does',
  // Health probes (probes.yaml) and the admin\'s health calls
  POPSTEER_ERR_PROBES_SCHEMA: 'probes.yaml does not match its schema',
  POPSTEER_ERR_PROBES_TIMEOUT: 'a probe\'s timeout is not below its interval',
  POPSTEER_ERR_PROBES_UNKNOWN_POP: 'a probe target names a PoP the catalog does not have',
  POPSTEER_ERR_PROBES_UNKNOWN_TARGET: 'a PoP lists a probe that is not under targets',
  POPSTEER_ERR_PROBES_QUORUM: 'a PoP\'s quorum can never be met by its distinct probes',
  POPSTEER_ERR_PROBES_KEY_FOR_KIND: 'a probe key does not apply to the probe\'s kind',
  POPSTEER_ERR_HEALTH_UNKNOWN_SUBJECT: 'an override names a PoP that does not exist',
  POPSTEER_ERR_HEALTH_UNKNOWN_TARGET: 'an external health report names a target that does not exist',
  POPSTEER_ERR_HEALTH_BAD_OVERRIDE: 'an override action or expiry is not valid',
} as const satisfies Record<string, string>;

/** A code from ERROR_CODES. */
export type ErrorCode = keyof typeof ERROR_CODES;

export class ConfigError extends Error {
  readonly code: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly pointer: string;

  // `code` is a string, not an ErrorCode, while policy/policies.ts and
  // geo/networks.ts pass codes through string-typed helpers (issue 18); the
  // error-codes test checks every code in the source against ERROR_CODES.
  constructor(code: string, file: string, position: SourcePosition | null, pointer: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.code = code;
    this.file = file;
    this.line = position?.line ?? 0;
    this.column = position?.column ?? 0;
    this.pointer = pointer;
  }

  /** "policies/zones/cdn.example.yaml:12:5: POPSTEER_ERR_ZONE_SCHEMA: /records/www/A: must be …" */
  format(): string {
    const where = this.line > 0 ? `${this.file}:${this.line}:${this.column}` : this.file;
    const pointer = this.pointer ? `${this.pointer}: ` : '';
    return `${where}: ${this.code}: ${pointer}${this.message}`;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, file: this.file, line: this.line, column: this.column, pointer: this.pointer, message: this.message };
  }
}

/** Several errors found in one load; the process exits 2 (start-up) or keeps the old set (reload). */
export class ConfigErrors extends Error {
  readonly errors: ConfigError[];
  constructor(errors: ConfigError[]) {
    super(errors.map((e) => e.format()).join('\n'));
    this.name = 'ConfigErrors';
    this.errors = errors;
  }
}
