// Per-subject signals besides up/down, shared with the DNS workers: when the
// subject's health could next change (for TTLs derived from health, as gdnsd
// does) and its declared load (for capacity steps). Written by the main
// thread, read per query; a Float64Array over a SharedArrayBuffer.

const SLOTS = 2;
const NEXT_CHANGE = 0;
const LOAD = 1;

export function createSignals(subjectCount: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * SLOTS * Math.max(1, subjectCount));
  const view = new Float64Array(buffer);
  for (let i = 0; i < subjectCount; i++) {
    view[i * SLOTS + NEXT_CHANGE] = Infinity;
    view[i * SLOTS + LOAD] = NaN;
  }
  return buffer;
}

/** Milliseconds since the epoch at which subject `i`'s state could first change; Infinity if only an operator can change it. */
export function nextPossibleChange(view: Float64Array, i: number): number {
  return view[i * SLOTS + NEXT_CHANGE];
}

export function setNextPossibleChange(view: Float64Array, i: number, atMs: number): void {
  view[i * SLOTS + NEXT_CHANGE] = atMs;
}

/** Declared load of subject `i` (1 = at capacity); NaN when no feed has reported one. */
export function declaredLoad(view: Float64Array, i: number): number {
  return view[i * SLOTS + LOAD];
}

export function setDeclaredLoad(view: Float64Array, i: number, load: number): void {
  view[i * SLOTS + LOAD] = load;
}
