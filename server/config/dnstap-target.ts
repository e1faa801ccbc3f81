// Where dnstap goes, as the `dnstap` setting names it.

export type DnstapOutput = { kind: 'unix'; path: string } | { kind: 'file'; path: string; fd: number };

/** Parses unix:/path/to.sock or file:/path/to.fstrm; a string is what is wrong. */
export function parseDnstapTarget(text: string): DnstapOutput | string {
  const match = /^(unix|file):(.+)$/.exec(text);
  if (!match) return `"${text}" is not unix:/path/to/collector.sock or file:/path/to/log.fstrm`;
  const path = match[2];
  // sun_path holds 108 octets with the terminating NUL.
  if (match[1] === 'unix' && Buffer.byteLength(path) > 107) return `unix socket path longer than 107 octets: ${path}`;
  return match[1] === 'unix' ? { kind: 'unix', path } : { kind: 'file', path, fd: -1 };
}
