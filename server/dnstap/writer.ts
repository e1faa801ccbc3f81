// The dnstap writer: drains every DNS worker's ring (ring.ts) into one Frame
// Streams output, a collector's unix socket or a file. It runs on a thread of
// its own (writer-thread.ts), so the workers never make a system call for the
// log and never wait on it.
//
// Socket: bidirectional Frame Streams (READY → ACCEPT → START … STOP →
// FINISH), reconnected with backoff whenever the collector goes away. File:
// START … STOP. While the output is gone or has more than `highWater` octets
// queued, the writer stops draining; the rings fill and the workers count
// what they drop. When idle the writer sleeps on the control block's
// SLEEPING slot and the next frame wakes it.

import { createWriteStream } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { Logger } from '../log/logger.ts';
import { CONNECTED, CONNECTIONS, SLEEPING } from './control.ts';
import {
  CONTROL_ACCEPT, CONTROL_FINISH, CONTROL_READY, CONTROL_START, CONTROL_STOP, ControlFrameReader, DNSTAP_CONTENT_TYPE, controlFrame,
} from './frame-streams.ts';
import { RingConsumer } from './ring.ts';
import type { DnstapOutput } from './target.ts';


export interface WriterOptions {
  output: DnstapOutput;
  rings: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  log: Logger;
  /** Octets queued on the output before draining pauses. */
  highWater: number;
  /** Reconnection backoff, doubling from min to max. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How long a collector may take to ACCEPT (and to FINISH at close). */
  handshakeTimeoutMs?: number;
}

/** Largest write handed to the output at once. */
const CHUNK_MAX = 1 << 20;

export class DnstapWriter {
  private readonly options: WriterOptions;
  private readonly rings: RingConsumer[];
  private readonly control: Int32Array;
  private readonly log: Logger;
  private output: Writable | null = null;
  /** START sent: data frames may follow. */
  private ready = false;
  private closing = false;
  private pumpScheduled = false;
  private waitingForDrain = false;
  private reconnectMs: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private outageLogged = false;
  private finished: (() => void) | null = null;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkUsed = 0;

  constructor(options: WriterOptions) {
    this.options = options;
    this.rings = options.rings.map((r) => new RingConsumer(r));
    this.control = new Int32Array(options.control);
    this.log = options.log;
    this.reconnectMs = options.reconnectMinMs ?? 100;
  }

  start(): void {
    if (this.options.output.kind === 'file') this.openFile(this.options.output);
    else this.connect(this.options.output.path);
  }

  /** Writes what the rings still hold, then STOP (and waits for FINISH on a socket), then closes. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    Atomics.notify(this.control, SLEEPING);
    const output = this.output;
    if (output === null || !this.ready) {
      output?.destroy();
      return;
    }
    while (this.copyFromRings() > 0) output.write(this.takeChunk());
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.handshakeTimeoutMs ?? 2000);
      this.finished = () => { clearTimeout(timer); resolve(); };
      output.once('close', () => this.finished?.());
    });
    output.write(controlFrame(CONTROL_STOP, null));
    // A file ends with STOP; a collector answers it with FINISH (handled in onControl).
    if (this.options.output.kind === 'file') output.end();
    await done;
    output.destroy();
    this.setConnected(false);
  }

  private openFile(output: { path: string; fd: number }): void {
    const stream = createWriteStream(output.path, { fd: output.fd });
    stream.on('error', (err) => {
      this.log.error({ err: err.message, file: output.path }, 'dnstap file write failed; frames are dropped from now on');
      this.ready = false;
      this.setConnected(false);
    });
    this.output = stream;
    stream.write(controlFrame(CONTROL_START, DNSTAP_CONTENT_TYPE));
    this.becomeReady(`file ${output.path}`);
  }

  private connect(path: string): void {
    const socket = createConnection({ path });
    const reader = new ControlFrameReader();
    this.output = socket;
    socket.on('connect', () => {
      socket.write(controlFrame(CONTROL_READY, DNSTAP_CONTENT_TYPE));
      this.handshakeTimer = setTimeout(() => socket.destroy(new Error('no ACCEPT from the collector')), this.options.handshakeTimeoutMs ?? 5000);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of reader.push(chunk)) this.onControl(socket, frame.type, frame.contentTypes);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('error', (err) => {
      if (!this.outageLogged && !this.closing) {
        this.outageLogged = true;
        this.log.warn({ err: err.message, socket: path }, 'dnstap collector unreachable; frames are dropped until it is back');
      }
    });
    socket.on('close', () => {
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      if (this.output === socket) {
        this.output = null;
        this.ready = false;
        this.waitingForDrain = false;
        this.setConnected(false);
      }
      if (this.closing) return;
      if (!this.outageLogged) {
        this.outageLogged = true;
        this.log.warn({ socket: path }, 'dnstap collector closed the connection; reconnecting');
      }
      this.reconnectTimer = setTimeout(() => this.connect(path), this.reconnectMs);
      this.reconnectMs = Math.min(this.reconnectMs * 2, this.options.reconnectMaxMs ?? 2000);
    });
    socket.on('drain', () => this.onDrain());
  }

  private onControl(socket: Socket, type: number, contentTypes: string[]): void {
    if (type === CONTROL_ACCEPT && !this.ready) {
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      if (contentTypes.length > 0 && !contentTypes.includes(DNSTAP_CONTENT_TYPE)) {
        socket.destroy(new Error(`the collector accepts ${contentTypes.join(', ')}, not ${DNSTAP_CONTENT_TYPE}`));
        return;
      }
      socket.write(controlFrame(CONTROL_START, DNSTAP_CONTENT_TYPE));
      this.reconnectMs = this.options.reconnectMinMs ?? 100;
      this.becomeReady(`socket ${this.options.output.path}`);
    } else if (type === CONTROL_FINISH) {
      this.finished?.();
      socket.end();
    }
  }

  private becomeReady(where: string): void {
    this.ready = true;
    this.outageLogged = false;
    Atomics.add(this.control, CONNECTIONS, 1);
    this.setConnected(true);
    this.log.info({ output: where }, 'dnstap output ready');
    this.schedulePump();
  }

  private setConnected(connected: boolean): void {
    Atomics.store(this.control, CONNECTED, connected ? 1 : 0);
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closing) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  private onDrain(): void {
    if (!this.waitingForDrain) return;
    this.waitingForDrain = false;
    this.schedulePump();
  }

  private pump(): void {
    this.pumpScheduled = false;
    const output = this.output;
    if (output === null || !this.ready || this.closing || this.waitingForDrain) return;
    const moved = this.copyFromRings();
    if (moved > 0) output.write(this.takeChunk());
    if (output.writableLength > this.options.highWater) {
      // The collector is slow or stopped: stop taking frames until it catches up.
      this.waitingForDrain = true;
      if (this.options.output.kind === 'file') output.once('drain', () => this.onDrain());
      return;
    }
    if (moved > 0) this.schedulePump();
    else this.sleep();
  }

  /** Sleeps until a producer commits a frame (it sees SLEEPING = 1 and wakes the writer). */
  private sleep(): void {
    const control = this.control;
    Atomics.store(control, SLEEPING, 1);
    if (this.rings.some((r) => r.hasFrames())) {
      Atomics.store(control, SLEEPING, 0);
      this.schedulePump();
      return;
    }
    const wait = Atomics.waitAsync(control, SLEEPING, 1);
    if (!wait.async) this.schedulePump();
    else void wait.value.then(() => this.schedulePump());
  }

  /** Copies queued frames from every ring into a new chunk; returns the octets copied. */
  private copyFromRings(): number {
    let available = 0;
    for (const ring of this.rings) available += ring.queued();
    const size = Math.min(available, CHUNK_MAX);
    if (size === 0) return 0;
    this.chunk = Buffer.allocUnsafe(size);
    this.chunkUsed = 0;
    for (const ring of this.rings) ring.drain(this.take, size - this.chunkUsed);
    return this.chunkUsed;
  }

  private readonly take = (data: Uint8Array, start: number, end: number): void => {
    this.chunk.set(data.subarray(start, end), this.chunkUsed);
    this.chunkUsed += end - start;
  };

  private takeChunk(): Buffer {
    return this.chunk.subarray(0, this.chunkUsed);
  }
}
