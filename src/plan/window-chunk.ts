// One chunk of a window shuffle (shuffle.ts), bucketed by key (window-scan.ts) and sorted one
// bucket at a time, when one of its deliveries is first asked for. When many ranks share a
// partition, each takes only a few deliveries of every chunk: sorting the whole chunk for them was
// most of a rank's planning time. Every key must still be hashed (which delivery index a sample gets
// depends on how many keys lie below it), but a bucket that holds none of the rank's deliveries is
// never gathered or sorted. The order is exactly the full sort's: buckets are contiguous ranges of
// the packed key, so delivery r lies in the bucket whose cumulative count spans r, at the place the
// bucket's own sort gives it.

import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ScanRun } from './window-scan.js';

/** Groups larger than this are sorted by the built-in sort instead of insertion. */
const INSERTION_MAX = 24;

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

/** Where a chunk lies: key range [x0, x0 + w), the positions [first, first + span) that can reach it, their pieces. */
export interface ChunkPlace {
  x0: number;
  first: number;
  span: number;
  pieceLo: number;
  pieceHi: number;
  /** Grid buckets [bucketLo, bucketHi) are the chunk's keys. */
  bucketLo: number;
  bucketHi: number;
  /** One group of all its buckets (coarse grid, or a chunk below key 0), else a group per bucket. */
  single: boolean;
  /** The packed sort key: floor((k - x0) * fractionScale) * indexScale + (i - first). */
  fractionScale: number;
  indexScale: number;
}

/**
 * A chunk read out of the scan runs that hold its keys (window-scan.ts). A group's (a grid bucket's,
 * or all of them as one) first delivery index is a sum over the runs of their bucket counts, so
 * nothing is counted per chunk; a group's keys are gathered from the runs, hashed again, packed and
 * sorted only when one of its deliveries is first read. Local offsets are looked up only for the
 * deliveries read: a binary search over the few pieces the chunk's positions span, or, once a chunk
 * is read densely, a table of the whole span. Buffers are kept and reused by the next chunk.
 */
export class ScannedChunk implements ChunkView {
  length = 0;
  /** Packed keys in group order, where their groups have been gathered. */
  private packed = new Float64Array(0);
  private sortedGroup = new Uint8Array(0);
  private groups = 0;
  private runs: ScanRun[] = [];
  private keyAt: (i: number) => number = () => 0;
  private place: ChunkPlace = { x0: 0, first: 0, span: 0, pieceLo: 0, pieceHi: 0, bucketLo: 0, bucketHi: 0, single: true, fractionScale: 1, indexScale: 1 };
  /** Each run's keys below the chunk's first bucket. */
  private runBase: number[] = [];
  /** The group of the last delivery read, and its deliveries [groupFrom, groupTo): reads walk forward. */
  private group = -1;
  private groupFrom = 0;
  private groupTo = 0;
  private map: PieceMap = { pieceStart: new Float64Array(0), pieceCumulative: new Float64Array(1) };
  private reads = 0;
  /** Local offset of position first + x, once built. */
  private table = new Float64Array(0);
  private hasTable = false;

  /**
   * Takes the runs (holding them: see release) that together scanned every position that can reach
   * the chunk, and the key of a position (as the scan computed it).
   */
  init(runs: ScanRun[], place: ChunkPlace, map: PieceMap, keyAt: (i: number) => number): void {
    this.runs = runs;
    for (const run of runs) run.refs++;
    this.place = place;
    this.map = map;
    this.keyAt = keyAt;
    this.reads = 0;
    this.hasTable = false;
    this.group = -1;
    const groups = place.single ? 1 : place.bucketHi - place.bucketLo;
    this.groups = groups;
    if (this.sortedGroup.length < groups) this.sortedGroup = new Uint8Array(groups);
    this.sortedGroup.fill(0, 0, groups);
    this.runBase = runs.map((run) => run.before(place.bucketLo));
    let length = 0;
    for (const run of runs) length += run.before(place.bucketHi);
    this.length = length - this.runBase.reduce((a, b) => a + b, 0);
    if (this.packed.length < this.length) this.packed = new Float64Array(this.length);
  }

  /** Lets go of the runs (their buffers may then serve another scan). */
  release(): ScanRun[] {
    const runs = this.runs;
    for (const run of runs) run.refs--;
    this.runs = [];
    return runs;
  }

  /** Deliveries of the chunk in groups below b. */
  private startOf(b: number): number {
    if (b <= 0) return 0;
    if (b >= this.groups) return this.length;
    const g = this.place.bucketLo + b;
    const runs = this.runs;
    let n = 0;
    for (let q = 0; q < runs.length; q++) n += (runs[q] as ScanRun).before(g) - (this.runBase[q] as number);
    return n;
  }

  offsetAt(r: number): number {
    if (this.group < 0 || !(r >= this.groupFrom && r < this.groupTo)) this.findGroup(r);
    const b = this.group;
    if (this.sortedGroup[b] === 0) this.sortGroup(b, this.groupFrom, this.groupTo);
    const indexScale = this.place.indexScale;
    const p = this.packed[r] as number;
    const x = p - Math.floor(p / indexScale) * indexScale;
    if (this.hasTable) return this.table[x] as number;
    // A chunk read densely (a rank owning its partition) builds the table: O(1) per read after.
    if (++this.reads > this.length >>> 3) {
      this.buildTable();
      return this.table[x] as number;
    }
    return this.offsetOfPosition(this.place.first + x);
  }

  /** All offsets in delivery order (for the shared store). */
  materialize(size: number): Uint32Array | Float64Array {
    let from = 0;
    for (let b = 0; b < this.groups; b++) {
      const to = this.startOf(b + 1);
      if (this.sortedGroup[b] === 0) this.sortGroup(b, from, to);
      from = to;
    }
    if (!this.hasTable) this.buildTable();
    // Offsets fit 32 bits in all but giant partitions: half the memory.
    const out = size <= 2 ** 32 ? new Uint32Array(this.length) : new Float64Array(this.length);
    const indexScale = this.place.indexScale;
    for (let r = 0; r < this.length; r++) {
      const p = this.packed[r] as number;
      out[r] = this.table[p - Math.floor(p / indexScale) * indexScale] as number;
    }
    return out;
  }

  /** Makes the group holding delivery r current: one of the next few, or a binary search (groups may be empty: the last of equal starts). */
  private findGroup(r: number): void {
    if (this.group >= 0 && r >= this.groupTo) {
      let b = this.group;
      let to = this.groupTo;
      for (let guard = 0; guard < 8 && b + 1 < this.groups; guard++) {
        const from = to;
        b++;
        to = this.startOf(b + 1);
        if (r < to) {
          this.group = b;
          this.groupFrom = from;
          this.groupTo = to;
          return;
        }
      }
    }
    let lo = 0;
    let hi = this.groups - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.startOf(mid) <= r) lo = mid;
      else hi = mid - 1;
    }
    this.group = lo;
    this.groupFrom = this.startOf(lo);
    this.groupTo = this.startOf(lo + 1);
  }

  private offsetOfPosition(i: number): number {
    const cum = this.map.pieceCumulative;
    let lo = this.place.pieceLo;
    let hi = this.place.pieceHi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((cum[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return (this.map.pieceStart[lo] as number) + (i - (cum[lo] as number));
  }

  private buildTable(): void {
    const { first, span } = this.place;
    if (this.table.length < span) this.table = new Float64Array(span);
    const cum = this.map.pieceCumulative;
    const pieceStart = this.map.pieceStart;
    const table = this.table;
    let piece = this.place.pieceLo;
    for (let x = 0; x < span; x++) {
      const i = first + x;
      while ((cum[piece + 1] as number) <= i) piece++;
      table[x] = (pieceStart[piece] as number) + (i - (cum[piece] as number));
    }
    this.hasTable = true;
  }

  /** Gathers group b's keys (deliveries [from, to)) from the runs, packed as the sort key, and sorts them. */
  private sortGroup(b: number, from: number, to: number): void {
    this.sortedGroup[b] = 1;
    const { x0, first, fractionScale, indexScale, bucketLo, bucketHi, single } = this.place;
    const gLo = single ? bucketLo : bucketLo + b;
    const gHi = single ? bucketHi : gLo + 1;
    const v = this.packed;
    const keyAt = this.keyAt;
    let at = from;
    for (const run of this.runs) {
      const order = run.order;
      const runFrom = run.from;
      for (let s = run.before(gLo), end = run.before(gHi); s < end && at < to; s++) {
        const i = runFrom + (order[s] as number);
        v[at++] = Math.floor((keyAt(i) - x0) * fractionScale) * indexScale + (i - first);
      }
    }
    let all = 0;
    for (const run of this.runs) all += run.before(gHi) - run.before(gLo);
    if (all !== to - from) throw new GpufeedError(ErrorCodes.INTERNAL, `window chunk group holds ${all} keys, not ${to - from}`);
    if (to - from < 2) return;
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
