// Sorting a window-shuffle chunk's packed keys (shuffle.ts) in linear expected time. The keys are
// distinct integers below 2^53 whose high part (key / 2^indexBits) is close to uniform over
// [0, highRange): a counting pass over `values.length` buckets of that high part, then a sort
// inside each bucket (about one key each), puts them in exactly the order a comparison sort gives,
// several times faster than Float64Array.prototype.sort for the few thousand keys of a chunk.

/** Buckets larger than this are sorted by the built-in sort instead of insertion. */
const INSERTION_MAX = 24;

/**
 * Sorts `values` ascending in place. Every value is high * 2^indexBits + low with
 * 0 <= high < highRange and 0 <= low < 2^indexBits, all integers.
 */
export function sortPackedKeys(values: Float64Array, indexBits: number, highRange: number): void {
  const n = values.length;
  if (n < 2) return;
  const indexScale = 2 ** indexBits;
  // bucket = floor(high * n / highRange): monotone in high, so bucket order is key order, and keys
  // of one bucket only need sorting among themselves.
  const perHigh = n / highRange;
  const bucketStart = new Uint32Array(n + 1);
  const bucketOf = new Uint32Array(n);
  for (let q = 0; q < n; q++) {
    const high = Math.floor(values[q]! / indexScale);
    let b = Math.floor(high * perHigh);
    if (b >= n) b = n - 1;
    bucketOf[q] = b;
    bucketStart[b + 1]! += 1;
  }
  for (let b = 0; b < n; b++) bucketStart[b + 1]! += bucketStart[b]!;
  const fill = bucketStart.slice(0, n);
  const sorted = new Float64Array(n);
  for (let q = 0; q < n; q++) sorted[fill[bucketOf[q]!]!++] = values[q]!;
  for (let b = 0; b < n; b++) {
    const from = bucketStart[b]!;
    const to = bucketStart[b + 1]!;
    if (to - from < 2) continue;
    if (to - from > INSERTION_MAX) {
      sorted.subarray(from, to).sort();
      continue;
    }
    for (let i = from + 1; i < to; i++) {
      const v = sorted[i]!;
      let k = i - 1;
      while (k >= from && sorted[k]! > v) {
        sorted[k + 1] = sorted[k]!;
        k--;
      }
      sorted[k + 1] = v;
    }
  }
  values.set(sorted);
}
