// The rule of the fleet's health verdict (server/fleet/verdict.ts): how many
// of the observers of a target must see it down for the fleet to call it
// down. Read from popsteer.yaml (fleet.verdict, --fleet-verdict) and per
// target from probes.yaml (`verdict:`), so it lives with the configuration.

/** How many of the counting observers must see a target down for it to be down. */
export type VerdictRule =
  | { kind: 'any' }
  | { kind: 'quorum' }
  | { kind: 'all' }
  | { kind: 'more_than_percent'; percent: number };

export const DEFAULT_VERDICT_RULE: VerdictRule = { kind: 'quorum' };

export function ruleText(rule: VerdictRule): string {
  return rule.kind === 'more_than_percent' ? `more_than_percent: ${rule.percent}` : rule.kind;
}

/**
 * "any", "quorum", "all", "more_than_percent: N" (or "more_than_percent:N",
 * or the YAML mapping {more_than_percent: N}), N from 0 to 99. Returns an
 * error message for anything else.
 */
export function parseVerdictRule(value: unknown): VerdictRule | string {
  const expected = 'expected any, quorum, all or more_than_percent: N (0 to 99)';
  let percent: unknown;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length !== 1 || keys[0] !== 'more_than_percent') return `${JSON.stringify(value)}: ${expected}`;
    percent = (value as { more_than_percent: unknown }).more_than_percent;
  } else if (typeof value === 'string') {
    const text = value.trim();
    if (text === 'any' || text === 'quorum' || text === 'all') return { kind: text };
    const m = /^more_than_percent\s*:\s*(\S+)$/.exec(text);
    if (!m) return `"${value}": ${expected}`;
    percent = Number(m[1]);
  } else {
    return `${JSON.stringify(value)}: ${expected}`;
  }
  if (typeof percent !== 'number' || !Number.isInteger(percent) || percent < 0 || percent > 99) {
    return `more_than_percent ${JSON.stringify(percent)}: ${expected}`;
  }
  return { kind: 'more_than_percent', percent };
}

