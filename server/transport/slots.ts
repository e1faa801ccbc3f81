// Connection slots shared by every thread of the server: one counter in a
// SharedArrayBuffer, taken with a compare-and-swap and given back when a
// socket has closed. The TCP cap is one number for the whole server however
// many DNS workers accept, so the process's descriptors stay within what the
// operator planned for.

/** Counts open connections against a capacity, across threads. */
export class ConnectionSlots {
  readonly capacity: number;
  private readonly open: Int32Array;

  /** `buffer` from createSlotBuffer(), shared by every thread that accepts. */
  constructor(buffer: SharedArrayBuffer, capacity: number) {
    this.open = new Int32Array(buffer);
    this.capacity = capacity;
  }

  /** Takes a slot; false when all `capacity` are taken. */
  tryTake(): boolean {
    for (;;) {
      const open = Atomics.load(this.open, 0);
      if (open >= this.capacity) return false;
      if (Atomics.compareExchange(this.open, 0, open, open + 1) === open) return true;
    }
  }

  release(): void {
    Atomics.sub(this.open, 0, 1);
  }

  /** Connections holding a slot now. */
  count(): number {
    return Atomics.load(this.open, 0);
  }
}

export function createSlotBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
}
