// The dnstap protobuf message (github.com/dnstap/dnstap.pb, dnstap.proto),
// encoded by hand straight into the writer's ring: a Dnstap wrapping one
// Message of type AUTH_QUERY or AUTH_RESPONSE, preceded by the 4-octet length
// that makes it a Frame Streams data frame.
//
// Why by hand: only ~15 fields of one schema are ever written, and the query
// path must not allocate. A library encoder (protobufjs) builds a writer and a
// new Uint8Array per message; `node test/bench/dnstap.bench.ts` measures both.
// Sizes are computed first (protobuf length prefixes come before the bytes
// they count), then every field is written in one pass.

/** Dnstap.Message.Type values used here. */
export const AUTH_QUERY = 1;
export const AUTH_RESPONSE = 2;
/** dnstap.SocketFamily. */
export const INET = 1;
export const INET6 = 2;
/** dnstap.SocketProtocol. */
export const SOCKET_UDP = 1;
export const SOCKET_TCP = 2;

// Field tags: (field number << 3) | wire type (0 varint, 2 length-delimited, 5 fixed32).
const TAG_IDENTITY = (1 << 3) | 2;
const TAG_VERSION = (2 << 3) | 2;
const TAG_EXTRA = (3 << 3) | 2;
const TAG_MESSAGE = (14 << 3) | 2;
const TAG_DNSTAP_TYPE = (15 << 3) | 0;
const DNSTAP_TYPE_MESSAGE = 1;

const TAG_TYPE = (1 << 3) | 0;
const TAG_SOCKET_FAMILY = (2 << 3) | 0;
const TAG_SOCKET_PROTOCOL = (3 << 3) | 0;
const TAG_QUERY_ADDRESS = (4 << 3) | 2;
const TAG_RESPONSE_ADDRESS = (5 << 3) | 2;
const TAG_QUERY_PORT = (6 << 3) | 0;
const TAG_RESPONSE_PORT = (7 << 3) | 0;
const TAG_QUERY_TIME_SEC = (8 << 3) | 0;
const TAG_QUERY_TIME_NSEC = (9 << 3) | 5;
const TAG_QUERY_MESSAGE = (10 << 3) | 2;
const TAG_RESPONSE_TIME_SEC = (12 << 3) | 0;
const TAG_RESPONSE_TIME_NSEC = (13 << 3) | 5;
const TAG_RESPONSE_MESSAGE = (14 << 3) | 2;

/** Octets of `value` (a non-negative integer up to 2^53) as a protobuf varint. */
function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let size = 5;
  for (value = Math.floor(value / 0x800000000); value >= 1; value = Math.floor(value / 0x80)) size++;
  return size;
}

/** Writes a varint: bit operations below 2^31, arithmetic above (seconds since 1970 pass 2^31 in 2038). */
function writeVarint(out: Uint8Array, at: number, value: number): number {
  if (value < 0x80000000) {
    while (value >= 0x80) {
      out[at++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    out[at++] = value;
    return at;
  }
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/**
 * Buffer's copy, borrowed for plain Uint8Arrays: one native call that
 * allocates nothing, where subarray() + set() would make a view per copy. A
 * short run is cheaper as a loop than as a call.
 */
const nativeCopy = Buffer.prototype.copy;
const SHORT_COPY = 24;

function copyBytes(bytes: Uint8Array, length: number, out: Uint8Array, at: number): void {
  if (length <= SHORT_COPY) {
    for (let i = 0; i < length; i++) out[at + i] = bytes[i];
  } else {
    nativeCopy.call(bytes, out, at, 0, length);
  }
}

function writeFixed32(out: Uint8Array, at: number, value: number): number {
  out[at] = value & 0xff;
  out[at + 1] = (value >>> 8) & 0xff;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = (value >>> 24) & 0xff;
  return at + 4;
}

function writeBytes(out: Uint8Array, at: number, tag: number, bytes: Uint8Array, length: number): number {
  out[at++] = tag;
  at = writeVarint(out, at, length);
  copyBytes(bytes, length, out, at);
  return at + length;
}

/** Size of a length-delimited field with a one-octet tag. */
function bytesFieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/**
 * One query/response exchange as dnstap will describe it. The owner fills the
 * fields for each exchange (no allocation) and writes one frame per message type.
 */
export class DnstapExchange {
  /** Dnstap.identity and .version: fixed per server. */
  identity: Uint8Array = new Uint8Array(0);
  version: Uint8Array = new Uint8Array(0);
  /** Dnstap.extra, `extraLength` octets (0: absent). */
  extra: Uint8Array = new Uint8Array(0);
  extraLength = 0;
  /** INET or INET6. */
  family = INET;
  /** SOCKET_UDP or SOCKET_TCP. */
  protocol = SOCKET_UDP;
  /** The client's address: 4 or 16 octets of `queryAddress`. */
  readonly queryAddress = new Uint8Array(16);
  /** The address the query was received on; 0 octets when bound to a wildcard. */
  readonly responseAddress = new Uint8Array(16);
  responseAddressLength = 0;
  queryPort = 0;
  responsePort = 0;
  querySeconds = 0;
  queryNanoseconds = 0;
  responseSeconds = 0;
  responseNanoseconds = 0;
  query: Uint8Array = new Uint8Array(0);
  queryLength = 0;
  response: Uint8Array = new Uint8Array(0);
  responseLength = 0;

  private addressLength(): number {
    return this.family === INET ? 4 : 16;
  }

  /** Size of the Message for AUTH_QUERY or AUTH_RESPONSE. */
  private messageSize(type: number): number {
    let size = 2 + 2 + 2 // type, socket_family, socket_protocol
      + bytesFieldSize(this.addressLength())
      + 1 + varintSize(this.queryPort) + 1 + varintSize(this.responsePort)
      + 1 + varintSize(this.querySeconds) + 5;
    if (this.responseAddressLength > 0) size += bytesFieldSize(this.responseAddressLength);
    if (type === AUTH_QUERY) return size + bytesFieldSize(this.queryLength);
    return size + 1 + varintSize(this.responseSeconds) + 5 + bytesFieldSize(this.responseLength);
  }

  /** Octets of the Frame Streams data frame (4-octet length + Dnstap) for this message type. */
  frameSize(type: number): number {
    return this.frameSizeFor(this.messageSize(type));
  }

  private frameSizeFor(message: number): number {
    let size = bytesFieldSize(this.identity.length) + bytesFieldSize(this.version.length)
      + 1 + varintSize(message) + message + 2;
    if (this.extraLength > 0) size += bytesFieldSize(this.extraLength);
    return 4 + size;
  }

  /** Writes the frame at `at` (frameSize(type) octets); returns the offset after it. */
  writeFrame(type: number, out: Uint8Array, at: number): number {
    const message = this.messageSize(type);
    const payload = this.frameSizeFor(message) - 4;
    out[at] = payload >>> 24;
    out[at + 1] = (payload >>> 16) & 0xff;
    out[at + 2] = (payload >>> 8) & 0xff;
    out[at + 3] = payload & 0xff;
    at += 4;
    at = writeBytes(out, at, TAG_IDENTITY, this.identity, this.identity.length);
    at = writeBytes(out, at, TAG_VERSION, this.version, this.version.length);
    if (this.extraLength > 0) at = writeBytes(out, at, TAG_EXTRA, this.extra, this.extraLength);
    out[at++] = TAG_MESSAGE;
    at = writeVarint(out, at, message);
    at = this.writeMessage(type, out, at);
    out[at++] = TAG_DNSTAP_TYPE;
    out[at++] = DNSTAP_TYPE_MESSAGE;
    return at;
  }

  private writeMessage(type: number, out: Uint8Array, at: number): number {
    out[at++] = TAG_TYPE;
    out[at++] = type;
    out[at++] = TAG_SOCKET_FAMILY;
    out[at++] = this.family;
    out[at++] = TAG_SOCKET_PROTOCOL;
    out[at++] = this.protocol;
    at = writeBytes(out, at, TAG_QUERY_ADDRESS, this.queryAddress, this.addressLength());
    if (this.responseAddressLength > 0) at = writeBytes(out, at, TAG_RESPONSE_ADDRESS, this.responseAddress, this.responseAddressLength);
    out[at++] = TAG_QUERY_PORT;
    at = writeVarint(out, at, this.queryPort);
    out[at++] = TAG_RESPONSE_PORT;
    at = writeVarint(out, at, this.responsePort);
    out[at++] = TAG_QUERY_TIME_SEC;
    at = writeVarint(out, at, this.querySeconds);
    out[at++] = TAG_QUERY_TIME_NSEC;
    at = writeFixed32(out, at, this.queryNanoseconds);
    if (type === AUTH_QUERY) return writeBytes(out, at, TAG_QUERY_MESSAGE, this.query, this.queryLength);
    out[at++] = TAG_RESPONSE_TIME_SEC;
    at = writeVarint(out, at, this.responseSeconds);
    out[at++] = TAG_RESPONSE_TIME_NSEC;
    at = writeFixed32(out, at, this.responseNanoseconds);
    return writeBytes(out, at, TAG_RESPONSE_MESSAGE, this.response, this.responseLength);
  }
}
