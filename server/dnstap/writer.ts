// The dnstap writer: drains every DNS worker's ring (ring.ts) into one Frame
// Streams output, a collector's unix socket or a file. It runs on a thread of
// its own (writer-thread.ts), so the workers never make a system call for the
// log and never wait on it.
//
// Socket: bidirectional Frame Streams (READY → ACCEPT → START … STOP →
// FINISH), reconnected with backoff whenever the collector goes away. File:
// START … STOP. While the output is gone or has more than `highWater` octets
// queued, the writer stops draining; the rings fill and the workers count
// what they drop. While frames flow it drains every millisecond; when idle it
// sleeps on the control block's SLEEPING slot and the next frame wakes it.

import { createWriteStream } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { Logger } from '../log/logger.ts';
import { CONNECTED, CONNECTIONS, SLEEPING } from './control.ts';
import {
  CONTROL_ACCEPT, CONTROL_FINISH, CONTROL_READY, CONTROL_START, CONTROL_STOP, ControlFrameReader, DNSTAP_CONTENT_TYPE, controlFrame,
} from './frame-streams.ts';
import { RingConsumer } from './ring.ts';
import type { DnstapOutput } from '../config/dnstap-target.ts';


interface WriterOptions {
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
/**
 * While frames flow, the writer looks at the rings once per POLL_MS and
 * hands everything queued to the output in one write; after IDLE_POLLS
 * empty looks it sleeps until a producer wakes it. Under load no producer
 * ever pays for a wake-up (a futex call), and writes are few and large.
 */
const POLL_MS = 1;
const IDLE_POLLS = 3;

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
  private idlePolls = 0;
  /** Counts outputs: a write's completion frees ring space only if its output is still the current one. */
  private generation = 0;

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
    while (this.writeFromRings(output) > 0) { /* until the rings are empty */ }
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
      this.closeOutput();
      stream.destroy();
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
    let lastError = '';
    socket.on('error', (err) => { lastError = err.message; });
    socket.on('close', () => {
      if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
      const wasReady = this.output === socket && this.ready;
      if (this.output === socket) this.closeOutput();
      if (this.closing) return;
      if (wasReady) {
        this.log.warn({ socket: path, err: lastError || undefined }, 'dnstap collector connection lost; reconnecting');
      } else if (!this.outageLogged) {
        // Logged once per outage, not at every retry.
        this.outageLogged = true;
        this.log.warn({ socket: path, err: lastError || undefined }, 'dnstap collector unreachable; frames are dropped until it is back');
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

  /** The output is gone: what it had not written is dropped, and the rings' space comes back. */
  private closeOutput(): void {
    this.output = null;
    this.ready = false;
    this.waitingForDrain = false;
    this.generation++;
    for (const ring of this.rings) ring.release(ring.position);
    this.setConnected(false);
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

  private schedulePump(delayMs = 0): void {
    if (this.pumpScheduled || this.closing) return;
    this.pumpScheduled = true;
    if (delayMs === 0) setImmediate(() => this.pump());
    else setTimeout(() => this.pump(), delayMs);
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
    const moved = this.writeFromRings(output);
    if (output.writableLength > this.options.highWater) {
      // The collector is slow or stopped: stop taking frames until it catches up.
      this.waitingForDrain = true;
      if (this.options.output.kind === 'file') output.once('drain', () => this.onDrain());
      return;
    }
    if (moved > 0) this.idlePolls = 0;
    else this.idlePolls++;
    if (this.idlePolls < IDLE_POLLS) this.schedulePump(POLL_MS);
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
    this.idlePolls = 0;
    const wait = Atomics.waitAsync(control, SLEEPING, 1);
    if (!wait.async) this.schedulePump();
    else void wait.value.then(() => this.schedulePump());
  }

  /**
   * Hands the frames queued in every ring to the output in one gathered
   * write, as views of the rings' own memory (no copy); each ring gets its
   * octets back when the write is done. Returns the octets written.
   */
  private writeFromRings(output: Writable): number {
    let moved = 0;
    output.cork();
    for (const ring of this.rings) {
      const taken = ring.drain(this.take, CHUNK_MAX);
      if (taken === 0) continue;
      moved += taken;
      const position = ring.position;
      const generation = this.generation;
      const last = this.runs.length - 1;
      // Writes complete in order: releasing this position frees every earlier run of the ring.
      // A write still pending when its output went away was released with it (closeOutput).
      for (let i = 0; i < last; i++) output.write(this.runs[i]);
      output.write(this.runs[last], () => { if (generation === this.generation) ring.release(position); });
      this.runs.length = 0;
    }
    output.uncork();
    return moved;
  }

  private readonly runs: Buffer[] = [];

  private readonly take = (data: Uint8Array, start: number, end: number): void => {
    this.runs.push(Buffer.from(data.buffer, data.byteOffset + start, end - start));
  };
}
