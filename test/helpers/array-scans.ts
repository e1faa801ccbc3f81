// Counts the elements that Array methods visit while a function runs: a
// measure of work that does not depend on how busy the machine is, so a test
// can show that twice the input costs about twice the work (a scan per item,
// the usual way a load turns quadratic, shows up as four times).

const SCANS = ['some', 'every', 'find', 'findIndex', 'findLast', 'findLastIndex', 'filter', 'map', 'forEach', 'reduce', 'indexOf', 'lastIndexOf', 'includes'] as const;

/** Runs `run` with every Array scan counted; returns its result and the elements visited. */
export function countArrayScans<T>(run: () => T): { value: T; visited: number } {
  const proto = Array.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = SCANS.map((name) => proto[name]);
  let visited = 0;
  SCANS.forEach((name, i) => {
    const original = originals[i];
    // Counts the whole length: an upper bound for scans that stop early, which is what a worst case is.
    proto[name] = function (this: unknown[], ...args: unknown[]) {
      visited += this.length;
      return original.apply(this, args);
    };
  });
  try {
    return { value: run(), visited };
  } finally {
    SCANS.forEach((name, i) => { proto[name] = originals[i]; });
  }
}
