// Where each column of a batch lives inside one slot (one slab). Computed once per loader from the
// schema, the batch size and the largest row of every variable-length column, so a decode worker
// can write any batch without growing anything. The same layout is what the bridge describes to
// another process, so it is plain data.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { DTYPE_BYTES, type ColumnSpec, type DType, type ManifestV1 } from '../dataset/types.js';

/** Regions start on 64-byte boundaries: cache-line aligned, and aligned for every typed array. */
const ALIGN = 64;

export interface ColumnRegion {
  name: string;
  kind: ColumnSpec['kind'];
  dtype: DType;
  /** Fixed-shape columns: the per-row shape; scalars: []. */
  shape: number[];
  /** Bytes of one element (1 for bool, string and binary). */
  elementBytes: number;
  /** Fixed-width columns: bytes of one row. Variable-length: 0. */
  rowBytes: number;
  /** Fixed-width: the values region ([batchSize, ...shape]); variable-length: the values heap. */
  valuesOffset: number;
  valuesBytes: number;
  /** Variable-length only: int32 offsets, batchSize + 1 of them, in elements of the values region. */
  offsetsOffset: number;
  /** Nullable columns: one byte per row, 1 = present. -1 when the column is not nullable. */
  validOffset: number;
}

export interface BatchLayout {
  batchSize: number;
  columns: ColumnRegion[];
  /** Bytes one slot needs. */
  slotBytes: number;
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

export function isVariableLength(kind: ColumnSpec['kind']): boolean {
  return kind === 'list' || kind === 'bytes';
}

/**
 * Per variable-length column, the largest row in the whole dataset (maxRowBytes of every shard).
 * A dataset indexed from foreign files may lack it; then `fallbackRowBytes` is assumed and a row
 * larger than that fails its batch with a clear error naming the column.
 */
export function maxRowBytes(manifest: ManifestV1, column: string, fallbackRowBytes: number): number {
  let max = 0;
  let known = true;
  for (const shard of manifest.shards) {
    const m = shard.maxRowBytes?.[column];
    if (m === undefined) known = false;
    else if (m > max) max = m;
  }
  return known ? max : Math.max(max, fallbackRowBytes);
}

export function computeBatchLayout(
  manifest: ManifestV1,
  columns: readonly ColumnSpec[],
  batchSize: number,
  fallbackRowBytes = 64 * 1024,
): BatchLayout {
  let cursor = 0;
  const regions: ColumnRegion[] = [];
  for (const col of columns) {
    const elementBytes = DTYPE_BYTES[col.dtype];
    const shape = col.kind === 'fixed' ? [...(col.shape ?? [])] : [];
    let rowBytes = 0;
    let valuesBytes: number;
    let offsetsOffset = -1;
    if (isVariableLength(col.kind)) {
      offsetsOffset = cursor;
      cursor = alignUp(cursor + (batchSize + 1) * 4);
      // At least one element of room per row keeps the region non-empty for all-empty columns.
      valuesBytes = batchSize * Math.max(elementBytes, maxRowBytes(manifest, col.name, fallbackRowBytes));
    } else {
      const perRow = shape.reduce((a, b) => a * b, 1);
      rowBytes = perRow * elementBytes;
      valuesBytes = batchSize * rowBytes;
    }
    if (!Number.isSafeInteger(valuesBytes) || valuesBytes > 2 ** 40) {
      throw new GpufeedError(ErrorCodes.INVALID_OPTION, `column ${col.name}: a batch of ${batchSize} rows needs ${valuesBytes} bytes; lower batchSize`, {
        option: 'batchSize', column: col.name,
      });
    }
    const valuesOffset = cursor;
    cursor = alignUp(cursor + valuesBytes);
    let validOffset = -1;
    if (col.nullable) {
      validOffset = cursor;
      cursor = alignUp(cursor + batchSize);
    }
    regions.push({ name: col.name, kind: col.kind, dtype: col.dtype, shape, elementBytes, rowBytes, valuesOffset, valuesBytes, offsetsOffset, validOffset });
  }
  return { batchSize, columns: regions, slotBytes: Math.max(ALIGN, cursor) };
}
