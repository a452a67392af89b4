// A stream's endless cycle: successive orders ("cycles") of all its samples, one after another.
// Epoch e of a mixture takes positions [e n_k, (e+1) n_k) of stream k's cycle, so a stream smaller
// than its share repeats, a larger one is subsampled (another part of it every epoch), and over
// epochs every sample comes before any comes twice. With `none` each cycle is manifest order;
// with `window` the shards are put in a new random order each cycle (rows kept in order, so an
// epoch's part of a large stream is a set of whole shards: locality); with `naive` each cycle is
// a full permutation of the samples (no locality, the quality reference).
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ShuffleAlgo } from './options.js';
import { FeistelPermutation } from './permutation.js';
import { deriveKey, type Key64, ROOT_KEY, Sfc32 } from './prng.js';
import { samplesToShards, type SampleLocator, type ShardSize } from './samples.js';
import type { PieceLocator } from './shuffle.js';

interface CycleOrder {
  /** Stream-local sample at cycle offset o. */
  sampleAt(o: number): number;
  /** Pieces (runs of consecutive offsets that are consecutive samples): their starts. */
  readonly pieceStarts: Float64Array;
}

export class StreamCycle {
  readonly rows: number;
  private readonly locator: SampleLocator;
  private readonly cycles = new Map<number, CycleOrder>();
  /** Offsets of the non-empty shards' first rows, in manifest order (cycle offsets for `none`). */
  private readonly manifestStarts: Float64Array;
  /** The non-empty shards' row counts, in manifest order. */
  private readonly manifestRows: Float64Array;

  constructor(shards: readonly ShardSize[], private readonly algo: ShuffleAlgo, private readonly key: Key64) {
    this.locator = samplesToShards(shards);
    this.rows = this.locator.totalRows;
    const starts: number[] = [];
    const nonEmpty: number[] = [];
    for (let s = 0; s < this.locator.shardCount; s++) {
      if (this.locator.shardRows(s) > 0) {
        starts.push(this.locator.shardStart(s));
        nonEmpty.push(s);
      }
    }
    this.manifestStarts = Float64Array.from(starts);
    this.manifestRows = Float64Array.from(nonEmpty, (s) => this.locator.shardRows(s));
  }

  /** Stream-local sample at cycle position v (any non-negative safe integer). */
  sampleAt(v: number): number {
    const c = Math.floor(v / this.rows);
    return this.cycle(c).sampleAt(v - c * this.rows);
  }

  /** Starts of the pieces of cycle c, as cycle offsets (ascending, the first 0). */
  pieces(c: number): Float64Array {
    return this.cycle(c).pieceStarts;
  }

  /** The last cycle asked for (a cycle's order never changes once built): no map lookup per sample. */
  private lastCycle = -1;
  private lastOrder: CycleOrder | undefined;

  private cycle(c: number): CycleOrder {
    if (c === this.lastCycle && this.lastOrder !== undefined) return this.lastOrder;
    let order = this.cycles.get(c);
    if (order) {
      this.lastCycle = c;
      this.lastOrder = order;
      return order;
    }
    order = this.build(c);
    // Positions are visited mostly forward; a window may straddle a cycle edge.
    if (this.cycles.size >= 4) this.cycles.delete(this.cycles.keys().next().value as number);
    this.cycles.set(c, order);
    this.lastCycle = c;
    this.lastOrder = order;
    return order;
  }

  private build(c: number): CycleOrder {
    if (this.algo === 'none' || this.rows === 0) {
      return { sampleAt: (o) => o, pieceStarts: this.manifestStarts };
    }
    const key = deriveKey(this.key, c);
    if (this.algo === 'naive') {
      const perm = new FeistelPermutation(this.rows, key);
      // Every sample is its own piece; the window shuffle never runs on a naive plan.
      return { sampleAt: (o) => perm.at(o), pieceStarts: new Float64Array([0]) };
    }
    const shards = this.manifestStarts.length;
    const order = new Uint32Array(shards);
    for (let i = 0; i < shards; i++) order[i] = i;
    const rng = new Sfc32(key);
    for (let i = shards - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      const t = order[i] as number;
      order[i] = order[j] as number;
      order[j] = t;
    }
    const pieceStarts = new Float64Array(shards);
    const sampleStarts = new Float64Array(shards);
    let at = 0;
    for (let q = 0; q < shards; q++) {
      const m = order[q] as number;
      pieceStarts[q] = at;
      sampleStarts[q] = this.manifestStarts[m] as number;
      at += this.manifestRows[m] as number;
    }
    return {
      pieceStarts,
      sampleAt: (o) => {
        let lo = 0;
        let hi = shards - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >>> 1;
          if ((pieceStarts[mid] as number) <= o) lo = mid;
          else hi = mid - 1;
        }
        return (sampleStarts[lo] as number) + (o - (pieceStarts[lo] as number));
      },
    };
  }
}

/** The key of stream k's cycles under (seed, shuffle). */
export function streamCycleKey(seed: number, algoTag: number, stream: number): Key64 {
  return deriveKey(ROOT_KEY, seed, 0x63796c65, algoTag, stream);
}

/**
 * The pieces of one epoch's items of a stream (item i is cycle position first + i), for the window
 * shuffle of a partition: piece q runs over consecutive samples. Piece index = (cycle - first
 * cycle) * pieces per cycle + piece within the cycle.
 */
export class EpochItemPieces implements PieceLocator {
  readonly shardCount: number;
  private readonly firstCycle: number;
  private readonly perCycle: number;

  constructor(private readonly cycle: StreamCycle, private readonly first: number, items: number) {
    const rows = cycle.rows;
    this.firstCycle = rows > 0 ? Math.floor(first / rows) : 0;
    const lastCycle = rows > 0 && items > 0 ? Math.floor((first + items - 1) / rows) : this.firstCycle;
    this.perCycle = cycle.pieces(this.firstCycle).length;
    this.shardCount = (lastCycle - this.firstCycle + 1) * this.perCycle;
  }

  /** Item index where piece `index` begins (may be negative for the epoch's first piece). */
  shardStart(index: number): number {
    const c = this.firstCycle + Math.floor(index / this.perCycle);
    const q = index % this.perCycle;
    const starts = this.cycle.pieces(c);
    return c * this.cycle.rows + (starts[q] as number) - this.first;
  }

  shardOf(item: number): number {
    const v = this.first + item;
    const c = Math.floor(v / this.cycle.rows);
    const o = v - c * this.cycle.rows;
    const starts = this.cycle.pieces(c);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= o) lo = mid;
      else hi = mid - 1;
    }
    if (c < this.firstCycle) throw new GpufeedError(ErrorCodes.INTERNAL, `item ${item} before the epoch's first cycle`);
    return (c - this.firstCycle) * this.perCycle + lo;
  }
}
