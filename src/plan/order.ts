// The order of one rank's epoch: which global sample ids it delivers at each step. A pure function
// of (shards, world, options, epoch); computed per step on demand, so a rank never holds more than
// its own partitions' current shuffle windows, whatever the dataset size.
import { invalidOption } from '../errors.js';
import { type OrderOptions, resolveOrderOptions, type ShuffleAlgo } from './options.js';
import {
  epochLayout,
  type EpochLayout,
  partitionOfPosition,
  partitionSize,
  partitionStart,
  shareSize,
  shareStart,
} from './partition.js';
import { deriveKey, type Key64, ROOT_KEY } from './prng.js';
import { type ShardSize, samplesToShards } from './samples.js';
import { partitionOrder, type PartitionOrder } from './shuffle.js';
import type { SharedWindows } from './shared-windows.js';
import type { World } from './world.js';

export interface RankEpochPlan {
  epoch: number;
  /** Batches in this epoch; the same on every rank. */
  steps: number;
  /**
   * Global sample ids of batch `step` (0 <= step < steps), in delivery order: batchSize of them,
   * except in the last step of an epoch without pad or dropLast, which holds only real samples.
   */
  batchIds(step: number): number[];
}

/** A RankEpochPlan with the facts behind it, for tools and tests. */
export interface RankEpochPlanDetail extends RankEpochPlan {
  readonly rank: number;
  readonly batchSize: number;
  readonly layout: EpochLayout;
  /** Samples delivered this epoch beyond the dataset (padding), over all ranks. */
  readonly paddedSamples: number;
  /** Samples of the dataset not delivered this epoch (dropLast), over all ranks. */
  readonly droppedSamples: number;
}

const ALGO_TAG: Record<ShuffleAlgo, number> = { none: 0, window: 1, naive: 2 };

/** The key every partition order of (seed, epoch, algorithm) derives from. */
export function epochKey(options: OrderOptions, epoch: number): Key64 {
  return deriveKey(ROOT_KEY, options.seed, epoch, ALGO_TAG[options.shuffle]);
}

/**
 * The global layout of an epoch: the same for every world size with the same global batch.
 * `naive` shuffles the whole epoch as one partition (it gives up locality by design).
 */
export function layoutFor(shards: readonly ShardSize[], world: World, options: OrderOptions): EpochLayout {
  const samples = samplesToShards(shards).totalRows;
  const globalBatch = options.batchSize * world.worldSize;
  const partitions = options.shuffle === 'naive' ? 1 : (options.partitions ?? world.worldSize);
  return epochLayout(samples, globalBatch, partitions, options.dropLast);
}

interface PartitionState {
  start: number;
  size: number;
  share: number;
  shareStart: number;
  order: PartitionOrder;
}

export function planRankEpoch(
  shards: readonly ShardSize[],
  world: World,
  options: OrderOptions,
  epoch: number,
  /** Window-shuffle chunks shared with other threads planning the same loader (shared-windows.ts). */
  sharedWindows?: SharedWindows,
): RankEpochPlanDetail {
  const opts = resolveOrderOptions(options, world);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw invalidOption('epoch', `must be a non-negative integer, got ${epoch}`);
  if (epoch >= opts.epochs) throw invalidOption('epoch', `must be below epochs (${opts.epochs}), got ${epoch}`);

  const locator = samplesToShards(shards);
  const layout = layoutFor(shards, world, opts);
  const key = epochKey(opts, epoch);
  const { batchSize } = opts;
  const { rank } = world;
  const partitions = new Map<number, PartitionState>();

  const partition = (p: number): PartitionState => {
    let state = partitions.get(p);
    if (!state) {
      const start = partitionStart(layout, p);
      const size = partitionSize(layout, p);
      const share = sharedWindows && { store: sharedWindows, epoch, partition: p };
      const order = partitionOrder(opts.shuffle, { start, size }, locator, deriveKey(key, p), opts.shuffleWindow, share);
      state = { start, size, share: shareSize(layout, p), shareStart: shareStart(layout, p), order };
      partitions.set(p, state);
    }
    return state;
  };

  // The sample a partition delivers t-th: its own order, then (padding) its order again from the
  // start. A partition owning no samples (only when N < G) pads from the dataset at large.
  const sampleAt = (part: PartitionState, t: number): number => {
    if (t < part.size) return part.start + part.order.at(t);
    if (part.size > 0) return part.start + part.order.at((t - part.size) % part.size);
    return (part.start + t) % layout.samples;
  };

  const delivered = layout.steps * layout.globalBatch;
  return {
    epoch,
    steps: layout.steps,
    rank,
    batchSize,
    layout,
    paddedSamples: opts.pad ? Math.max(0, delivered - layout.samples) : 0,
    droppedSamples: Math.max(0, layout.samples - delivered),
    batchIds(step: number): number[] {
      if (!Number.isSafeInteger(step) || step < 0 || step >= layout.steps) {
        throw invalidOption('step', `must be an integer in [0, ${layout.steps}), got ${step}`);
      }
      const ids: number[] = [];
      const first = rank * batchSize;
      const end = first + batchSize;
      // This rank's positions in the global batch, run by run of partitions. Positions past a
      // partition's samples are padding: repeated with pad, left out otherwise (dropLast never
      // reaches them).
      for (let j = first, p = partitionOfPosition(layout, first); j < end; p++) {
        const part = partition(p);
        const runEnd = Math.min(end, part.shareStart + part.share);
        const base = step * part.share - part.shareStart;
        for (; j < runEnd; j++) {
          const t = base + j;
          if (t >= part.size && !opts.pad) continue;
          ids.push(sampleAt(part, t));
        }
      }
      return ids;
    },
  };
}
