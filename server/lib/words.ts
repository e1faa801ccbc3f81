// Copying short replies between byte buffers four octets at a time, through
// Int32Array views made once. A DNS reply is a few dozen octets: a loop over
// words costs less than Buffer.copy's call into C++ or a subarray() + set(),
// which allocate. Used where a reply is copied once per query (the UDP batch,
// the answer cache).

/** A word view over the whole of `bytes`, or null when it does not start on a four-octet boundary. */
export function wordView(bytes: Uint8Array): Int32Array | null {
  return bytes.byteOffset % 4 === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2) : null;
}

/**
 * Copies `octets` octets, rounded up to whole words, from word `from` of
 * `source` to word `to` of `target`. The caller keeps the rounded length
 * inside both (up to three octets past `octets` are written).
 */
export function copyWords(source: Int32Array, from: number, target: Int32Array, to: number, octets: number): void {
  for (let w = 0, n = (octets + 3) >> 2; w < n; w++) target[to + w] = source[from + w];
}
