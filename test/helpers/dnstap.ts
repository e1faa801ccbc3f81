// dnstap for tests, independent of the server's own code: a Frame Streams
// file reader, a protobufjs decoder built from dnstap.proto's field numbers,
// and fstrm_capture (Debian's fstrm-bin) run as the collector, flushed on
// demand (SIGHUP) and waited on through its own log lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import protobuf from 'protobufjs';

/**
 * The parts of dnstap.proto (github.com/dnstap/dnstap.pb) that an
 * authoritative server writes, with the field numbers of the published schema.
 */
const SCHEMA = `
syntax = "proto2";
package dnstap;
message Dnstap {
  optional bytes identity = 1;
  optional bytes version = 2;
  optional bytes extra = 3;
  enum Type { MESSAGE = 1; }
  required Type type = 15;
  optional Message message = 14;
}
enum SocketFamily { INET = 1; INET6 = 2; }
enum SocketProtocol { UDP = 1; TCP = 2; DOT = 3; DOH = 4; DNSCryptUDP = 5; DNSCryptTCP = 6; DOQ = 7; }
message Message {
  enum Type {
    AUTH_QUERY = 1; AUTH_RESPONSE = 2; RESOLVER_QUERY = 3; RESOLVER_RESPONSE = 4; CLIENT_QUERY = 5; CLIENT_RESPONSE = 6;
    FORWARDER_QUERY = 7; FORWARDER_RESPONSE = 8; STUB_QUERY = 9; STUB_RESPONSE = 10; TOOL_QUERY = 11; TOOL_RESPONSE = 12;
  }
  required Type type = 1;
  optional SocketFamily socket_family = 2;
  optional SocketProtocol socket_protocol = 3;
  optional bytes query_address = 4;
  optional bytes response_address = 5;
  optional uint32 query_port = 6;
  optional uint32 response_port = 7;
  optional uint64 query_time_sec = 8;
  optional fixed32 query_time_nsec = 9;
  optional bytes query_message = 10;
  optional bytes query_zone = 11;
  optional uint64 response_time_sec = 12;
  optional fixed32 response_time_nsec = 13;
  optional bytes response_message = 14;
}
`;

const DnstapType = protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType('dnstap.Dnstap');

export interface DnstapMessage {
  type: string;
  socket_family?: string;
  socket_protocol?: string;
  query_address?: Uint8Array;
  response_address?: Uint8Array;
  query_port?: number;
  response_port?: number;
  query_time_sec?: number;
  query_time_nsec?: number;
  query_message?: Uint8Array;
  response_time_sec?: number;
  response_time_nsec?: number;
  response_message?: Uint8Array;
}

export interface DnstapFrame {
  identity?: Uint8Array;
  version?: Uint8Array;
  extra?: Uint8Array;
  type: string;
  message: DnstapMessage;
}

/** The fields present on the wire (defaults live on the prototype), enums as names, 64-bit integers as numbers. */
function present(message: protobuf.Message, type: protobuf.Type): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(message, field.name)) continue;
    const value = (message as unknown as Record<string, unknown>)[field.name];
    field.resolve();
    if (field.resolvedType instanceof protobuf.Enum) out[field.name] = field.resolvedType.valuesById[value as number];
    else if (field.resolvedType instanceof protobuf.Type) out[field.name] = present(value as protobuf.Message, field.resolvedType);
    else out[field.name] = typeof value === 'object' && value !== null && 'low' in value ? Number(value.toString()) : value;
  }
  return out;
}

export function decodeDnstap(payload: Uint8Array): DnstapFrame {
  return present(DnstapType.decode(payload), DnstapType) as unknown as DnstapFrame;
}

export interface FrameStream {
  contentType: string | null;
  frames: Buffer[];
  /** A STOP control frame ended the stream. */
  stopped: boolean;
}

/** Reads a unidirectional Frame Streams byte stream (START, data frames, STOP); a cut-off last frame is left out. */
export function readFrameStream(bytes: Buffer): FrameStream {
  const stream: FrameStream = { contentType: null, frames: [], stopped: false };
  let at = 0;
  let started = false;
  while (at + 4 <= bytes.length) {
    const length = bytes.readUInt32BE(at);
    if (length !== 0) {
      if (!started) throw new Error('data frame before START');
      if (at + 4 + length > bytes.length) break;
      stream.frames.push(bytes.subarray(at + 4, at + 4 + length));
      at += 4 + length;
      continue;
    }
    if (at + 12 > bytes.length) break;
    const controlLength = bytes.readUInt32BE(at + 4);
    if (at + 8 + controlLength > bytes.length) break;
    const type = bytes.readUInt32BE(at + 8);
    if (type === 2) {
      started = true;
      if (controlLength >= 12 && bytes.readUInt32BE(at + 12) === 1) {
        const typeLength = bytes.readUInt32BE(at + 16);
        stream.contentType = bytes.toString('utf8', at + 20, at + 20 + typeLength);
      }
    } else if (type === 3) {
      stream.stopped = true;
    } else {
      throw new Error(`unexpected control frame type ${type} in a file`);
    }
    at += 8 + controlLength;
  }
  return stream;
}

/** Every dnstap frame of a Frame Streams file. */
export function readDnstapFile(path: string): { stream: FrameStream; frames: DnstapFrame[] } {
  const stream = readFrameStream(readFileSync(path));
  return { stream, frames: stream.frames.map(decodeDnstap) };
}

/** fstrm_capture reading dnstap on a unix socket into a file. */
export class Capture {
  readonly socket: string;
  readonly file: string;
  readonly process: ChildProcess;
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ match: (line: string) => boolean; resolve: () => void }> = [];
  private readonly exited: Promise<unknown>;

  private constructor(dir: string, name: string) {
    this.socket = join(dir, `${name}.sock`);
    this.file = join(dir, `${name}.fstrm`);
    this.process = spawn('fstrm_capture', ['-t', 'protobuf:dnstap.Dnstap', '-u', this.socket, '-w', this.file], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = once(this.process, 'exit');
    createInterface({ input: this.process.stderr! }).on('line', (line) => {
      this.lines.push(line);
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i].match(line)) {
          this.waiters[i].resolve();
          this.waiters.splice(i, 1);
        }
      }
    });
  }

  /** Starts fstrm_capture and waits until its output file is open. */
  static async start(dir: string, name = 'capture'): Promise<Capture> {
    const capture = new Capture(dir, name);
    await capture.nextLine((l) => l.includes('opened output file'));
    return capture;
  }

  private nextLine(match: (line: string) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ match, resolve });
      void this.exited.then(() => reject(new Error(`fstrm_capture exited: ${this.lines.join('\n')}`)));
    });
  }

  /** The frames in the file after fstrm_capture has flushed what it read (SIGHUP, then its "flushing" line). */
  async flushedFrames(): Promise<DnstapFrame[]> {
    const flushed = this.nextLine((l) => l.includes('received SIGHUP, flushing output'));
    this.process.kill('SIGHUP');
    await flushed;
    return readDnstapFile(this.file).frames;
  }

  /**
   * Flushes and reads until `done` holds for the frames; each round waits on
   * fstrm_capture's flush line, after `eachRound` (e.g. one more query) if given.
   */
  async waitForFrames(done: (frames: DnstapFrame[]) => boolean, eachRound?: () => Promise<unknown>): Promise<DnstapFrame[]> {
    for (;;) {
      if (eachRound) await eachRound();
      const frames = await this.flushedFrames();
      if (done(frames)) return frames;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Stops fstrm_capture (it writes STOP and closes the file). */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.process.kill('SIGCONT');
    this.process.kill('SIGTERM');
    await this.exited;
  }
}

/** The query name of a DNS message (lower case, no trailing dot). */
export function questionName(message: Uint8Array): string {
  const labels: string[] = [];
  let at = 12;
  while (at < message.length && message[at] !== 0) {
    const length = message[at];
    labels.push(Buffer.from(message.subarray(at + 1, at + 1 + length)).toString('latin1'));
    at += 1 + length;
  }
  return labels.join('.').toLowerCase();
}
