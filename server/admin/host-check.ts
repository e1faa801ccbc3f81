// The Host-header check that keeps a web page in a browser on this machine
// (or on a network that reaches the admin port) from reading the admin API
// through DNS rebinding: the page's own name is made to resolve to 127.0.0.1,
// so its requests arrive here carrying that name in Host. The admin API
// answers only requests addressed to an IP literal (a rebinding page cannot
// make the browser send one), to localhost, or to a name the operator listed
// (--admin-hosts). Requests without Host (HTTP/1.0 tools) carry no foreign
// name and are served.

import { isIP } from 'node:net';

/** The host part of a Host header, lower-cased, without port, brackets or trailing dot. */
function hostOfHeader(header: string): string {
  const text = header.trim().toLowerCase();
  if (text.startsWith('[')) return text.slice(1, text.indexOf(']') < 0 ? undefined : text.indexOf(']'));
  const colon = text.indexOf(':');
  return (colon < 0 ? text : text.slice(0, colon)).replace(/\.$/, '');
}

export function hostAllowed(header: string | undefined, listed: ReadonlySet<string>): boolean {
  if (header === undefined) return true;
  const host = hostOfHeader(header);
  return isIP(host) !== 0 || host === 'localhost' || listed.has(host);
}
