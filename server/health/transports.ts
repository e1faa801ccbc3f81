// Probe transports: one function per kind, (target, abort signal) → outcome.
// They never throw; every failure is classified into a reason the metrics
// count. The scheduler owns timeouts (it aborts the signal), so a transport
// only has to stop when told.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIPv6 } from 'node:net';
import DNS, { type ClientOptions, type DnsAnswer } from 'dns2';
import type { ProbeKind, ProbeTarget } from './config.ts';

export const FAILURE_REASONS = ['timeout', 'refused', 'status', 'body', 'tls', 'dns', 'other'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/**
 * Errors that say this server could not open or use a socket (descriptors,
 * buffers or a source address used up here), not that the target failed. A
 * probe ending with one "could not probe": it counts neither against the
 * target nor as evidence that this server is cut off.
 */
export const LOCAL_CAUSES = ['EMFILE', 'ENFILE', 'ENOBUFS', 'EADDRNOTAVAIL'] as const;
export type LocalCause = (typeof LOCAL_CAUSES)[number];

export type ProbeOutcome =
  | { ok: true; detail: string }
  | { ok: false; reason: FailureReason; detail: string }
  | { ok: false; reason: 'local'; cause: LocalCause; detail: string };

export type ProbeTransport = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeOutcome>;
export type ProbeTransports = Record<Exclude<ProbeKind, 'external'>, ProbeTransport>;

/** How much of a body is searched for the expected text. */
const BODY_LIMIT = 64 * 1024;

const RCODES: Record<string, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };

export function classifyError(err: unknown): ProbeOutcome {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const detail = code ? `${code}: ${e.message}` : String(e?.message ?? err);
  if ((LOCAL_CAUSES as readonly string[]).includes(code)) return { ok: false, reason: 'local', cause: code as LocalCause, detail };
  if (e?.name === 'AbortError' || code === 'ABORT_ERR' || code === 'ETIMEDOUT') return { ok: false, reason: 'timeout', detail };
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { ok: false, reason: 'refused', detail };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return { ok: false, reason: 'dns', detail };
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL|HOSTNAME_MISMATCH)/.test(code) || code.startsWith('ERR_TLS_CERT')) {
    return { ok: false, reason: 'tls', detail };
  }
  return { ok: false, reason: 'other', detail };
}

function statusAccepted(target: ProbeTarget, status: number): boolean {
  for (const [lo, hi] of target.status) if (status >= lo && status <= hi) return true;
  return false;
}

/** Reads at most BODY_LIMIT bytes and reports whether `needle` occurs in them. */
function bodyContains(response: IncomingMessage, needle: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      if (size >= BODY_LIMIT) return;
      chunks.push(chunk);
      size += chunk.length;
      if (size >= BODY_LIMIT || Buffer.concat(chunks).includes(needle)) {
        resolve(Buffer.concat(chunks).subarray(0, BODY_LIMIT).includes(needle));
        response.destroy();
      }
    });
    response.on('end', () => resolve(Buffer.concat(chunks).includes(needle)));
    response.on('error', reject);
  });
}

function httpProbe(secure: boolean): ProbeTransport {
  return (target, signal) => new Promise((resolve) => {
    const options = {
      host: target.host,
      port: target.port,
      method: target.method,
      path: target.path,
      headers: { host: target.hostHeader, 'user-agent': 'popsteer-health', connection: 'close' },
      // A fresh connection per probe: a pooled socket would hide a listener that is gone.
      agent: false as const,
      signal,
      ...(secure ? { servername: target.sni ?? target.hostHeader, rejectUnauthorized: target.verifyTls } : {}),
    };
    const req = (secure ? httpsRequest : httpRequest)(options, (response) => {
      const status = response.statusCode ?? 0;
      if (!statusAccepted(target, status)) {
        response.destroy();
        resolve({ ok: false, reason: 'status', detail: `status ${status}` });
        return;
      }
      if (target.body === null) {
        response.destroy();
        resolve({ ok: true, detail: `status ${status}` });
        return;
      }
      bodyContains(response, target.body).then(
        (found) => resolve(found ? { ok: true, detail: `status ${status}, body matched` } : { ok: false, reason: 'body', detail: `body lacks "${target.body}"` }),
        (err) => resolve(classifyError(err)),
      );
    });
    req.on('error', (err) => resolve(classifyError(err)));
    req.end();
  });
}

const tcpProbe: ProbeTransport = (target, signal) => new Promise((resolve) => {
  const socket = connect({ host: target.host, port: target.port, signal });
  socket.once('connect', () => {
    socket.destroy();
    resolve({ ok: true, detail: 'connected' });
  });
  socket.once('error', (err) => {
    socket.destroy();
    resolve(classifyError(err));
  });
});

const dnsProbe: ProbeTransport = async (target, signal) => {
  // socketType is a dns2 option its typings leave out; IPv6 servers need udp6.
  // The scheduler owns the deadline (and judges it after reading the replies
  // already waiting); dns2's own timer, due at the same moment, would fire
  // first after a stall, so it only closes the socket of a probe given up on.
  const options = { dns: target.host, port: target.port, timeout: 2 * target.timeoutMs, socketType: isIPv6(target.host) ? 'udp6' : 'udp4' };
  const query = DNS.UDPClient(options as ClientOptions);
  const aborted = new Promise<ProbeOutcome>((resolve) => {
    signal.addEventListener('abort', () => resolve({ ok: false, reason: 'timeout', detail: 'no DNS answer in time' }), { once: true });
  });
  const answered = (async (): Promise<ProbeOutcome> => {
    try {
      const response = await query(target.queryName, target.queryType);
      const rcode = response.header.rcode;
      if (rcode !== RCODES[target.rcode]) return { ok: false, reason: 'status', detail: `rcode ${rcode}, expected ${target.rcode}` };
      if (target.answer !== null && !response.answers.some((a) => answerMatches(a, target.answer!))) {
        return { ok: false, reason: 'body', detail: `no answer equals "${target.answer}"` };
      }
      return { ok: true, detail: `rcode ${target.rcode}, ${response.answers.length} answer(s)` };
    } catch (err) {
      return classifyError(err);
    }
  })();
  return Promise.race([answered, aborted]);
};

function answerMatches(answer: DnsAnswer, expected: string): boolean {
  const text = Array.isArray(answer.data) ? answer.data.join('') : answer.data;
  const want = expected.replace(/\.$/, '').toLowerCase();
  for (const value of [answer.address, answer.domain, answer.ns, text]) {
    if (typeof value === 'string' && value.replace(/\.$/, '').toLowerCase() === want) return true;
  }
  return false;
}

export const defaultTransports: ProbeTransports = {
  http: httpProbe(false),
  https: httpProbe(true),
  tcp: tcpProbe,
  dns: dnsProbe,
};
