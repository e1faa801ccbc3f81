// A single-producer, single-consumer byte ring in a SharedArrayBuffer: one
// per DNS worker, written by that worker's query path and read by the dnstap
// writer thread. The producer never waits: when the ring has no room, the
// frame is dropped and counted. Frames are stored exactly as Frame Streams
// data frames (4-octet big-endian length, payload), so the consumer copies
// runs of them to the output without looking inside.
//
// A frame never wraps. When the room left at the end is too short, the
// producer marks the spot (WRAP, or fewer than 4 octets left) and writes the
// frame at offset 0. One octet always stays free so that head === tail means
// empty. head and tail sit on separate cache lines; the counters are written
// by the producer only and read by the admin thread.

const HEAD = 0; // Int32 index: the producer's next write offset
const TAIL = 16; // Int32 index (64 octets further): the consumer's next read offset
const STATS_OFFSET = 128; // Float64s: frames queued, frames dropped
const FRAMES = 0;
const DROPPED = 1;
const RING_HEADER_BYTES = 192;
/** A length no frame has: the producer wrapped to offset 0 here. */
const WRAP = 0xffffffff;

export function createRing(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(RING_HEADER_BYTES + capacity);
}

class RingView {
  protected readonly index: Int32Array;
  protected readonly stats: Float64Array;
  protected readonly data: Uint8Array;
  protected readonly capacity: number;

  constructor(buffer: SharedArrayBuffer) {
    this.index = new Int32Array(buffer, 0, STATS_OFFSET / 4);
    this.stats = new Float64Array(buffer, STATS_OFFSET, 2);
    this.data = new Uint8Array(buffer, RING_HEADER_BYTES);
    this.capacity = this.data.length;
  }
}

export class RingProducer extends RingView {
  /** Where the frame being written goes, and where head moves on commit. */
  private head = 0;
  private nextHead = 0;

  /** The ring's octets; reserve() says where a frame may be written. */
  get bytes(): Uint8Array {
    return this.data;
  }

  /**
   * Room for `size` octets: returns the offset to write them at, or -1 when
   * the ring is full (the frame is counted as dropped).
   */
  reserve(size: number): number {
    const capacity = this.capacity;
    const head = this.head;
    const tail = Atomics.load(this.index, TAIL);
    if (head >= tail) {
      const end = head + size;
      if (end < capacity || (end === capacity && tail > 0)) {
        this.nextHead = end === capacity ? 0 : end;
        return head;
      }
      // Not enough room before the end: wrap, if the start has room short of the tail.
      if (size < tail) {
        if (capacity - head >= 4) writeU32(this.data, head, WRAP);
        this.nextHead = size;
        return 0;
      }
    } else if (head + size < tail) {
      this.nextHead = head + size;
      return head;
    }
    this.stats[DROPPED]++;
    return -1;
  }

  /** Publishes the frame written at the offset reserve() returned. */
  commit(): void {
    this.head = this.nextHead;
    this.stats[FRAMES]++;
    Atomics.store(this.index, HEAD, this.head);
  }
}

export class RingConsumer extends RingView {
  /** Where the next drain() reads; the producer may reuse octets only up to the released tail. */
  private tail = 0;

  /** The read position after the last drain(), for release(). */
  get position(): number {
    return this.tail;
  }

  /** The ring's octets, for views over the runs drain() hands out. */
  get buffer(): ArrayBufferLike {
    return this.data.buffer;
  }

  get byteOffset(): number {
    return this.data.byteOffset;
  }

  /**
   * Hands the frames queued so far, up to `limit` octets, to `take` as runs
   * of consecutive octets (data, start, end). They stay untouched by the
   * producer until release() of a position at or after them, so the runs
   * may be written out without a copy. Returns the octets taken.
   */
  drain(take: (data: Uint8Array, start: number, end: number) => void, limit: number): number {
    const head = Atomics.load(this.index, HEAD);
    const capacity = this.capacity;
    const data = this.data;
    let tail = this.tail;
    let runStart = tail;
    let taken = 0;
    while (tail !== head) {
      if (capacity - tail < 4 || readU32(data, tail) === WRAP) {
        if (tail > runStart) take(data, runStart, tail);
        tail = 0;
        runStart = 0;
        continue;
      }
      const size = 4 + readU32(data, tail);
      if (taken + size > limit) break;
      tail += size;
      taken += size;
      if (tail === capacity) {
        take(data, runStart, tail);
        tail = 0;
        runStart = 0;
      }
    }
    if (tail > runStart) take(data, runStart, tail);
    this.tail = tail;
    return taken;
  }

  /** Gives the octets before `position` (a `position` seen after a drain) back to the producer. */
  release(position: number): void {
    Atomics.store(this.index, TAIL, position);
  }

  /** Octets published and not yet drained (frames, and the skipped end of the ring when it wrapped). */
  queued(): number {
    const head = Atomics.load(this.index, HEAD);
    return head >= this.tail ? head - this.tail : this.capacity - this.tail + head;
  }

  /** Whether the producer has published frames not yet drained. */
  hasFrames(): boolean {
    return Atomics.load(this.index, HEAD) !== this.tail;
  }
}

/** Frames queued and dropped by a ring's producer (for metrics). */
export function ringStats(buffer: SharedArrayBuffer): { frames: number; dropped: number } {
  const stats = new Float64Array(buffer, STATS_OFFSET, 2);
  return { frames: stats[FRAMES], dropped: stats[DROPPED] };
}

function writeU32(data: Uint8Array, at: number, value: number): void {
  data[at] = value >>> 24;
  data[at + 1] = (value >>> 16) & 0xff;
  data[at + 2] = (value >>> 8) & 0xff;
  data[at + 3] = value & 0xff;
}

function readU32(data: Uint8Array, at: number): number {
  return ((data[at] << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) | data[at + 3]) >>> 0;
}
