// Is the local popsteer instance fit to receive anycast traffic? Two
// independent views must agree: the admin API's own verdict (configuration
// loaded, PoP not drained or down, not shutting down) and a real DNS query to
// the listener, answered in time — a wedged DNS path with a healthy admin API
// must still withdraw the route.

import { createSocket } from 'node:dgram';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { CLASS_CH, RCODE_NOERROR, TYPE_TXT, rcodeToName } from '../dns/constants.ts';
import { nameToWire } from '../dns/name.ts';

export interface Endpoint {
  host: string;
  port: number;
}

/** The admin API over HTTPS: its certificate (or CA) and the name to verify it for. */
export interface AdminTls {
  ca: Buffer;
  servername: string;
}

export interface FitnessObservation {
  fit: boolean;
  /** Why not fit (empty when fit). */
  reasons: string[];
  /** PoP id reported by the admin API, when it answered. */
  pop: string | null;
}

export interface FitnessTargets {
  admin: Endpoint & { tls?: AdminTls | null };
  dns: Endpoint;
  /** Each check must complete within this time. */
  timeoutMs: number;
}

export async function observeFitness(targets: FitnessTargets): Promise<FitnessObservation> {
  const [admin, dnsProblem] = await Promise.all([
    askAdminFitness(targets.admin, targets.timeoutMs),
    dnsSelfQuery(targets.dns, targets.timeoutMs),
  ]);
  const reasons = [...admin.reasons];
  if (dnsProblem) reasons.push(dnsProblem);
  return { fit: reasons.length === 0, reasons, pop: admin.pop };
}

interface AdminVerdict {
  reasons: string[];
  pop: string | null;
}

/** GET /v1/fitness: 200 {fit: true} or 503 {fit: false, reasons}. Anything else is unfit too. */
export function askAdminFitness(admin: Endpoint & { tls?: AdminTls | null }, timeoutMs: number): Promise<AdminVerdict> {
  return new Promise((resolveVerdict) => {
    let settled = false;
    const settle = (verdict: AdminVerdict): void => {
      if (settled) return;
      settled = true;
      resolveVerdict(verdict);
    };
    const options = { host: admin.host, port: admin.port, path: '/v1/fitness', method: 'GET', timeout: timeoutMs, agent: false };
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { if (body.length < 65536) body += chunk; });
      res.on('error', (err) => settle({ reasons: [`admin API: ${err.message}`], pop: null }));
      res.on('end', () => {
        let parsed: { fit?: unknown; reasons?: unknown; pop?: unknown } = {};
        try {
          parsed = JSON.parse(body);
        } catch {
          // handled below: a non-JSON answer is not a fitness verdict
        }
        const pop = typeof parsed.pop === 'string' ? parsed.pop : null;
        if (res.statusCode === 200 && parsed.fit === true) return settle({ reasons: [], pop });
        const reported = Array.isArray(parsed.reasons) ? parsed.reasons.map(String) : [];
        settle({ reasons: reported.length > 0 ? reported.map((r) => `admin: ${r}`) : [`admin API answered HTTP ${res.statusCode}`], pop });
      });
    };
    const req = admin.tls
      ? httpsRequest({ ...options, ca: admin.tls.ca, servername: admin.tls.servername }, onResponse)
      : httpRequest(options, onResponse);
    req.on('timeout', () => {
      req.destroy();
      settle({ reasons: [`admin API did not answer within ${timeoutMs} ms`], pop: null });
    });
    req.on('error', (err: NodeJS.ErrnoException) => settle({ reasons: [`admin API unreachable: ${err.code ?? err.message}`], pop: null }));
    req.end();
  });
}

const SELF_QUERY_NAME = nameToWire('id.server.');

/** Header + question for CHAOS TXT id.server with the given id, no EDNS. */
export function encodeSelfQuery(id: number): Buffer {
  const query = Buffer.alloc(12 + SELF_QUERY_NAME.length + 4);
  query.writeUInt16BE(id, 0);
  query.writeUInt16BE(1, 4); // QDCOUNT
  query.set(SELF_QUERY_NAME, 12);
  query.writeUInt16BE(TYPE_TXT, 12 + SELF_QUERY_NAME.length);
  query.writeUInt16BE(CLASS_CH, 14 + SELF_QUERY_NAME.length);
  return query;
}

/**
 * Sends CHAOS TXT id.server over UDP and waits for a NOERROR answer with at
 * least one record. Returns null when answered, else why not.
 */
function dnsSelfQuery(dns: Endpoint, timeoutMs: number): Promise<string | null> {
  return new Promise((resolveProblem) => {
    const id = Math.floor(Math.random() * 0x10000);
    const socket = createSocket(isIPv6(dns.host) ? 'udp6' : 'udp4');
    let settled = false;
    const settle = (problem: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolveProblem(problem);
    };
    const timer = setTimeout(() => settle(`DNS self-query to ${dns.host}:${dns.port} not answered within ${timeoutMs} ms`), timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => settle(`DNS self-query failed: ${err.code ?? err.message}`));
    socket.on('message', (reply) => {
      // Ignore stray datagrams; only the reply to our id counts.
      if (reply.length < 12 || reply.readUInt16BE(0) !== id || (reply[2] & 0x80) === 0) return;
      const rcode = reply[3] & 0x0f;
      if (rcode !== RCODE_NOERROR) return settle(`DNS self-query answered ${rcodeToName(rcode)}`);
      if (reply.readUInt16BE(6) === 0) return settle('DNS self-query answered without records');
      settle(null);
    });
    socket.connect(dns.port, dns.host, () => socket.send(encodeSelfQuery(id)));
  });
}
