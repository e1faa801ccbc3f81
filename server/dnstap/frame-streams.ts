// Frame Streams (github.com/farsightsec/fstrm), the framing dnstap travels in.
// No implementation exists on npm, and the protocol is small: data frames are
// a 32-bit big-endian length and the payload; a zero length escapes a control
// frame (32-bit length, 32-bit type, then fields; CONTENT_TYPE is the only
// field). A file is START, data frames, STOP. A socket adds a handshake: the
// writer sends READY with its content types, the reader answers ACCEPT with
// those it takes, the writer sends START, data frames and STOP, and the reader
// answers FINISH before both close.

export const CONTROL_ACCEPT = 0x01;
export const CONTROL_START = 0x02;
export const CONTROL_STOP = 0x03;
export const CONTROL_READY = 0x04;
export const CONTROL_FINISH = 0x05;
const FIELD_CONTENT_TYPE = 0x01;

/** fstrm's limits: a control frame's payload and one content type. */
export const CONTROL_FRAME_MAX = 512;
const CONTENT_TYPE_MAX = 256;

export const DNSTAP_CONTENT_TYPE = 'protobuf:dnstap.Dnstap';

/** A control frame with its escape and length: 00000000, length, type, [CONTENT_TYPE, length, bytes]. */
export function controlFrame(type: number, contentType: string | null): Buffer {
  const content = contentType === null ? null : Buffer.from(contentType, 'utf8');
  if (content !== null && content.length > CONTENT_TYPE_MAX) throw new Error(`content type longer than ${CONTENT_TYPE_MAX} octets`);
  const payload = 4 + (content === null ? 0 : 8 + content.length);
  const frame = Buffer.alloc(8 + payload);
  frame.writeUInt32BE(0, 0);
  frame.writeUInt32BE(payload, 4);
  frame.writeUInt32BE(type, 8);
  if (content !== null) {
    frame.writeUInt32BE(FIELD_CONTENT_TYPE, 12);
    frame.writeUInt32BE(content.length, 16);
    content.copy(frame, 20);
  }
  return frame;
}

interface ControlFrame {
  type: number;
  contentTypes: string[];
}

/**
 * Reads control frames from what a reader sends back on a socket. A peer
 * sends only control frames here, each at most CONTROL_FRAME_MAX octets;
 * anything else is a protocol error (thrown), so a confused peer costs a
 * bounded buffer, never unbounded memory.
 */
export class ControlFrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds received octets; returns the complete control frames they finish. */
  push(chunk: Buffer): ControlFrame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: ControlFrame[] = [];
    while (this.pending.length >= 8) {
      if (this.pending.readUInt32BE(0) !== 0) throw new Error('the reader sent a data frame; only control frames are expected');
      const length = this.pending.readUInt32BE(4);
      if (length < 4 || length > CONTROL_FRAME_MAX) throw new Error(`control frame of ${length} octets (at most ${CONTROL_FRAME_MAX})`);
      if (this.pending.length < 8 + length) break;
      frames.push(decodeControlPayload(this.pending.subarray(8, 8 + length)));
      this.pending = this.pending.subarray(8 + length);
    }
    if (this.pending.length > 8 + CONTROL_FRAME_MAX) throw new Error('control frame too long');
    return frames;
  }
}

/** Decodes a control frame's payload (after the escape and the length). */
export function decodeControlPayload(payload: Buffer): ControlFrame {
  const type = payload.readUInt32BE(0);
  const contentTypes: string[] = [];
  let at = 4;
  while (at < payload.length) {
    if (at + 8 > payload.length) throw new Error('truncated control frame field');
    const field = payload.readUInt32BE(at);
    const length = payload.readUInt32BE(at + 4);
    if (length > CONTENT_TYPE_MAX || at + 8 + length > payload.length) throw new Error('control frame field longer than its frame');
    if (field === FIELD_CONTENT_TYPE) contentTypes.push(payload.toString('utf8', at + 8, at + 8 + length));
    at += 8 + length;
  }
  return { type, contentTypes };
}
