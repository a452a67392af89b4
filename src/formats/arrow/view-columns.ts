// Arrow Utf8View / BinaryView columns (Polars' default strings) read in place into the slot's
// offsets + values layout. Each row is a 16-byte view: int32 length, then the bytes themselves
// when length <= 12, else a 4-byte prefix, the index of a variadic data buffer and the offset in
// it. The record batch says how many data buffers each view column has (variadicBufferCounts, one
// entry per view field in depth-first schema order), so the buffers of every column after a view
// column shift from batch to batch.
import { Type, type DataType } from 'apache-arrow';
import type { RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong } from '../../pipeline/batch-layout.js';
import type { SlotTarget } from './load-unit.js';
import { slotOffsets as slotOffsetsOf } from '../offset-runs.js';

export const VIEW_BYTES = 16;
const INLINE = 12;

export function isViewType(type: DataType): boolean {
  return type.typeId === Type.Utf8View || type.typeId === Type.BinaryView;
}

/** View-typed fields in `type` and its children (depth first). */
export function viewFieldCount(type: DataType): number {
  let n = isViewType(type) ? 1 : 0;
  for (const c of type.children ?? []) n += viewFieldCount(c.type);
  return n;
}

/** Extra (variadic) buffers the first `views` view fields of the schema have in this record batch. */
export function variadicBuffersBefore(header: RecordBatchHeader, views: number, where: string): number {
  const counts = header.variadicBufferCounts;
  if (counts.length < views) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: record batch lists ${counts.length} view buffer counts, the schema has more view columns`, {});
  let n = 0;
  for (let i = 0; i < views; i++) n += counts[i]!;
  return n;
}

/** Where a long value's bytes are: data buffer `buffer` (0-based among the column's), at `offset`. */
export interface LongValue {
  buffer: number;
  offset: number;
  length: number;
  /** Byte of the slot's values region to put them at. */
  to: number;
}

/**
 * Writes the offsets of `count` rows (views at views[viewsAt..]) and their inline bytes into the
 * slot at row `slotRow`; long values are handed to `copyLong` (a ranged read, or a copy from a
 * decompressed buffer) when they fit. `bufferLength(b)` is the length of the column's data buffer
 * b, undefined when there is none. Returns the bytes the rows hold.
 */
export function copyViewRows(
  views: Uint8Array, viewsAt: number, count: number, target: SlotTarget, slotRow: number, shard: string,
  bufferLength: (b: number) => number | undefined, copyLong: (v: LongValue) => void,
): number {
  const region = target.region;
  const dv = new DataView(views.buffer, views.byteOffset + viewsAt, count * VIEW_BYTES);
  const slotOffsets = slotOffsetsOf(target);
  const bad = (why: string) => new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard}: column ${region.name}: ${why}`, { shard, column: region.name });
  let total = 0;
  for (let i = 0; i < count; i++) {
    const at = i * VIEW_BYTES;
    const length = dv.getInt32(at, true);
    if (length < 0) throw bad(`view of row ${i} has length ${length}`);
    if (target.cursor + length > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, shard);
    slotOffsets[slotRow + i] = target.cursor;
    // Values that do not fit are only counted: the batch is decoded again into a one-off slot of
    // that size (oversize-batch.ts).
    const fits = target.cursor + length <= region.valuesBytes;
    if (length <= INLINE) {
      if (fits) target.bytes.set(views.subarray(viewsAt + at + 4, viewsAt + at + 4 + length), region.valuesOffset + target.cursor);
    } else {
      const buffer = dv.getInt32(at + 8, true);
      const offset = dv.getInt32(at + 12, true);
      const have = bufferLength(buffer);
      if (have === undefined || offset < 0 || offset + length > have) throw bad(`view of row ${i} points outside its data buffers (buffer ${buffer}, bytes ${offset}..${offset + length})`);
      if (fits) copyLong({ buffer, offset, length, to: region.valuesOffset + target.cursor });
    }
    target.cursor += length;
    total += length;
  }
  slotOffsets[slotRow + count] = target.cursor;
  return total;
}
