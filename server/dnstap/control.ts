// The few shared integers between the DNS workers' producers and the dnstap
// writer thread (one SharedArrayBuffer for all of them).

/** Int32 index: 1 while the writer sleeps on it (Atomics.waitAsync); a producer that commits a frame wakes it. */
export const SLEEPING = 0;
/** Int32 index: 1 while the writer has an accepted collector connection or an open file. */
export const CONNECTED = 16;
/** Int32 index: times the writer has (re)connected to a collector. */
export const CONNECTIONS = 17;

export function createControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(32 * Int32Array.BYTES_PER_ELEMENT);
}
