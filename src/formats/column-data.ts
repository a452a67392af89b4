// A shard's rows in columnar memory, the hand-off between prep's readers and the shard encoders.
// Plain typed arrays only, so a ShardColumns crosses to a worker thread by transfer, not copy.
import type { TypedArray } from '../dataset/dtypes.js';
import type { ColumnSpec } from '../dataset/types.js';

export interface ColumnData {
  /**
   * scalar/fixed/list: element values (bool as 0/1 bytes); bytes: the concatenated UTF-8/binary
   * values. Exactly the used length (no spare capacity).
   */
  values: TypedArray;
  /** list and bytes: rows + 1 offsets into `values` (in elements for list, bytes for bytes). */
  offsets?: Int32Array;
  /** Nullable columns with at least one null: one byte per row, 1 = valid. */
  validity?: Uint8Array;
  nullCount: number;
}

export interface ShardColumns {
  rows: number;
  /** Aligned with the schema. */
  columns: ColumnData[];
}

/** The buffers of a shard, for piscina's transfer list. */
export function transferablesOf(shard: ShardColumns): ArrayBuffer[] {
  const seen = new Set<ArrayBufferLike>();
  for (const c of shard.columns) {
    seen.add(c.values.buffer);
    if (c.offsets) seen.add(c.offsets.buffer);
    if (c.validity) seen.add(c.validity.buffer);
  }
  return [...seen].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && b.byteLength > 0);
}

/** Bytes one column holds in memory; drives shard and batch sizing. */
export function columnBytes(c: ColumnData): number {
  return c.values.byteLength + (c.offsets?.byteLength ?? 0) + (c.validity?.byteLength ?? 0);
}

/**
 * Per variable-length column, the most value bytes one row holds (ShardEntry.maxRowBytes): the
 * decoder sizes batch slots from it.
 */
export function maxRowBytesOf(schema: readonly ColumnSpec[], shard: ShardColumns): Record<string, number> | undefined {
  const out: Record<string, number> = {};
  let any = false;
  schema.forEach((col, i) => {
    const data = shard.columns[i];
    if (!data?.offsets || (col.kind !== 'list' && col.kind !== 'bytes')) return;
    let max = 0;
    const o = data.offsets;
    for (let r = 0; r < shard.rows; r++) {
      const n = o[r + 1]! - o[r]!;
      if (n > max) max = n;
    }
    out[col.name] = max * data.values.BYTES_PER_ELEMENT;
    any = true;
  });
  return any ? out : undefined;
}

/**
 * Per list column, the values each piece (consecutive runs of `pieceRows` rows) holds
 * (ShardEntry.pieceValues): read from the offsets, so no value is touched.
 */
export function pieceValuesOf(schema: readonly ColumnSpec[], shard: ShardColumns, pieceRows: readonly number[]): Record<string, number[]> | undefined {
  const out: Record<string, number[]> = {};
  let any = false;
  schema.forEach((col, i) => {
    const o = shard.columns[i]?.offsets;
    if (!o || col.kind !== 'list') return;
    const counts: number[] = [];
    let row = 0;
    for (const n of pieceRows) {
      counts.push(o[row + n]! - o[row]!);
      row += n;
    }
    out[col.name] = counts;
    any = true;
  });
  return any ? out : undefined;
}

/** Rows [start, end) of a column, offsets rebased to 0. Views where possible, copies offsets. */
export function sliceColumn(col: ColumnSpec, data: ColumnData, start: number, end: number, perRow: number): ColumnData {
  const validity = data.validity?.subarray(start, end);
  let nullCount = 0;
  if (validity) for (let i = 0; i < validity.length; i++) if (!validity[i]) nullCount++;
  if (data.offsets) {
    const base = data.offsets[start]!;
    const offsets = new Int32Array(end - start + 1);
    for (let i = 0; i <= end - start; i++) offsets[i] = data.offsets[start + i]! - base;
    const values = data.values.subarray(base, data.offsets[end]!) as TypedArray;
    return { values, offsets, validity, nullCount };
  }
  const n = col.kind === 'fixed' ? perRow : 1;
  return { values: data.values.subarray(start * n, end * n) as TypedArray, validity, nullCount };
}
