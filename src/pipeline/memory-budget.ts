// How much pinned memory the batch ring may take, and how it is split. `memoryBytes` caps all of
// it: slots x slot size, plus the one-off slots of batches whose variable-length rows do not fit a
// ring slot (oversize-batch.ts). Variable-length regions are sized from typical rows, not from the
// largest row of the dataset: one 50 MiB row among small ones must not make every slot
// batchSize x 50 MiB. Fixed-width columns always get exactly what a batch needs.
import { totalmem } from 'node:os';
import { invalidOption } from '../errors.js';
import type { ColumnSpec, ManifestV1 } from '../dataset/types.js';
import { computeBatchLayout, varRegionNeeds, type BatchLayout } from './batch-layout.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Default memoryBytes: a quarter of the machine's memory, within these bounds. */
export const DEFAULT_MEMORY_FRACTION = 0.25;
export const MIN_DEFAULT_MEMORY_BYTES = 256 * MiB;
export const MAX_DEFAULT_MEMORY_BYTES = 32 * GiB;

/**
 * When variable-length rows would need more, the slots together get at most this share of
 * memoryBytes; the rest is left for one-off slots, so an oversize batch always has room.
 */
export const SLOT_SHARE = 0.75;

/**
 * Room per row a variable-length region gets at least (when the largest row needs that much):
 * twice the dataset's mean row (a batch of rows that vary around the mean rarely needs more), and
 * never less than this.
 */
export const VAR_ROW_FLOOR_BYTES = 64 * 1024;
export const VAR_MEAN_ROW_FACTOR = 2;

export function defaultMemoryBytes(total = totalmem()): number {
  return Math.min(MAX_DEFAULT_MEMORY_BYTES, Math.max(MIN_DEFAULT_MEMORY_BYTES, Math.floor(total * DEFAULT_MEMORY_FRACTION)));
}

export function resolveMemoryBytes(v: number | undefined): number {
  if (v === undefined) return defaultMemoryBytes();
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw invalidOption('memoryBytes', `must be a positive integer number of bytes, got ${String(v)}`);
  return v;
}

export interface SlotMemoryPlan {
  /** The layout of every ring slot. */
  layout: BatchLayout;
  memoryBytes: number;
  /** slots x layout.slotBytes. */
  ringBytes: number;
  /** memoryBytes - ringBytes: what one-off slots may take at once. */
  oneOffBytes: number;
  /** True when some variable-length region is smaller than the dataset's largest rows need. */
  capped: boolean;
}

export interface SlotMemoryInput {
  manifest: ManifestV1;
  columns: readonly ColumnSpec[];
  batchSize: number;
  slots: number;
  memoryBytes: number;
  /** varRowBytes: the row size assumed where the manifest has no maxRowBytes. */
  fallbackRowBytes?: number;
  /**
   * Size variable-length regions for the largest rows, so no batch ever needs a one-off slot (a
   * consumer in another process maps only the ring's slabs); INVALID_OPTION when that does not fit.
   */
  largestRows?: boolean;
}

/** Mean bytes of a row in the dataset's files (all columns, as stored). */
function meanRowBytes(manifest: ManifestV1): number {
  let rows = 0;
  let bytes = 0;
  for (const s of manifest.shards) {
    rows += s.rows;
    bytes += s.bytes;
  }
  return rows > 0 ? bytes / rows : 0;
}

export function planSlotMemory(input: SlotMemoryInput): SlotMemoryPlan {
  const { manifest, columns, batchSize, slots, memoryBytes } = input;
  const needs = varRegionNeeds(manifest, columns, batchSize, input.fallbackRowBytes);
  const names = Object.keys(needs);
  // Every slot needs at least its fixed-width columns, offsets and validity, and one element per
  // row of each variable-length column.
  const smallest = computeBatchLayout(manifest, columns, batchSize, input.fallbackRowBytes, Object.fromEntries(names.map((n) => [n, 0])));
  if (slots * smallest.slotBytes > memoryBytes) {
    throw invalidOption(
      'memoryBytes',
      `slots x slot size = ${slots} x ${smallest.slotBytes} bytes (batchSize ${batchSize}) = ${slots * smallest.slotBytes} bytes exceeds memoryBytes ${memoryBytes}; raise memoryBytes or lower slots or batchSize`,
      { slots, batchSize, slotBytes: smallest.slotBytes, memoryBytes },
    );
  }
  let varBytes = needs;
  let capped = false;
  if (input.largestRows) {
    const exact = computeBatchLayout(manifest, columns, batchSize, input.fallbackRowBytes, needs);
    if (slots * exact.slotBytes > memoryBytes) {
      throw invalidOption(
        'memoryBytes',
        `slots that hold the largest rows (a consumer in another process needs them) take slots x slot size = ${slots} x ${exact.slotBytes} bytes (batchSize ${batchSize}) = ${slots * exact.slotBytes} bytes, more than memoryBytes ${memoryBytes}; raise memoryBytes or lower slots or batchSize`,
        { slots, batchSize, slotBytes: exact.slotBytes, memoryBytes },
      );
    }
    return { layout: exact, memoryBytes, ringBytes: slots * exact.slotBytes, oneOffBytes: memoryBytes - slots * exact.slotBytes, capped: false };
  }
  if (names.length > 0) {
    // Room for typical rows, a few times over; the largest rows only where they are small.
    const perRow = Math.max(VAR_ROW_FLOOR_BYTES, Math.ceil(VAR_MEAN_ROW_FACTOR * meanRowBytes(manifest)));
    varBytes = Object.fromEntries(names.map((n) => [n, Math.min(needs[n]!, batchSize * perRow)]));
    // And the slots within their share of the budget (at least what they cannot do without).
    const fixedBytes = smallest.slotBytes;
    const perSlot = Math.max(fixedBytes, Math.floor((memoryBytes * SLOT_SHARE) / slots));
    const room = perSlot - fixedBytes;
    const wanted = names.reduce((a, n) => a + varBytes[n]!, 0);
    if (wanted > room) {
      // Shrink every region by the same factor, in whole 64-byte units (alignment may take the rest).
      const scale = room / wanted;
      varBytes = Object.fromEntries(names.map((n) => [n, Math.floor((varBytes[n]! * scale) / 64) * 64 - 64 * names.length]));
    }
    capped = names.some((n) => varBytes[n]! < needs[n]!);
  }
  let layout = computeBatchLayout(manifest, columns, batchSize, input.fallbackRowBytes, varBytes);
  // Alignment padding can push a shrunk slot past its share; never past the whole budget.
  if (slots * layout.slotBytes > memoryBytes) layout = smallest;
  const ringBytes = slots * layout.slotBytes;
  return { layout, memoryBytes, ringBytes, oneOffBytes: memoryBytes - ringBytes, capped };
}
