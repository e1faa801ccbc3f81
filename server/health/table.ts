// The health table: the only health state DNS workers see. One
// SharedArrayBuffer written by the health service in the main thread and read
// with Atomics by every worker, so a state change reaches answers at once
// without messages or locks. Layout (Int32 slots):
//   [0] epoch      — incremented after every batch of effective changes
//   [1] cut-off    — 1 while the "I am cut off" freeze is active
//   [2] subjects   — number of subjects (PoPs by catalog ordinal, then endpoints)
//   [3 + i]        — effective state of subject i: 1 up, 0 down

export const SLOT_EPOCH = 0;
export const SLOT_CUT_OFF = 1;
export const SLOT_COUNT = 2;
export const FIRST_SUBJECT_SLOT = 3;

export const HEALTH_UP = 1;
export const HEALTH_DOWN = 0;

/** A table for `subjectCount` subjects, all up, epoch 0. */
export function createHealthTable(subjectCount: number): SharedArrayBuffer {
  if (!Number.isInteger(subjectCount) || subjectCount < 0) throw new RangeError(`subject count must be a non-negative integer, got ${subjectCount}`);
  const buffer = new SharedArrayBuffer((FIRST_SUBJECT_SLOT + subjectCount) * Int32Array.BYTES_PER_ELEMENT);
  const view = new Int32Array(buffer);
  view[SLOT_COUNT] = subjectCount;
  view.fill(HEALTH_UP, FIRST_SUBJECT_SLOT);
  return buffer;
}

/** True when subject `i` is up. Out-of-range ordinals read as up (fail open). */
export function readHealth(view: Int32Array, i: number): boolean {
  if (i < 0 || i >= view[SLOT_COUNT]) return true;
  return Atomics.load(view, FIRST_SUBJECT_SLOT + i) === HEALTH_UP;
}

/** Changes whenever any effective state changes; decision caches key on it. */
export function healthEpoch(view: Int32Array): number {
  return Atomics.load(view, SLOT_EPOCH);
}

export function healthCutOff(view: Int32Array): boolean {
  return Atomics.load(view, SLOT_CUT_OFF) === 1;
}

// Writers (health service only). States are stored before the epoch moves so
// a reader that sees the new epoch also sees the new states.
export function writeHealth(view: Int32Array, i: number, up: boolean): void {
  Atomics.store(view, FIRST_SUBJECT_SLOT + i, up ? HEALTH_UP : HEALTH_DOWN);
}

export function bumpEpoch(view: Int32Array): void {
  Atomics.add(view, SLOT_EPOCH, 1);
}

export function writeCutOff(view: Int32Array, active: boolean): void {
  Atomics.store(view, SLOT_CUT_OFF, active ? 1 : 0);
}
