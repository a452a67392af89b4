// Order options: what decides the sample order, validated once with messages that name the option.
import { invalidOption } from '../errors.js';
import type { World } from './world.js';

/**
 * - `none`: manifest order within each partition (the PyTorch DataLoader's default is no shuffle);
 * - `window`: shards shuffled within a partition, then each sample displaced within a window of
 *   `shuffleWindow` samples (MosaicML py1e-like); cache need grows with the window, not the dataset;
 * - `naive`: one full permutation of the whole epoch; the quality reference, with no locality.
 */
export type ShuffleAlgo = 'none' | 'window' | 'naive';

export const SHUFFLE_ALGOS: readonly ShuffleAlgo[] = ['none', 'window', 'naive'];

export interface OrderOptions {
  /** Samples per batch, per rank. The global batch is batchSize * worldSize. */
  batchSize: number;
  /** Non-negative integer seed; every epoch derives its own order from (seed, epoch). */
  seed: number;
  shuffle: ShuffleAlgo;
  /** Window of the `window` shuffle, in samples. */
  shuffleWindow: number;
  /**
   * Canonical partitions (MosaicML's num_canonical_nodes): contiguous slices of the dataset, each
   * shuffled on its own. Must divide or be a multiple of worldSize, and be at most the global batch
   * size. Default: worldSize, i.e. each rank reads only its own slice. Keep it fixed (say 64) to
   * resume with another world size.
   */
  partitions?: number;
  /**
   * How an epoch that does not fill whole global batches ends. Every rank always gets the same
   * number of steps; the default (both false) delivers each sample exactly once, so the last step's
   * batches hold fewer than batchSize rows (some ranks may get fewer than others, or none).
   * dropLast: drop the epoch's last (N mod globalBatch) samples of the epoch order (a different set
   * each shuffled epoch); every batch is full.
   */
  dropLast: boolean;
  /**
   * pad: fill the last step by repeating samples from the start of each partition's epoch order,
   * so every batch is full and every sample is seen (a few twice). Not with dropLast.
   */
  pad: boolean;
  /** Number of epochs; Infinity for an endless stream. */
  epochs: number;
}

// 64 Ki samples: ~65 live shards of 1,000 rows per partition; see benchmarks/plan-quality.ts.
export const DEFAULT_SHUFFLE_WINDOW = 1 << 16;
/** Above this the window's in-memory sort keys would lose the precision they need. */
export const MAX_SHUFFLE_WINDOW = 1 << 24;
/** Keeps products of batch positions exact in doubles (G^2 < 2^53). */
export const MAX_GLOBAL_BATCH = 1 << 26;

/** Fills defaults and validates; throws GPUFEED_INVALID_OPTION naming the option. */
export function resolveOrderOptions(partial: Partial<OrderOptions>, world: World): OrderOptions {
  const batchSize = partial.batchSize;
  if (batchSize === undefined) throw invalidOption('batchSize', 'is required');
  positiveInt('batchSize', batchSize);
  const globalBatch = batchSize * world.worldSize;
  if (globalBatch > MAX_GLOBAL_BATCH) {
    throw invalidOption('batchSize', `batchSize x worldSize = ${globalBatch} exceeds ${MAX_GLOBAL_BATCH}`);
  }

  const seed = partial.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw invalidOption('seed', `must be a non-negative safe integer, got ${String(seed)}`);
  }

  const shuffle = partial.shuffle ?? 'none';
  if (!SHUFFLE_ALGOS.includes(shuffle)) {
    throw invalidOption('shuffle', `must be one of ${SHUFFLE_ALGOS.join(', ')}, got ${JSON.stringify(shuffle)}`);
  }

  const shuffleWindow = partial.shuffleWindow ?? DEFAULT_SHUFFLE_WINDOW;
  positiveInt('shuffleWindow', shuffleWindow);
  if (shuffleWindow > MAX_SHUFFLE_WINDOW) {
    throw invalidOption('shuffleWindow', `must be at most ${MAX_SHUFFLE_WINDOW}, got ${shuffleWindow}`);
  }

  const partitions = partial.partitions ?? world.worldSize;
  positiveInt('partitions', partitions);
  if (partitions % world.worldSize !== 0 && world.worldSize % partitions !== 0) {
    throw invalidOption('partitions', `must divide or be a multiple of the world size ${world.worldSize}, got ${partitions}`);
  }
  if (partitions > globalBatch) {
    throw invalidOption(
      'partitions',
      `must be at most the global batch size (batchSize ${batchSize} x worldSize ${world.worldSize} = ${globalBatch}), got ${partitions}: every partition contributes to every global batch`,
    );
  }

  const dropLast = partial.dropLast ?? false;
  if (typeof dropLast !== 'boolean') throw invalidOption('dropLast', `must be a boolean, got ${String(dropLast)}`);

  const pad = partial.pad ?? false;
  if (typeof pad !== 'boolean') throw invalidOption('pad', `must be a boolean, got ${String(pad)}`);
  if (pad && dropLast) throw invalidOption('pad', 'cannot be combined with dropLast: pad fills the last step, dropLast drops it');

  const epochs = partial.epochs ?? 1;
  if (epochs !== Infinity) positiveInt('epochs', epochs);

  return { batchSize, seed, shuffle, shuffleWindow, partitions, dropLast, pad, epochs };
}

function positiveInt(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidOption(name, `must be a positive integer, got ${String(value)}`);
  }
}
