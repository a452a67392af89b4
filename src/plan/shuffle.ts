// Shuffle algorithms, selected by name: each turns a partition's m samples into an order,
// `at(t)` = the local offset (0..m-1) delivered t-th. All are random access, so a rank computes only
// the part of its partition's order it needs, step by step, and any step can be planned first.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { FeistelPermutation } from './permutation.js';
import { deriveKey, hashUnit, type Key64, Sfc32 } from './prng.js';
import type { ShuffleAlgo } from './options.js';
import type { SharedWindows } from './shared-windows.js';
import { type ChunkView, DenseChunk, hashUnitSmall, type PieceMap, ScannedChunk } from './window-chunk.js';
import { type BucketGrid, bucketGrid, type ScanKey, ScanRun, scanRun } from './window-scan.js';

/** Where a window order finds chunks other threads computed, and which (epoch, partition) it is. */
export interface WindowShare {
  store: SharedWindows;
  epoch: number;
  partition: number;
}

export interface PartitionOrder {
  /** Samples in the partition (m). */
  readonly size: number;
  /** Local offset of the t-th sample delivered, 0 <= t < size. */
  at(t: number): number;
}

/** What the window shuffle needs of a sequence's pieces (shards, or runs of consecutive samples). */
export interface PieceLocator {
  readonly shardCount: number;
  /** The piece holding position `id`. */
  shardOf(id: number): number;
  /** First position of piece `index` (index may be shardCount: the end). */
  shardStart(index: number): number;
}

/** A partition: global ids [start, start + size). */
export interface PartitionRange {
  start: number;
  size: number;
}

/** Builds the order of one partition for one epoch. `key` is already specific to (seed, epoch, partition). */
export function partitionOrder(
  algo: ShuffleAlgo,
  range: PartitionRange,
  locator: PieceLocator,
  key: Key64,
  shuffleWindow: number,
  share?: WindowShare,
): PartitionOrder {
  switch (algo) {
    case 'none':
      return new IdentityOrder(range.size);
    case 'naive':
      return new NaiveOrder(range.size, key);
    case 'window':
      return new WindowOrder(range, locator, key, shuffleWindow, share);
  }
}

export class IdentityOrder implements PartitionOrder {
  constructor(readonly size: number) {}
  at(t: number): number {
    return t;
  }
}

/** A uniformly random permutation (Feistel): best mixing, no locality at all. */
export class NaiveOrder implements PartitionOrder {
  private readonly permutation: FeistelPermutation;
  constructor(readonly size: number, key: Key64) {
    this.permutation = new FeistelPermutation(size, key);
  }
  at(t: number): number {
    return this.permutation.at(t);
  }
}

/**
 * The window shuffle, in the spirit of MosaicML's py1e:
 * 1. the partition's shard pieces (a shard, or the part of one inside the partition) are put in a
 *    random order, and their samples concatenated: sequence position i -> sample;
 * 2. each position gets a key i + (u_i - 1/2) * w with u_i uniform in [0, 1), and samples are
 *    delivered in key order.
 * So a sample moves at most w/2 from its place in the shard-shuffled sequence: any w consecutive
 * deliveries come from about w + w of that sequence, i.e. (2w / rows per shard) + 2 shards, which
 * is what the cache must hold. Unlike fixed blocks, there are no block edges that never mix.
 *
 * Random access: keys are sorted per chunk of key space [jw, (j+1)w); the number of keys below jw
 * is (positions surely below) + (a count over the uncertain 2w around it), so chunk j's first
 * delivery index is known without sorting anything before it. A forward walk hashes each position
 * once, into buckets of key space (window-scan.ts); a chunk counts its keys from the buckets, and
 * a bucket is gathered and sorted only when one of its deliveries is asked for (window-chunk.ts): a
 * rank sharing its partition with many others sorts only its own part of each chunk.
 */
export class WindowOrder implements PartitionOrder, PieceMap {
  readonly size: number;
  private readonly window: number;
  private readonly jitterKey: Key64;
  /** Shard pieces in shuffled order: local start offset, and cumulative length before each. */
  readonly pieceStart: Float64Array;
  readonly pieceCumulative: Float64Array;
  /** Bits for a candidate's index inside a chunk, and fractional key bits, in the packed sort key. */
  private readonly indexBits: number;
  private readonly fractionScale: number;
  private readonly starts = new Map<number, number>();
  private readonly chunks = new Map<number, ChunkView>();
  /** A chunk no longer cached, whose buffers the next computed chunk takes over. */
  private spare: ScannedChunk | undefined;
  private readonly grid: BucketGrid;
  private readonly scanKey: ScanKey;
  private readonly share: WindowShare | undefined;
  /**
   * The forward walk's scan runs: contiguous, ascending, disjoint; the next chunk scans on from the
   * last one's end, so a forward walk hashes each position once. Runs no chunk or walk holds wait
   * in `freeRuns` for reuse.
   */
  private walk: ScanRun[] = [];
  private freeRuns: ScanRun[] = [];

  constructor(range: PartitionRange, locator: PieceLocator, key: Key64, window: number, share?: WindowShare) {
    this.size = range.size;
    this.share = share;
    this.window = window;
    this.jitterKey = deriveKey(key, 2);

    // Pieces of the partition in manifest order.
    const starts: number[] = [];
    const lengths: number[] = [];
    const end = range.start + range.size;
    if (range.size > 0) {
      for (let shard = locator.shardOf(range.start); shard < locator.shardCount; shard++) {
        const shardBegin = locator.shardStart(shard);
        if (shardBegin >= end) break;
        const from = Math.max(shardBegin, range.start);
        const to = Math.min(locator.shardStart(shard + 1), end);
        if (to > from) {
          starts.push(from - range.start);
          lengths.push(to - from);
        }
      }
    }
    const order = Uint32Array.from(starts.keys());
    const rng = new Sfc32(deriveKey(key, 1));
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      const tmp = order[i] as number;
      order[i] = order[j] as number;
      order[j] = tmp;
    }
    this.pieceStart = new Float64Array(order.length);
    this.pieceCumulative = new Float64Array(order.length + 1);
    for (let q = 0; q < order.length; q++) {
      const piece = order[q] as number;
      this.pieceStart[q] = starts[piece] as number;
      this.pieceCumulative[q + 1] = (this.pieceCumulative[q] as number) + (lengths[piece] as number);
    }

    // Packed sort key = floor(relativeKey * 2^f) * 2^indexBits + candidateIndex, below 2^53.
    this.indexBits = bitsFor(2 * window + 8);
    const fractionBits = 52 - bitsFor(window) - this.indexBits;
    if (fractionBits < 0) throw new GpufeedError(ErrorCodes.INTERNAL, `shuffle window ${window} too large to sort exactly`);
    this.fractionScale = 2 ** fractionBits;
    this.grid = bucketGrid(window, this.size);
    const jitter = this.jitterKey;
    this.scanKey = { lo: jitter.lo, hi: jitter.hi, keyAt: (i) => this.key(i) };
  }

  /**
   * The chunk the last at() found, and its delivery indices [lastStart, lastEnd): consecutive
   * indices (a batch's) mostly fall in it, with no map lookups. Cleared when a chunk is evicted
   * (its buffers go to the next one computed).
   */
  private lastChunk: ChunkView | undefined;
  private lastStart = 0;
  private lastEnd = 0;

  at(t: number): number {
    if (!(t >= 0 && t < this.size)) throw new GpufeedError(ErrorCodes.INTERNAL, `order index ${t} outside [0, ${this.size})`);
    const last = this.lastChunk;
    if (last !== undefined && t >= this.lastStart && t < this.lastEnd) return last.offsetAt(t - this.lastStart);
    let j = Math.floor(t / this.window);
    // The guess is off by at most one or two chunks (keys move at most w/2); the bound is a guard.
    // A chunk's length gives the next one's start, so walking forward counts no keys twice.
    for (let guard = 0; ; guard++) {
      if (guard > 64) throw new GpufeedError(ErrorCodes.INTERNAL, 'window shuffle chunk search did not converge');
      const start = this.chunkStart(j);
      if (start > t) {
        j--;
        continue;
      }
      const chunk = this.chunk(j);
      if (start + chunk.length <= t) {
        j++;
        continue;
      }
      this.lastChunk = chunk;
      this.lastStart = start;
      this.lastEnd = start + chunk.length;
      return chunk.offsetAt(t - start);
    }
  }

  private key(i: number): number {
    const u = i < 4294967296 ? hashUnitSmall(this.jitterKey.lo, this.jitterKey.hi, i) : hashUnit(this.jitterKey, i);
    return i + (u - 0.5) * this.window;
  }

  /** Positions [lo, hi) of the shuffled-shard sequence that may hold a key near x. */
  private around(x: number): [number, number] {
    const half = this.window / 2;
    return [clamp(Math.floor(x - half) - 1, 0, this.size), clamp(Math.ceil(x + half) + 1, 0, this.size)];
  }

  /** Number of keys below j*w: the delivery index where chunk j begins. */
  private chunkStart(j: number): number {
    const cached = this.starts.get(j);
    if (cached !== undefined) return cached;
    const sh = this.share;
    if (sh) {
      // Chunk j begins, and chunk j - 1 ends, at this index: another thread may know it already.
      const here = sh.store.peek(sh.epoch, sh.partition, j);
      if (here) return this.rememberStart(j, here.start);
      const before = sh.store.peek(sh.epoch, sh.partition, j - 1);
      if (before) return this.rememberStart(j, before.start + before.length);
    }
    const x = j * this.window;
    const [lo, hi] = this.around(x);
    let count = lo; // every position below lo has key < x
    for (let i = lo; i < hi; i++) if (this.key(i) < x) count++;
    return this.rememberStart(j, count);
  }

  private rememberStart(j: number, start: number): number {
    remember(this.starts, j, start, 64);
    return start;
  }

  /** The samples whose keys fall in [jw, (j+1)w), in key order (as local offsets). */
  private chunk(j: number): ChunkView {
    const cached = this.chunks.get(j);
    if (cached) return cached;
    const sh = this.share;
    if (!sh) return this.computeChunk(j);
    const claim = sh.store.claim(sh.epoch, sh.partition, j);
    if (claim.kind === 'hit') {
      const { start, offsets } = claim.chunk;
      this.rememberStart(j, start);
      this.rememberStart(j + 1, start + offsets.length);
      const dense = new DenseChunk(offsets);
      this.rememberChunk(j, dense);
      return dense;
    }
    if (claim.kind === 'none') return this.computeChunk(j);
    let offsets: Uint32Array | Float64Array;
    let chunk: ScannedChunk;
    try {
      chunk = this.computeChunk(j);
      offsets = chunk.materialize(this.size);
    } catch (err) {
      sh.store.abandon(claim);
      throw err;
    }
    sh.store.complete(claim, this.chunkStart(j), offsets);
    return chunk;
  }

  /** Computes chunk j (and remembers it, and where chunk j + 1 starts). */
  private computeChunk(j: number): ScannedChunk {
    const w = this.window;
    const x0 = j * w;
    const lo = this.around(x0)[0];
    const hi = this.around(x0 + w)[1];
    const runs = this.scanThrough(lo, hi);
    const chunk = this.spare ?? new ScannedChunk();
    this.spare = undefined;
    const grid = this.grid;
    const bucketLo = grid.coarse ? j : j * grid.perChunk;
    const bucketHi = grid.coarse ? j + 1 : (j + 1) * grid.perChunk;
    const pieceLo = hi > lo ? this.pieceOf(lo) : 0;
    const pieceHi = hi > lo ? this.pieceOf(hi - 1) : 0;
    // Below key 0 the subtraction k - x0 may round, so the grid bucket need not follow the sort
    // key there: one group, sorted whole (only chunk -1, a few keys).
    const single = grid.coarse || j < 0;
    const place = { x0, first: lo, span: hi - lo, pieceLo, pieceHi, bucketLo, bucketHi, single, fractionScale: this.fractionScale, indexScale: 2 ** this.indexBits };
    chunk.init(runs, place, this, this.scanKey.keyAt);
    const count = chunk.length;
    const known = this.starts.get(j + 1);
    const start = this.chunkStart(j);
    if (known !== undefined && known - start !== count) throw new GpufeedError(ErrorCodes.INTERNAL, `window shuffle chunk has ${count} keys, expected ${known - start}`);
    this.rememberStart(j + 1, start + count);
    this.rememberChunk(j, chunk);
    return chunk;
  }

  /**
   * The runs that together scanned positions [lo, hi) (and none outside the walk): the walk's, when
   * it reaches lo, extended by one run to hi; else a fresh walk from lo. Runs wholly below lo leave
   * the walk: a forward walk never needs them again.
   */
  private scanThrough(lo: number, hi: number): ScanRun[] {
    let walk = this.walk;
    const from = walk.length > 0 ? (walk[0] as ScanRun).from : 0;
    const to = walk.length > 0 ? (walk[walk.length - 1] as ScanRun).to : 0;
    if (walk.length === 0 || from > lo || to < lo) {
      for (const run of walk) this.releaseRun(run);
      walk = [];
      if (hi > lo) walk.push(this.newRun(lo, hi));
    } else if (to < hi) {
      walk.push(this.newRun(to, hi));
    }
    const kept: ScanRun[] = [];
    for (const run of walk) {
      if (run.to <= lo) this.releaseRun(run);
      else kept.push(run);
    }
    this.walk = kept;
    return kept.filter((run) => run.from < hi);
  }

  private newRun(from: number, to: number): ScanRun {
    const run = this.freeRuns.pop() ?? new ScanRun();
    scanRun(run, this.grid, this.scanKey, from, to);
    run.refs = 1; // the walk's
    return run;
  }

  private releaseRun(run: ScanRun): void {
    if (--run.refs === 0 && this.freeRuns.length < 4) this.freeRuns.push(run);
  }

  /** Keeps two chunks (deliveries walk forward, and a step may straddle a chunk edge); an evicted one lends its buffers to the next. */
  private rememberChunk(j: number, chunk: ChunkView): void {
    if (this.chunks.size >= 2) {
      const oldest = this.chunks.keys().next();
      if (!oldest.done) {
        const evicted = this.chunks.get(oldest.value);
        this.chunks.delete(oldest.value);
        this.lastChunk = undefined;
        if (evicted instanceof ScannedChunk) {
          for (const run of evicted.release()) if (run.refs === 0 && this.freeRuns.length < 4) this.freeRuns.push(run);
          this.spare = evicted;
        }
      }
    }
    this.chunks.set(j, chunk);
  }

  /** The piece holding position i of the shuffled-shard sequence. */
  private pieceOf(i: number): number {
    const cum = this.pieceCumulative;
    let lo = 0;
    let hi = this.pieceStart.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((cum[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** Smallest b with 2^b > n. */
function bitsFor(n: number): number {
  let b = 0;
  while (2 ** b <= n) b++;
  return b;
}

/** A tiny insertion-ordered cache: the plan walks forward, so recent entries are the useful ones. */
function remember<V>(map: Map<number, V>, key: number, value: V, capacity: number): void {
  if (map.size >= capacity) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
