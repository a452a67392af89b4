// One chunk of a window shuffle (shuffle.ts), bucketed by key and sorted one bucket at a time, when
// one of its deliveries is first asked for. When many ranks share a partition, each takes only a few
// deliveries of every chunk: sorting the whole chunk for them was most of a rank's planning time.
// Every key must still be hashed (which delivery index a sample gets depends on how many keys lie
// below it), but a bucket that holds none of the rank's deliveries is never sorted. The order is
// exactly the full sort's: buckets are contiguous ranges of the packed key, so delivery r lies in
// the bucket whose cumulative count spans r, at the place the bucket's own sort gives it.

import { ErrorCodes, GpufeedError } from '../errors.js';

/** Buckets larger than this are sorted by the built-in sort instead of insertion. */
const INSERTION_MAX = 24;
/** Average keys per bucket: few enough that a rank's handful of deliveries sorts little. */
export const KEYS_PER_BUCKET = 16;

/** A chunk as the window order reads it: delivery r of the chunk (0 <= r < length) -> local offset. */
export interface ChunkView {
  readonly length: number;
  offsetAt(r: number): number;
}

/** A fully sorted chunk (as the shared store holds it). */
export class DenseChunk implements ChunkView {
  constructor(readonly offsets: Uint32Array | Float64Array) {}
  get length(): number {
    return this.offsets.length;
  }
  offsetAt(r: number): number {
    return this.offsets[r] as number;
  }
}

/** The shuffled pieces of a window order: position i of the sequence -> local offset. */
export interface PieceMap {
  /** Local start offset of the q-th piece in shuffled order. */
  readonly pieceStart: Float64Array;
  /** Positions before the q-th piece (length pieces + 1). */
  readonly pieceCumulative: Float64Array;
}

/**
 * A chunk's candidates as packed sort keys: high part the key's fixed-point offset in the chunk,
 * low `indexBits` bits the candidate's position less the scan's first position (so ties break by
 * position), put in bucket order by `fill`. Local offsets are looked up only for the deliveries
 * read: a binary search over the few pieces the scan spans, or, once a chunk is read densely, a
 * table of the whole span. Buffers are kept and reused by the next chunk the same order computes.
 */
export class BucketedChunk implements ChunkView {
  length = 0;
  /** Packed keys in bucket order; bucket b's keys are [bucketStart[b], bucketStart[b + 1]). */
  private packed = new Float64Array(0);
  private bucketStart = new Uint32Array(1);
  private sortedBucket = new Uint8Array(0);
  private buckets = 0;
  private indexScale = 1;
  /** The bucket of the last delivery read: reads walk forward. */
  private lastBucket = 0;
  private map: PieceMap = { pieceStart: new Float64Array(0), pieceCumulative: new Float64Array(1) };
  /** Positions [first, first + span) were scanned; pieces [pieceLo, pieceHi] hold them. */
  private first = 0;
  private span = 0;
  private pieceLo = 0;
  private pieceHi = 0;
  private reads = 0;
  /** Local offset of position first + x, once built. */
  private table = new Float64Array(0);
  private hasTable = false;

  /**
   * Makes room for a chunk of `buckets` buckets and returns the counts array the scan fills: the
   * count of bucket b at b + 1, for b up to 2 * buckets (carried keys fall past the chunk's
   * buckets). A candidate's bucket, min(floor(packed * buckets / (highRange * 2^indexBits)),
   * buckets - 1), is monotone in the packed key, so bucket order is key order and keys of one bucket only need
   * sorting among themselves.
   */
  begin(buckets: number): Uint32Array {
    if (this.bucketStart.length < 2 * buckets + 2) {
      this.bucketStart = new Uint32Array(2 * buckets + 2);
      this.sortedBucket = new Uint8Array(buckets);
    }
    this.bucketStart.fill(0, 0, 2 * buckets + 2);
    return this.bucketStart;
  }

  /**
   * Takes the scan's `count` packed keys of positions [first, first + span) with their buckets
   * (`bucketOf`); `fill` is scratch of at least `buckets` entries.
   */
  finish(packedIn: Float64Array, bucketOf: Uint32Array, count: number, indexBits: number, buckets: number, fill: Uint32Array, map: PieceMap, first: number, span: number, pieceLo: number, pieceHi: number): void {
    this.length = count;
    this.indexScale = 2 ** indexBits;
    this.map = map;
    this.first = first;
    this.span = span;
    this.pieceLo = pieceLo;
    this.pieceHi = pieceHi;
    this.reads = 0;
    this.hasTable = false;
    if (this.packed.length < count) this.packed = new Float64Array(count);
    this.buckets = buckets;
    this.lastBucket = 0;
    this.sortedBucket.fill(0, 0, buckets);
    const starts = this.bucketStart;
    for (let b = 0; b < buckets; b++) starts[b + 1]! += starts[b]!;
    if (starts[buckets] !== count) throw new GpufeedError(ErrorCodes.INTERNAL, `window chunk buckets hold ${starts[buckets]} keys, not ${count}`);
    fill.set(starts.subarray(0, buckets));
    const packed = this.packed;
    for (let q = 0; q < count; q++) packed[fill[bucketOf[q] as number]!++] = packedIn[q] as number;
  }

  offsetAt(r: number): number {
    const starts = this.bucketStart;
    let b = this.lastBucket;
    if (!(r >= (starts[b] as number) && r < (starts[b + 1] as number))) {
      if (r >= (starts[b + 1] as number) && r < (starts[Math.min(b + 2, this.buckets)] as number)) b++;
      else b = this.bucketHolding(r);
      this.lastBucket = b;
    }
    if (this.sortedBucket[b] === 0) this.sortBucket(b);
    const p = this.packed[r] as number;
    const x = p - Math.floor(p / this.indexScale) * this.indexScale;
    if (this.hasTable) return this.table[x] as number;
    // A chunk read densely (a rank owning its partition) builds the table: O(1) per read after.
    if (++this.reads > this.length >>> 3) {
      this.buildTable();
      return this.table[x] as number;
    }
    return this.offsetOfPosition(this.first + x);
  }

  /** All offsets in delivery order (for the shared store). */
  materialize(size: number): Uint32Array | Float64Array {
    for (let b = 0; b < this.buckets; b++) if (this.sortedBucket[b] === 0) this.sortBucket(b);
    if (!this.hasTable) this.buildTable();
    // Offsets fit 32 bits in all but giant partitions: half the memory.
    const out = size <= 2 ** 32 ? new Uint32Array(this.length) : new Float64Array(this.length);
    const indexScale = this.indexScale;
    for (let r = 0; r < this.length; r++) {
      const p = this.packed[r] as number;
      out[r] = this.table[p - Math.floor(p / indexScale) * indexScale] as number;
    }
    return out;
  }

  private offsetOfPosition(i: number): number {
    const cum = this.map.pieceCumulative;
    let lo = this.pieceLo;
    let hi = this.pieceHi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((cum[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return (this.map.pieceStart[lo] as number) + (i - (cum[lo] as number));
  }

  private buildTable(): void {
    if (this.table.length < this.span) this.table = new Float64Array(this.span);
    const cum = this.map.pieceCumulative;
    const pieceStart = this.map.pieceStart;
    const table = this.table;
    let piece = this.pieceLo;
    for (let x = 0; x < this.span; x++) {
      const i = this.first + x;
      while ((cum[piece + 1] as number) <= i) piece++;
      table[x] = (pieceStart[piece] as number) + (i - (cum[piece] as number));
    }
    this.hasTable = true;
  }

  /** The bucket whose range holds delivery r (buckets may be empty: the last of equal starts). */
  private bucketHolding(r: number): number {
    const starts = this.bucketStart;
    let lo = 0;
    let hi = this.buckets - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= r) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private sortBucket(b: number): void {
    this.sortedBucket[b] = 1;
    const from = this.bucketStart[b] as number;
    const to = this.bucketStart[b + 1] as number;
    if (to - from < 2) return;
    const v = this.packed;
    if (to - from > INSERTION_MAX) {
      v.subarray(from, to).sort();
      return;
    }
    for (let i = from + 1; i < to; i++) {
      const x = v[i] as number;
      let k = i - 1;
      while (k >= from && (v[k] as number) > x) {
        v[k + 1] = v[k] as number;
        k--;
      }
      v[k + 1] = x;
    }
  }
}

/**
 * hashUnit(key, i) (prng.ts) for 0 <= i < 2^32, written out so the window scan's loop compiles to
 * straight integer math: the index's high word is 0, and `(h + 0) ^ hi` is `h ^ hi`.
 */
export function hashUnitSmall(keyLo: number, keyHi: number, i: number): number {
  let x = (i ^ keyLo) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  x = (x ^ keyHi) >>> 0;
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
  return (x >>> 0) / 4294967296;
}

/** What one window scan reads and writes (shuffle.ts, WindowOrder.computeChunk). */
export interface WindowScan {
  /** The chunk's key range [x0, x1). */
  x0: number;
  x1: number;
  window: number;
  keyLo: number;
  keyHi: number;
  fractionScale: number;
  indexScale: number;
  /** The scan's first position: packed keys hold positions less it. */
  first: number;
  /** A candidate's bucket: min(floor(packed * perPacked), maxBucket / 2 - 1) (BucketedChunk.begin). */
  perPacked: number;
  maxBucket: number;
  /** Candidates (keys in [x0, x1)): packed keys and buckets; counts at bucket + 1. */
  packed: Float64Array;
  bucketOf: Uint32Array;
  counts: Uint32Array;
  /** Keys at or past x1, with their positions: the next chunk's carry. */
  nextKeys: Float64Array;
  nextPositions: Float64Array;
  count: number;
  next: number;
}

/**
 * Hashes positions [from, hi) (below 2^32, and far enough past x0 that every key is at least x0)
 * and files each by its key i + (u_i - 1/2) w: a candidate of the chunk below x1, else carried.
 * Nearly all of a rank's planning time when ranks share a partition, so: no branch on the key
 * (half the keys go either way, and mispredicted branches cost more than the hash), both slots
 * written and the wrong one overwritten next time; and a function of its own, optimized alone.
 * Writes one entry past each list's end: the arrays need room for count + next + 1.
 */
export function scanWindow(s: WindowScan, from: number, hi: number): void {
  const { x0, x1, window, keyLo, keyHi, fractionScale, indexScale, first, perPacked, maxBucket, packed, bucketOf, counts, nextKeys, nextPositions } = s;
  const lastBucket = maxBucket / 2 - 1;
  let count = s.count;
  let next = s.next;
  for (let i = from; i < hi; i++) {
    // The same double as WindowOrder.key(i).
    const k = i + (hashUnitSmall(keyLo, keyHi, i) - 0.5) * window;
    const isNext = k >= x1 ? 1 : 0;
    const p = Math.floor((k - x0) * fractionScale) * indexScale + (i - first);
    // A carried key counts in a bucket past the chunk's, spread out (not all in one counter,
    // whose increments would wait on each other); a candidate's is at most the chunk's last.
    const b = Math.min(Math.floor(p * perPacked), lastBucket + isNext * (maxBucket - lastBucket));
    packed[count] = p;
    bucketOf[count] = b;
    counts[b + 1]!++;
    nextKeys[next] = k;
    nextPositions[next] = i;
    count += 1 - isNext;
    next += isNext;
  }
  s.count = count;
  s.next = next;
}

/** Files the last chunk's carried keys (positions ascending, keys at least x0) as scanWindow does. */
export function fileCarried(s: WindowScan, keys: Float64Array, positions: Float64Array, length: number): void {
  const { x0, x1, fractionScale, indexScale, first, perPacked, maxBucket, packed, bucketOf, counts, nextKeys, nextPositions } = s;
  const lastBucket = maxBucket / 2 - 1;
  let count = s.count;
  let next = s.next;
  for (let q = 0; q < length; q++) {
    const k = keys[q] as number;
    const i = positions[q] as number;
    const isNext = k >= x1 ? 1 : 0;
    const p = Math.floor((k - x0) * fractionScale) * indexScale + (i - first);
    const b = Math.min(Math.floor(p * perPacked), lastBucket + isNext * (maxBucket - lastBucket));
    packed[count] = p;
    bucketOf[count] = b;
    counts[b + 1]!++;
    nextKeys[next] = k;
    nextPositions[next] = i;
    count += 1 - isNext;
    next += isNext;
  }
  s.count = count;
  s.next = next;
}
