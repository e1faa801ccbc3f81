// Reading a dnstap file back (slow path, for `popsteer diff --clients-dnstap`):
// the client networks of the logged queries, each weighted by how many
// queries it made. popsteer's own logs carry the deciding network in the
// extra field; for logs from other servers it comes from the query's ECS
// option, else the client's address.
//
// The file is read in chunks, so a log of any size takes bounded memory
// (frames above MAX_FRAME are refused); the protobuf reader understands just
// the fields it needs and skips the rest.

import { closeSync, openSync, readSync, constants } from 'node:fs';
import { PARSE_DROP, QueryView, parseQuery } from '../dns/query.ts';
import { FAMILY_IPV4 } from '../dns/constants.ts';
import { formatAddress, maskAddress } from '../lib/address.ts';
import { CONTROL_FRAME_MAX, CONTROL_START, CONTROL_STOP, DNSTAP_CONTENT_TYPE, decodeControlPayload } from './frame-streams.ts';

const MAX_FRAME = 1 << 20;
const CHUNK = 1 << 20;
/** ECS source prefixes beyond these are not used by popsteer either (RFC 7871 §11.1). */
const ECS_MAX_BITS_V4 = 24;
const ECS_MAX_BITS_V6 = 56;

/** Dnstap.Message.Type: which count as a logged exchange. */
const RESPONSE_TYPES = new Set([2, 4, 6, 8, 10, 12, 14]);

interface ClientNetwork {
  cidr: string;
  weight: number;
}

interface Fields {
  extra: Uint8Array | null;
  type: number;
  family: number;
  queryAddress: Uint8Array | null;
  queryMessage: Uint8Array | null;
}

/** The client networks in a Frame Streams dnstap file, most queries first. Throws with the file's name on a bad file. */
export function readDnstapClients(path: string): ClientNetwork[] {
  const queries = new Map<string, number>();
  const responses = new Map<string, number>();
  const view = new QueryView();
  forEachFrame(path, (payload) => {
    const fields = decodeDnstap(payload);
    const network = clientNetworkOf(fields, view);
    if (network === null) return;
    const counts = RESPONSE_TYPES.has(fields.type) ? responses : queries;
    counts.set(network, (counts.get(network) ?? 0) + 1);
  });
  // A query logged with its response is one exchange: count responses when the log has them.
  const counts = responses.size > 0 ? responses : queries;
  return [...counts].map(([cidr, weight]) => ({ cidr, weight })).sort((a, b) => b.weight - a.weight || a.cidr.localeCompare(b.cidr));
}

function clientNetworkOf(fields: Fields, view: QueryView): string | null {
  if (fields.extra !== null) {
    try {
      const decision = JSON.parse(Buffer.from(fields.extra).toString('utf8')) as { client?: unknown };
      if (typeof decision.client === 'string') return decision.client;
    } catch {
      // another server's extra: not ours to read
    }
  }
  const message = fields.queryMessage;
  if (message !== null && parseQuery(message, message.length, view) !== PARSE_DROP && view.ecsPresent && view.ecsSourcePrefix > 0) {
    const v4 = view.ecsFamily === FAMILY_IPV4;
    const bits = Math.min(view.ecsSourcePrefix, v4 ? ECS_MAX_BITS_V4 : ECS_MAX_BITS_V6);
    const network = Uint8Array.from(view.ecsAddress);
    maskAddress(network, bits);
    return `${formatAddress(v4 ? 4 : 6, network)}/${bits}`;
  }
  const address = fields.queryAddress;
  if (address === null || (address.length !== 4 && address.length !== 16)) return null;
  const bytes = new Uint8Array(16);
  bytes.set(address);
  return address.length === 4 ? `${formatAddress(4, bytes)}/32` : `${formatAddress(6, bytes)}/128`;
}

/** Calls `frame` with each data frame's payload of a unidirectional Frame Streams file. */
function forEachFrame(path: string, frame: (payload: Uint8Array) => void): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  const fail = (what: string): never => { throw new Error(`${path}: ${what}`); };
  try {
    let pending: Buffer = Buffer.alloc(0);
    let started = false;
    const chunk = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const read = readSync(fd, chunk, 0, CHUNK, null);
      if (read === 0) break;
      pending = pending.length === 0 ? Buffer.from(chunk.subarray(0, read)) : Buffer.concat([pending, chunk.subarray(0, read)]);
      let at = 0;
      while (pending.length - at >= 4) {
        const length = pending.readUInt32BE(at);
        if (length === 0) {
          if (pending.length - at < 8) break;
          const controlLength = pending.readUInt32BE(at + 4);
          if (controlLength > CONTROL_FRAME_MAX) fail(`control frame of ${controlLength} octets: not a Frame Streams file`);
          if (pending.length - at < 8 + controlLength) break;
          const control = decodeControlPayload(pending.subarray(at + 8, at + 8 + controlLength));
          if (control.type === CONTROL_START) {
            if (control.contentTypes.length > 0 && !control.contentTypes.includes(DNSTAP_CONTENT_TYPE)) fail(`holds ${control.contentTypes.join(', ')}, not dnstap`);
            started = true;
          } else if (control.type === CONTROL_STOP) {
            return;
          }
          at += 8 + controlLength;
          continue;
        }
        if (!started) fail('a data frame before START: not a Frame Streams file');
        if (length > MAX_FRAME) fail(`a frame of ${length} octets (at most ${MAX_FRAME})`);
        if (pending.length - at < 4 + length) break;
        frame(pending.subarray(at + 4, at + 4 + length));
        at += 4 + length;
      }
      pending = pending.subarray(at);
    }
    if (!started) fail('no Frame Streams START: not a dnstap file');
  } finally {
    closeSync(fd);
  }
}

/** The few Dnstap fields needed here; unknown fields are skipped by wire type. */
function decodeDnstap(payload: Uint8Array): Fields {
  const fields: Fields = { extra: null, type: 0, family: 0, queryAddress: null, queryMessage: null };
  walk(payload, (field, value) => {
    if (field === 3 && typeof value !== 'number') fields.extra = value;
    else if (field === 14 && typeof value !== 'number') {
      walk(value, (inner, innerValue) => {
        if (inner === 1 && typeof innerValue === 'number') fields.type = innerValue;
        else if (inner === 2 && typeof innerValue === 'number') fields.family = innerValue;
        else if (inner === 4 && typeof innerValue !== 'number') fields.queryAddress = innerValue;
        else if (inner === 10 && typeof innerValue !== 'number') fields.queryMessage = innerValue;
      });
    }
  });
  return fields;
}

/** Protobuf fields of a message: varints as numbers, length-delimited as bytes; fixed32/64 skipped. */
function walk(bytes: Uint8Array, visit: (field: number, value: number | Uint8Array) => void): void {
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw new Error('truncated protobuf varint in a dnstap frame');
      const b = bytes[at++];
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) visit(field, varint());
    else if (wire === 2) {
      const length = varint();
      if (at + length > bytes.length) throw new Error('truncated protobuf field in a dnstap frame');
      visit(field, bytes.subarray(at, at + length));
      at += length;
    } else if (wire === 5) at += 4;
    else if (wire === 1) at += 8;
    else throw new Error(`protobuf wire type ${wire} in a dnstap frame`);
  }
}
