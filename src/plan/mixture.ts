// The order of a weighted mixture's epoch: which (global sample id, stream) every position of every
// global batch delivers, and this rank's share of it. Pure, computed per step on demand.
//
// Stream k's epoch items are positions [e n_k, (e+1) n_k) of its cycle (stream-cycle.ts), cut into
// one contiguous range per canonical partition (mixture-layout.ts), each shuffled on its own with
// the single-dataset algorithms (shuffle.ts), keyed by (seed, epoch, stream, partition). A rank
// takes positions [rB, (r+1)B) of each global batch, so its samples of stream k come from its own
// partitions of stream k: locality per stream, and the same global batches for any world size.
import { invalidOption } from '../errors.js';
import { Interleave, type MixtureLayout, mixtureLayout, type StepSegment, stepSegments } from './mixture-layout.js';
import { type MixtureSpecOptions, type MixtureStream, type ResolvedStream, resolveMixture } from './mixture-spec.js';
import { type OrderOptions, resolveOrderOptions } from './options.js';
import { epochKey } from './order.js';
import type { RankEpochPlan } from './order.js';
import { partitionOfPosition, shareStart } from './partition.js';
import { deriveKey } from './prng.js';
import type { SharedWindows } from './shared-windows.js';
import { partitionOrder, type PartitionOrder } from './shuffle.js';
import { EpochItemPieces, StreamCycle, streamCycleKey } from './stream-cycle.js';
import type { World } from './world.js';

/** Rows of a batch: global sample ids and, per row, the index of the stream it came from. */
export interface MixtureBatch {
  ids: number[];
  streams: number[];
}

const ALGO_TAG = { none: 0, window: 1, naive: 2 } as const;

interface StreamPartition {
  /** First epoch item of the range. */
  start: number;
  /** Real items (delivery indices at or past it are padding). */
  size: number;
  order: PartitionOrder;
}

/** One epoch of a mixture, world-size independent: any positions of any global batch. */
export class MixtureEpoch {
  readonly layout: MixtureLayout;
  readonly steps: number;
  readonly segments: readonly StepSegment[];
  readonly streams: readonly ResolvedStream[];
  /** Samples delivered beyond the streams' counts (pad), over all ranks. */
  readonly paddedSamples: number;
  /** Chosen samples not delivered (dropLast), over all ranks. */
  readonly droppedSamples: number;
  private readonly cycles: StreamCycle[];
  private readonly pieces: Array<EpochItemPieces | undefined>;
  private readonly interleaves = new Map<number, Interleave>();
  private readonly countCache = new Map<number, number[]>();
  private readonly parts = new Map<number, StreamPartition>();

  constructor(
    streams: readonly ResolvedStream[],
    private readonly options: OrderOptions,
    globalBatch: number,
    readonly epoch: number,
    private readonly sharedWindows?: SharedWindows,
  ) {
    this.streams = streams;
    const partitions = options.shuffle === 'naive' ? 1 : (options.partitions as number);
    this.layout = mixtureLayout(streams.map((s) => s.perEpoch), globalBatch, partitions, options.dropLast);
    this.steps = this.layout.steps;
    this.segments = stepSegments(this.layout);
    this.paddedSamples = options.pad ? this.layout.lastPad.reduce((a, b) => a + b, 0) : 0;
    this.droppedSamples = options.dropLast ? this.layout.lastReal.reduce((a, b) => a + b, 0) : 0;
    this.cycles = streams.map((s, k) => new StreamCycle(s.shards, options.shuffle, streamCycleKey(options.seed, ALGO_TAG[options.shuffle], k)));
    this.pieces = streams.map(() => undefined);
  }

  /** Rows of positions [from, to) of global batch `step`, in position order (padding left out unless pad). */
  positions(step: number, from: number, to: number): MixtureBatch {
    if (!Number.isSafeInteger(step) || step < 0 || step >= this.steps) {
      throw invalidOption('step', `must be an integer in [0, ${this.steps}), got ${step}`);
    }
    const G = this.layout.globalBatch;
    if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && 0 <= from && from <= to && to <= G)) {
      throw invalidOption('positions', `must be a range inside [0, ${G}], got [${from}, ${to})`);
    }
    const out: MixtureBatch = { ids: [], streams: [] };
    if (from === to) return out;
    const seg = this.segmentOf(step);
    const il = this.interleave(seg);
    const seen = il.countsBefore(from);
    const base = this.layout.base;
    for (let j = from, p = partitionOfPosition(base, from); j < to; p++) {
      const runEnd = Math.min(to, shareStart(base, p + 1));
      const atStart = this.countsAt(seg, shareStart(base, p));
      const before = this.slotsBeforeStep(p, step);
      for (; j < runEnd; j++) {
        const k = il.streamAt[j] as number;
        const t = (before[k] as number) + (seen[k] as number) - (atStart[k] as number);
        seen[k]!++;
        const part = this.partition(k, p);
        if (t >= part.size && !this.options.pad) continue;
        out.ids.push(this.sampleOf(k, part, t));
        out.streams.push(k);
      }
    }
    return out;
  }

  /** Partition p's rows of global batch `step` (world-size independent). */
  partitionBatch(p: number, step: number): MixtureBatch {
    const P = this.layout.partitions;
    if (!Number.isSafeInteger(p) || p < 0 || p >= P) throw invalidOption('partition', `must be an integer in [0, ${P}), got ${p}`);
    return this.positions(step, shareStart(this.layout.base, p), shareStart(this.layout.base, p + 1));
  }

  /**
   * Per stream, its real samples at positions [from, to) of every global batch over the epoch
   * (world-size independent; the same every epoch): full steps from their compositions, the last
   * (partial) step's real rows counted.
   */
  rangeStreamCounts(from: number, to: number): number[] {
    const out = this.streams.map(() => 0);
    for (const seg of this.segments) {
      if (this.layout.hasLast && seg.from === this.layout.fullSteps) continue;
      const il = this.interleave(seg);
      const a = il.countsBefore(from);
      const b = il.countsBefore(to);
      for (let k = 0; k < out.length; k++) out[k]! += (seg.to - seg.from) * ((b[k] as number) - (a[k] as number));
    }
    if (this.layout.hasLast) {
      const last = this.positions(this.layout.fullSteps, from, to);
      for (const k of last.streams) out[k]! += 1;
    }
    return out;
  }

  private sampleOf(k: number, part: StreamPartition, t: number): number {
    const stream = this.streams[k] as ResolvedStream;
    let item: number;
    if (t < part.size) item = part.start + part.order.at(t);
    else if (part.size > 0) item = part.start + part.order.at((t - part.size) % part.size);
    else item = (part.start + t) % stream.perEpoch; // a partition with only padding pads from the stream at large
    return stream.offset + (this.cycles[k] as StreamCycle).sampleAt(this.epoch * stream.perEpoch + item);
  }

  private segmentOf(step: number): StepSegment {
    for (const s of this.segments) if (step >= s.from && step < s.to) return s;
    throw invalidOption('step', `no segment holds step ${step}`);
  }

  private interleave(seg: StepSegment): Interleave {
    let il = this.interleaves.get(seg.id);
    if (!il) {
      il = new Interleave(seg.composition);
      // A rank walks the steps forward: the current segment's and the last step's are the useful ones.
      if (this.interleaves.size >= 3) this.interleaves.delete(this.interleaves.keys().next().value as number);
      this.interleaves.set(seg.id, il);
    }
    return il;
  }

  /** Per-stream counts of positions [0, x) in a step of segment `seg`. */
  private countsAt(seg: StepSegment, x: number): number[] {
    const key = seg.id * (this.layout.globalBatch + 1) + x;
    let c = this.countCache.get(key);
    if (!c) {
      c = this.interleave(seg).countsBefore(x);
      this.countCache.set(key, c);
    }
    return c;
  }

  /** Per stream: its slots in partition p in steps [0, step). */
  private slotsBeforeStep(p: number, step: number): number[] {
    const base = this.layout.base;
    const lo = shareStart(base, p);
    const hi = shareStart(base, p + 1);
    const out = this.streams.map(() => 0);
    for (const seg of this.segments) {
      const n = Math.min(step, seg.to) - seg.from;
      if (n <= 0) break;
      const a = this.countsAt(seg, lo);
      const b = this.countsAt(seg, hi);
      for (let k = 0; k < out.length; k++) out[k]! += n * ((b[k] as number) - (a[k] as number));
    }
    return out;
  }

  /** First real epoch item of stream k in partitions [0, p) (p may be P: the stream's real total). */
  private realStart(k: number, p: number): number {
    const x = shareStart(this.layout.base, p);
    let slots = 0;
    let lastAt = 0;
    for (const seg of this.segments) {
      const c = this.countsAt(seg, x)[k] as number;
      slots += (seg.to - seg.from) * c;
      lastAt = c;
    }
    if (!this.layout.hasLast) return slots;
    const pad = this.layout.lastPad[k] as number;
    const inLast = (this.layout.lastReal[k] as number) + pad;
    return slots - (inLast > 0 ? Math.floor((pad * lastAt) / inLast) : 0);
  }

  /** Per stream, the partition partition() gave last (a batch's rows of a stream mostly share one): no map lookup per row. */
  private readonly lastPartition: number[] = [];
  private readonly lastPart: (StreamPartition | undefined)[] = [];

  private partition(k: number, p: number): StreamPartition {
    if (this.lastPartition[k] === p) {
      const known = this.lastPart[k];
      if (known !== undefined) return known;
    }
    const part = this.partitionOf(k, p);
    this.lastPartition[k] = p;
    this.lastPart[k] = part;
    return part;
  }

  private partitionOf(k: number, p: number): StreamPartition {
    const key = p * this.streams.length + k;
    let part = this.parts.get(key);
    if (!part) {
      const start = this.realStart(k, p);
      const size = this.realStart(k, p + 1) - start;
      const stream = this.streams[k] as ResolvedStream;
      let pieces = this.pieces[k];
      if (!pieces && this.options.shuffle === 'window') {
        pieces = new EpochItemPieces(this.cycles[k] as StreamCycle, this.epoch * stream.perEpoch, stream.perEpoch);
        this.pieces[k] = pieces;
      }
      const keyed = deriveKey(epochKey(this.options, this.epoch), 0x6d697874, k, p);
      const share = this.sharedWindows && { store: this.sharedWindows, epoch: this.epoch, partition: key };
      const order = partitionOrder(this.options.shuffle, { start, size }, pieces as EpochItemPieces, keyed, this.options.shuffleWindow, share);
      part = { start, size, order };
      this.parts.set(key, part);
    }
    return part;
  }
}

export interface MixtureRankEpochPlan extends RankEpochPlan {
  readonly rank: number;
  readonly batchSize: number;
  readonly mixture: MixtureEpoch;
  readonly paddedSamples: number;
  readonly droppedSamples: number;
  /** This rank's rows of batch `step`: global ids and their streams. */
  batch(step: number): MixtureBatch;
}

/** The resolved streams and options of a mixture, for planning and for resume states. */
export function resolveMixturePlan(
  streams: readonly MixtureStream[],
  world: World,
  options: OrderOptions,
  spec?: MixtureSpecOptions,
): { streams: ResolvedStream[]; options: OrderOptions } {
  return { streams: resolveMixture(streams, spec), options: resolveOrderOptions(options, world) };
}

/** One rank's epoch of a mixture: positions [rank B, (rank+1) B) of every global batch. */
export function planMixtureRankEpoch(
  streams: readonly MixtureStream[] | readonly ResolvedStream[],
  world: World,
  options: OrderOptions,
  epoch: number,
  spec?: MixtureSpecOptions,
  sharedWindows?: SharedWindows,
): MixtureRankEpochPlan {
  const opts = resolveOrderOptions(options, world);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalidOption('epoch', `must be a non-negative integer, got ${epoch}`);
  if (epoch >= opts.epochs) throw invalidOption('epoch', `must be below epochs (${opts.epochs}), got ${epoch}`);
  const resolved = isResolved(streams) ? streams : resolveMixture(streams, spec);
  const mixture = new MixtureEpoch(resolved, opts, opts.batchSize * world.worldSize, epoch, sharedWindows);
  const first = world.rank * opts.batchSize;
  const last = first + opts.batchSize;
  return {
    epoch,
    steps: mixture.steps,
    rank: world.rank,
    batchSize: opts.batchSize,
    mixture,
    paddedSamples: mixture.paddedSamples,
    droppedSamples: mixture.droppedSamples,
    batch: (step) => mixture.positions(step, first, last),
    batchIds: (step) => mixture.positions(step, first, last).ids,
  };
}

function isResolved(streams: readonly MixtureStream[] | readonly ResolvedStream[]): streams is readonly ResolvedStream[] {
  return streams.length > 0 && (streams as readonly ResolvedStream[]).every((s) => typeof (s as ResolvedStream).perEpoch === 'number' && typeof (s as ResolvedStream).offset === 'number');
}
