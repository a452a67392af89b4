// Offsets of a run of consecutive variable-length rows (lists, strings, binary), rebased into a
// batch slot. Consecutive rows' values are contiguous in Arrow's layout, so a run's values are one
// copy; only its offsets are touched one by one, here, in one loop over typed arrays (no DataView,
// no object or closure per row), checked as they go: offsets out of order would cut the
// consumer's rows from the wrong places.
import type { SlotTarget } from './arrow/load-unit.js';

/**
 * The offsets region of a variable-length target as int32 (it sits right before the values
 * region, batch-layout.ts): one view per slot fill, kept on the target, not one per run.
 */
export function slotOffsets(target: SlotTarget): Int32Array {
  const region = target.region;
  return (target.offsets ??= new Int32Array(target.bytes.buffer, target.bytes.byteOffset + region.offsetsOffset, (region.valuesOffset - region.offsetsOffset) >> 2));
}

/** Returned for offsets that decrease (or start below 0): the caller names the shard and column. */
export const BAD_OFFSETS = -1;

/**
 * Writes `dst[dstAt + i] = cursor + src[at + i] - src[at]` for i in [0, count] (count + 1 offsets:
 * the run's rows and the end of its last one) and returns the run's elements, src[at + count] -
 * src[at]; BAD_OFFSETS when the offsets decrease or the first is negative (dst may then hold some
 * of the run's offsets). The caller checks that cursor plus the result fits its offsets' width.
 */
export function rebaseOffsets32(src: Int32Array, at: number, count: number, dst: Int32Array, dstAt: number, cursor: number): number {
  const start = src[at]!;
  if (start < 0) return BAD_OFFSETS;
  const shift = cursor - start;
  let previous = start;
  for (let i = 0; i <= count; i++) {
    const o = src[at + i]!;
    if (o < previous) return BAD_OFFSETS;
    previous = o;
    dst[dstAt + i] = o + shift;
  }
  return previous - start;
}

/**
 * rebaseOffsets32 for 64-bit offsets (large_list, large_string, large_binary): the same checks,
 * and the elements must stay below 2^31 (a batch slot's offsets are int32).
 */
export function rebaseOffsets64(src: BigInt64Array, at: number, count: number, dst: Int32Array, dstAt: number, cursor: number): number {
  const first = src[at]!;
  const last = src[at + count]!;
  if (first < 0n || last < first || last - first > 0x7fffffffn) return BAD_OFFSETS;
  let previous = first;
  for (let i = 0; i <= count; i++) {
    const o = src[at + i]!;
    if (o < previous) return BAD_OFFSETS;
    previous = o;
    // Below 2^31 past the first (checked above): exact as a number.
    dst[dstAt + i] = cursor + Number(o - first);
  }
  return Number(last - first);
}
