// Arrow columns whose stored layout differs from the slot's, converted after their bytes are read
// (a deferred step of load-unit.ts, or from a decompressed body in compressed-batch.ts), so the
// plain types' copy path stays as it is:
// - Decimal32/64/128/256 -> float64 (formats/decimal.ts: unscaled / 10^scale, as prep does);
// - FixedSizeBinary(n) -> binary (offsets every n bytes, the values as they are).
import { Type, type DataType } from 'apache-arrow';
import { arrowDecimalsToFloat64 } from '../decimal.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong, type ColumnRegion } from '../../pipeline/batch-layout.js';
import type { SlotTarget } from './load-unit.js';
import { slotOffsets as slotOffsetsOf } from '../offset-runs.js';

export type ArrowConversion =
  | { kind: 'decimal'; width: number; scale: number }
  | { kind: 'fixedBinary'; width: number };

/** How a column of this stored type is converted, or undefined when its bytes are copied as they are. */
export function arrowConversion(type: DataType): ArrowConversion | undefined {
  if (type.typeId === Type.Decimal) {
    const t = type as unknown as { bitWidth: number; scale: number };
    return { kind: 'decimal', width: t.bitWidth / 8, scale: t.scale };
  }
  if (type.typeId === Type.FixedSizeBinary) return { kind: 'fixedBinary', width: (type as unknown as { byteWidth: number }).byteWidth };
  return undefined;
}

/** Whether the slot region is what the conversion yields (the manifest agrees with the file). */
export function conversionFits(c: ArrowConversion, region: ColumnRegion): boolean {
  return c.kind === 'decimal' ? region.kind === 'scalar' && region.dtype === 'float64' : region.kind === 'bytes' && region.dtype === 'binary';
}

/** Bytes a run of `count` rows occupies in the column's data buffer (buffer 1 for both kinds). */
export function storedBytes(c: ArrowConversion, count: number): number {
  return count * c.width;
}

/**
 * Writes `count` rows, whose stored bytes start at src[srcStart], into the slot at row `slotRow`;
 * a variable-length target's values cursor advances as for any bytes column.
 */
export function convertRows(c: ArrowConversion, src: Uint8Array, srcStart: number, count: number, target: SlotTarget, slotRow: number, shard: string): number {
  const region = target.region;
  if (c.kind === 'decimal') {
    arrowDecimalsToFloat64(src, srcStart, count, c.width, c.scale, target.bytes, region.valuesOffset + slotRow * 8);
    return count * c.width;
  }
  const elems = count * c.width;
  if (target.cursor + elems > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, shard);
  const slotOffsets = slotOffsetsOf(target);
  for (let i = 0; i <= count; i++) slotOffsets[slotRow + i] = target.cursor + i * c.width;
  // Values that do not fit are only counted: the batch is decoded again into a one-off slot of
  // that size (oversize-batch.ts).
  if (target.cursor + elems <= region.valuesBytes) target.bytes.set(src.subarray(srcStart, srcStart + elems), region.valuesOffset + target.cursor);
  target.cursor += elems;
  return elems;
}
