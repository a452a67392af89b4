// Where each column of a batch lives inside one slot (one slab). Computed once per loader from the
// schema, the batch size and the room memory-budget.ts gives every variable-length column, so a
// decode worker writes a batch without growing anything (a batch whose rows need more room goes to
// a one-off slot with the same regions resized; oversize-batch.ts). The same layout is what the bridge describes to
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

/** Int32 offsets: a batch's variable-length column holds at most this many elements. */
export const MAX_VAR_ELEMENTS = 2 ** 31 - 1;

/** A batch whose variable-length column would pass MAX_VAR_ELEMENTS (Int32 offsets). */
export function varColumnTooLong(region: ColumnRegion, shard: string): GpufeedError {
  return new GpufeedError(ErrorCodes.INVALID_OPTION, `column ${region.name}: the rows of one batch (shard ${shard}) hold more than ${MAX_VAR_ELEMENTS} elements, past what Int32 offsets can address; lower batchSize`, {
    option: 'batchSize', column: region.name, shard,
  });
}

/** Largest values region any layout may plan (a guard against overflowing arithmetic). */
const MAX_REGION_BYTES = 2 ** 40;

/**
 * Bytes the values region of each variable-length column needs so that any batch fits: batchSize x
 * the column's largest row (`fallbackRowBytes` where the manifest does not know it), at least one
 * element per row. Plain numbers, not yet bounded: memory-budget.ts decides what a slot gets.
 */
export function varRegionNeeds(manifest: ManifestV1, columns: readonly ColumnSpec[], batchSize: number, fallbackRowBytes = 64 * 1024): Record<string, number> {
  const needs: Record<string, number> = {};
  for (const col of columns) {
    if (isVariableLength(col.kind)) needs[col.name] = batchSize * Math.max(DTYPE_BYTES[col.dtype], maxRowBytes(manifest, col.name, fallbackRowBytes));
  }
  return needs;
}

/**
 * The layout of a slot of `batchSize` rows. `varBytes` gives the values region of each
 * variable-length column (default: what varRegionNeeds says, i.e. room for the largest rows).
 */
export function computeBatchLayout(
  manifest: ManifestV1,
  columns: readonly ColumnSpec[],
  batchSize: number,
  fallbackRowBytes = 64 * 1024,
  varBytes: Record<string, number> = varRegionNeeds(manifest, columns, batchSize, fallbackRowBytes),
): BatchLayout {
  const regions = columns.map((col) => {
    const elementBytes = DTYPE_BYTES[col.dtype];
    const shape = col.kind === 'fixed' ? [...(col.shape ?? [])] : [];
    const rowBytes = isVariableLength(col.kind) ? 0 : shape.reduce((a, b) => a * b, 1) * elementBytes;
    const valuesBytes = isVariableLength(col.kind) ? Math.max(batchSize * elementBytes, varBytes[col.name] ?? 0) : batchSize * rowBytes;
    return { name: col.name, kind: col.kind, dtype: col.dtype, shape, elementBytes, rowBytes, valuesBytes, nullable: col.nullable === true };
  });
  return placeRegions(regions, batchSize);
}

/**
 * The same layout with other values regions for its variable-length columns (a one-off slot for
 * a batch whose rows do not fit the ring's slots; oversize-batch.ts). Plain data in, plain data out.
 */
export function resizeVarRegions(layout: BatchLayout, varBytes: Record<string, number>): BatchLayout {
  return placeRegions(
    layout.columns.map((r) => ({
      ...r, nullable: r.validOffset >= 0, valuesBytes: r.offsetsOffset >= 0 ? Math.max(r.valuesBytes, varBytes[r.name] ?? 0) : r.valuesBytes,
    })),
    layout.batchSize,
  );
}

type RegionSize = Pick<ColumnRegion, 'name' | 'kind' | 'dtype' | 'shape' | 'elementBytes' | 'rowBytes' | 'valuesBytes'> & { nullable: boolean };

/** Places regions one after another, each on a 64-byte boundary. */
function placeRegions(sizes: readonly RegionSize[], batchSize: number): BatchLayout {
  let cursor = 0;
  const regions: ColumnRegion[] = [];
  for (const r of sizes) {
    const valuesBytes = r.valuesBytes;
    if (!Number.isSafeInteger(valuesBytes) || valuesBytes > MAX_REGION_BYTES) {
      throw new GpufeedError(ErrorCodes.INVALID_OPTION, `column ${r.name}: a batch of ${batchSize} rows needs ${valuesBytes} bytes; lower batchSize`, {
        option: 'batchSize', column: r.name,
      });
    }
    let offsetsOffset = -1;
    if (isVariableLength(r.kind)) {
      offsetsOffset = cursor;
      cursor = alignUp(cursor + (batchSize + 1) * 4);
    }
    const valuesOffset = cursor;
    cursor = alignUp(cursor + valuesBytes);
    let validOffset = -1;
    if (r.nullable) {
      validOffset = cursor;
      cursor = alignUp(cursor + batchSize);
    }
    regions.push({
      name: r.name, kind: r.kind, dtype: r.dtype, shape: [...r.shape], elementBytes: r.elementBytes, rowBytes: r.rowBytes,
      valuesOffset, valuesBytes, offsetsOffset, validOffset,
    });
  }
  return { batchSize, columns: regions, slotBytes: Math.max(ALIGN, cursor) };
}
