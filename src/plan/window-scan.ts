// One pass of a window shuffle over a run of positions (shuffle.ts): each position's key
// i + (u_i - 1/2) w is hashed once and filed into a bucket of key space, and the run's positions
// are put in bucket order by a counting sort. A chunk of key space (window-chunk.ts) then reads
// its keys out of the one to three runs whose keys can reach it, so a forward walk hashes and
// files every position exactly once: no keys carried from chunk to chunk, no branch per key. Only
// the buckets a rank reads need the keys themselves: those few are hashed again when gathered.
//
// The buckets are a grid over all of key space, aligned to the chunks' edges (multiples of w):
// - fine: bucket floor(k / width), width the largest power of two dividing w, at most 16. Since
//   width divides w, chunk j is buckets [j w / width, (j + 1) w / width); since width and the
//   sort key's fixed-point scale are powers of two, the bucket is a function of the fixed-point
//   key (floor((k - x0) fs)), so bucket order is sort-key order and a chunk's order is its
//   buckets' orders end to end.
// - coarse: one bucket per chunk, when the fine grid would hold far more buckets than keys (a
//   window much larger than its partition).
import { ErrorCodes, GpufeedError } from '../errors.js';

/** Keys per bucket, about: few enough that a rank's handful of deliveries sorts little. */
const KEYS_PER_BUCKET = 16;

export interface BucketGrid {
  readonly window: number;
  readonly coarse: boolean;
  /** Fine: the bucket width (a power of two dividing the window) and its inverse. */
  readonly width: number;
  readonly inverse: number;
  /** Buckets per chunk. */
  readonly perChunk: number;
}

/** The grid for a window over a partition of `size` positions. */
export function bucketGrid(window: number, size: number): BucketGrid {
  const width = Math.min(KEYS_PER_BUCKET, window & -window);
  const perChunk = window / width;
  // The keys of a chunk number about min(w, m); buckets far beyond that are counted for nothing.
  if (perChunk > 4 * Math.min(window, size) + 1024) return { window, coarse: true, width: window, inverse: 1 / window, perChunk: 1 };
  return { window, coarse: false, width, inverse: 1 / width, perChunk };
}

/** The grid bucket of key k. */
export function bucketOfKey(grid: BucketGrid, k: number): number {
  if (!grid.coarse) return Math.floor(k * grid.inverse);
  // Which chunk, exactly: the division may round across an edge.
  const w = grid.window;
  let j = Math.floor(k / w);
  if (k < j * w) j--;
  else if (k >= (j + 1) * w) j++;
  return j;
}

/** A run of scanned positions [from, to), in bucket order. Its buffers are reused (refs counts holders). */
export class ScanRun {
  from = 0;
  to = 0;
  /** Grid buckets [firstBucket, firstBucket + buckets) hold every key of the run. */
  firstBucket = 0;
  buckets = 0;
  /** Bucket of position from + q, less firstBucket. */
  bucketOf = new Uint32Array(0);
  /** Positions (less from) in bucket order; bucket b's are [starts[b], starts[b + 1]). */
  order = new Uint32Array(0);
  starts = new Uint32Array(1);
  /** Holders: the walk that may extend past it, and the chunks that read it. */
  refs = 0;

  /** Keys of the run in grid buckets below g. */
  before(g: number): number {
    const b = g - this.firstBucket;
    return this.starts[b <= 0 ? 0 : b >= this.buckets ? this.buckets : b] as number;
  }
}

/** The window key's hash for indices below 2^32 (see hashUnitSmall), scaled: w * (u - 1/2) = s * w / 2^32. */
export interface ScanKey {
  readonly lo: number;
  readonly hi: number;
  /** The key of any position (the general path, for positions at or past 2^32). */
  keyAt(i: number): number;
}

/**
 * Scans positions [from, to) into `run`: their keys, buckets and bucket order. Nearly all of a
 * rank's planning time when ranks share a partition.
 */
export function scanRun(run: ScanRun, grid: BucketGrid, key: ScanKey, from: number, to: number): void {
  const n = to - from;
  const w = grid.window;
  // Every key lies in [i - w/2, i + w/2] (the jitter is at most w/2 either way, and rounding keeps
  // it there): one bucket of margin each side.
  const firstBucket = bucketOfKey(grid, from - w / 2) - 1;
  const buckets = bucketOfKey(grid, to - 1 + w / 2) + 2 - firstBucket;
  run.from = from;
  run.to = to;
  run.firstBucket = firstBucket;
  run.buckets = buckets;
  if (run.bucketOf.length < n) {
    run.bucketOf = new Uint32Array(n);
    run.order = new Uint32Array(n);
  }
  if (run.starts.length < buckets + 1) run.starts = new Uint32Array(buckets + 1);
  const counts = run.starts;
  counts.fill(0, 0, buckets + 1);
  const bits = Math.log2(w);
  if (!grid.coarse && Number.isInteger(bits) && bits >= 1 && to <= Math.min(4294967296, 2 ** (21 + bits))) {
    scanPowerOfTwo(run.bucketOf, counts, from, to, key.lo | 0, key.hi | 0, 32 - bits, Math.log2(grid.width), firstBucket);
  } else if (!grid.coarse && to <= 4294967296) {
    scanFine(run.bucketOf, counts, from, to, key.lo | 0, key.hi | 0, w / 4294967296, grid.inverse, firstBucket);
  } else {
    const bucketOf = run.bucketOf;
    for (let i = from; i < to; i++) {
      const b = bucketOfKey(grid, key.keyAt(i)) - firstBucket;
      bucketOf[i - from] = b;
      counts[b + 1]!++;
    }
  }
  for (let b = 0; b < buckets; b++) counts[b + 1]! += counts[b]!;
  // A key outside the buckets would have been dropped by the typed array: refuse rather than lose it.
  if (counts[buckets] !== n) throw new GpufeedError(ErrorCodes.INTERNAL, `window scan filed ${counts[buckets]} of ${n} keys`);
  // Counting sort; `fill` walks each bucket's next slot (borrowing the order's tail is not
  // possible, so a scratch array of the run's size).
  const fill = scratch(buckets);
  fill.set(counts.subarray(0, buckets));
  const order = run.order;
  const bucketOf = run.bucketOf;
  for (let q = 0; q < n; q++) order[fill[bucketOf[q] as number]!++] = q;
}

let fillScratch = new Uint32Array(0);
function scratch(n: number): Uint32Array {
  if (fillScratch.length < n) fillScratch = new Uint32Array(Math.max(n, 2 * fillScratch.length));
  return fillScratch;
}

/**
 * The fine grid's scan for positions below 2^32: the hash of hashUnitSmall written out, and the key
 * as i + s * (w / 2^32) with s = h - 2^31 as a signed 32-bit integer, which is the same double as
 * i + (h / 2^32 - 1/2) * w (h / 2^32 - 1/2 = s / 2^32 exactly, and scaling by a power of two is
 * exact, so both products round the same real number). No branch: a mispredicted one per key
 * costs more than the hash.
 */
function scanFine(bucketOf: Uint32Array, counts: Uint32Array, from: number, to: number, keyLo: number, keyHi: number, scale: number, inverse: number, firstBucket: number): void {
  for (let i = from, q = 0; i < to; i++, q++) {
    let x = i ^ keyLo;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x ^= keyHi;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x = (x + keyLo) | 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    const k = i + (x ^ -2147483648) * scale;
    const b = (Math.floor(k * inverse) - firstBucket) | 0;
    counts[b + 1]!++;
    bucketOf[q] = b;
  }
}

/**
 * scanFine for a window w = 2^a (a >= 1) and positions below 2^(21 + a) (and 2^32), where the key
 * i + s 2^(a - 32) is exact as a double, so its bucket floor(k / 2^m) is integer math: with
 * i = I 2^m + r, it is I + floor((r + floor(s / 2^(32 - a))) / 2^m), shifts all (r and 2^m are
 * integers, so flooring s / 2^(32 - a) first changes nothing). No conversion to and from doubles.
 */
function scanPowerOfTwo(bucketOf: Uint32Array, counts: Uint32Array, from: number, to: number, keyLo: number, keyHi: number, shift: number, widthBits: number, firstBucket: number): void {
  const mask = (1 << widthBits) - 1;
  for (let i = from, q = 0; i < to; i++, q++) {
    let x = i ^ keyLo;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x ^= keyHi;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x = (x + keyLo) | 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    const b = ((i >>> widthBits) - firstBucket + (((i & mask) + ((x ^ -2147483648) >> shift)) >> widthBits)) | 0;
    counts[b + 1]!++;
    bucketOf[q] = b;
  }
}
