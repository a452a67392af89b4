// Reads rows of one Parquet row group into a batch slot. Parquet pages are encoded and usually
// compressed, so each piece is decoded once into the loader's shared cache (row-group-cache.ts)
// and rows are copied out of it: fixed-shape and scalar numeric chunks flat (flat-column.ts),
// variable-length columns page by page in Arrow's layout (var-column.ts). Only what neither can
// read (types that need conversion) goes through hyparquet's row assembly, a row group at a time,
// in a small per-worker cache.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { readFully } from '../../util/read-fully.js';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { parquetMetadata, parquetRead, type Compressors, type FileMetaData } from 'hyparquet';
import { compressors as jsCompressors } from 'hyparquet-compressors';
import { decodeFlatColumn, type FlatColumn } from './flat-column.js';
import { leafPath } from './column-path.js';
import { flattenNestedFixed, NestedShapeMismatch } from '../nested-fixed.js';
import { copyVarRun } from './var-column.js';
import { cacheColumnId, mayBeFlat, type PieceDecoder, type RowGroupCache } from './row-group-cache.js';
import { isVariableLength } from '../../pipeline/batch-layout.js';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { numberToHalf } from '../../dataset/float16.js';
import { RAW_PARQUET_PARSERS } from './parsers.js';
import { decimalScale, decimalsToFloat64, withoutDecimalAnnotations } from './decimal-columns.js';
import { MAX_VAR_ELEMENTS, varColumnTooLong, type ColumnRegion } from '../../pipeline/batch-layout.js';
import type { RowRun, ShardRef } from '../../pipeline/decode-messages.js';
import type { CopyOps, SlotTarget } from '../arrow/load-unit.js';

export interface ParquetShardHandle {
  fd: number;
  ref: ShardRef;
  metadata: FileMetaData;
  /** First row of each row group. */
  rowGroupStarts: number[];
  /** The shared cache's column ids for the targets of the batch being filled (copyParquetRun). */
  cacheIds?: { targets: readonly SlotTarget[]; ids: Int32Array };
}

type DecodedColumn = ArrayLike<unknown> | FlatColumn;

function isFlat(c: DecodedColumn): c is FlatColumn {
  return (c as FlatColumn).bytes instanceof Uint8Array && typeof (c as FlatColumn).rowBytes === 'number';
}

// Node's own zlib for gzip and brotli (native code, faster than the JS ports); the rest
// (snappy in WASM, zstd, lz4) from hyparquet-compressors.
const compressors: Compressors = {
  ...jsCompressors,
  GZIP: (input) => gunzipSync(input),
  BROTLI: (input) => brotliDecompressSync(input),
};

interface DecodedRowGroup {
  key: string;
  columns: Map<string, DecodedColumn>;
  approxBytes: number;
}

// Decoded row groups per worker: enough that the batches of a shuffle window (a few row groups
// live at once) decode each once per worker; bounded so memory does not grow with the dataset.
const MAX_CACHED_BYTES = 96 * 1024 * 1024;
const decodedCache: DecodedRowGroup[] = [];

function corrupt(ref: ShardRef, message: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${message}`, { shard: ref.name, path: ref.file });
}

function readRange(fd: number, ref: ShardRef, start: number, end: number): ArrayBuffer {
  const out = new Uint8Array(end - start);
  const got = readFully(fd, out, start);
  if (got < out.length) throw corrupt(ref, `file ends at ${start + got}, wanted bytes up to ${end}`);
  return out.buffer;
}

export function openParquetShard(ref: ShardRef): ParquetShardHandle {
  const fd = openSync(ref.file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size !== ref.bytes) throw corrupt(ref, `file has ${size} bytes, the manifest says ${ref.bytes}`);
    const tail = new Uint8Array(readRange(fd, ref, size - 8, size));
    if (new TextDecoder().decode(tail.subarray(4)) !== 'PAR1') throw corrupt(ref, 'not a Parquet file (no PAR1 trailer)');
    const metaLength = new DataView(tail.buffer).getUint32(0, true);
    if (metaLength > size - 12) throw corrupt(ref, `bad footer length ${metaLength}`);
    const footer = readRange(fd, ref, size - 8 - metaLength, size);
    const metadata = parquetMetadata(footer);
    const rowGroupStarts: number[] = [];
    let row = 0;
    for (const rg of metadata.row_groups) {
      rowGroupStarts.push(row);
      row += Number(rg.num_rows);
    }
    return { fd, ref, metadata, rowGroupStarts };
  } catch (err) {
    closeSync(fd);
    if (err instanceof GpufeedError) throw err;
    throw corrupt(ref, `cannot read the Parquet footer: ${(err as Error).message}`);
  }
}

export function closeParquetShard(h: ParquetShardHandle): void {
  closeSync(h.fd);
}

async function decodeRowGroup(h: ParquetShardHandle, unit: number, columns: readonly ColumnRegion[]): Promise<DecodedRowGroup> {
  const names = columns.map((c) => c.name);
  const key = `${h.ref.file}#${unit}#${names.join(',')}`;
  const hit = decodedCache.findIndex((d) => d.key === key);
  if (hit >= 0) {
    const [d] = decodedCache.splice(hit, 1);
    decodedCache.push(d!);
    return d!;
  }
  const rg = h.metadata.row_groups[unit];
  const rowStart = h.rowGroupStarts[unit];
  if (!rg || rowStart === undefined) throw corrupt(h.ref, `no row group ${unit}`);
  const rowEnd = rowStart + Number(rg.num_rows);
  const decoded = new Map<string, DecodedColumn>();
  let approxBytes = 0;
  const generic: ColumnRegion[] = [];
  for (const col of columns) {
    const flat = decodeFlatColumn(h.fd, h.ref, h.metadata, unit, col);
    if (flat) {
      decoded.set(col.name, flat);
      approxBytes += flat.bytes.byteLength;
    } else {
      generic.push(col);
    }
  }
  if (generic.length === 0) return remember({ key, columns: decoded, approxBytes });
  const file = {
    byteLength: h.ref.bytes,
    slice: (start: number, end?: number) => readRange(h.fd, h.ref, start, end ?? h.ref.bytes),
  };
  // Bytes columns stay bytes for binary; strings come back as JS strings and are re-encoded.
  const chunks = new Map<string, { rowStart: number; data: ArrayLike<unknown> }[]>();
  const scales = new Map<string, number>();
  for (const col of generic) {
    const scale = decimalScale(h.metadata, col.name);
    if (scale !== undefined) scales.set(col.name, scale);
  }
  try {
    await parquetRead({
      file,
      // Decimals come back as their stored values and are divided once below (decimal-columns.ts).
      metadata: scales.size > 0 ? withoutDecimalAnnotations(h.metadata) : h.metadata,
      columns: generic.map((c) => c.name),
      rowStart,
      rowEnd,
      compressors,
      utf8: false,
      parsers: RAW_PARQUET_PARSERS, // timestamps and dates as their stored integers, not Dates
      onChunk: (chunk) => {
        const list = chunks.get(chunk.columnName) ?? [];
        list.push({ rowStart: chunk.rowStart, data: chunk.columnData as ArrayLike<unknown> });
        chunks.set(chunk.columnName, list);
      },
    });
  } catch (err) {
    throw corrupt(h.ref, `row group ${unit}: ${(err as Error).message}`);
  }
  for (const col of generic) {
    const parts = chunks.get(col.name);
    if (!parts) throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `shard ${h.ref.name} has no column ${col.name}`, { shard: h.ref.name, column: col.name });
    // Stitch the chunks covering [rowStart, rowEnd) into one array indexed from the row group start.
    parts.sort((a, b) => a.rowStart - b.rowStart);
    const n = rowEnd - rowStart;
    const whole: unknown[] = new Array(n);
    for (const p of parts) {
      for (let i = 0; i < p.data.length; i++) {
        const r = p.rowStart + i - rowStart;
        if (r >= 0 && r < n) whole[r] = p.data[i];
      }
    }
    const scale = scales.get(col.name);
    if (scale !== undefined) decimalsToFloat64(whole, scale);
    decoded.set(col.name, whole);
    approxBytes += n * Math.max(8, col.rowBytes || col.elementBytes * 16);
  }
  return remember({ key, columns: decoded, approxBytes });
}

function remember(entry: DecodedRowGroup): DecodedRowGroup {
  decodedCache.push(entry);
  let total = decodedCache.reduce((a, d) => a + d.approxBytes, 0);
  while (decodedCache.length > 1 && total > MAX_CACHED_BYTES) total -= decodedCache.shift()!.approxBytes;
  return entry;
}

/** Row `run.row + i` of a nested-LIST fixed column, checked level by level and flattened row-major. */
function nestedFixedRow(h: ParquetShardHandle, region: ColumnRegion, run: RowRun, i: number, v: unknown): ArrayLike<unknown> {
  const fileRow = (h.rowGroupStarts[run.unit] ?? 0) + run.row + i + 1;
  const refuse = (why: string): GpufeedError => new GpufeedError(ErrorCodes.BAD_INPUT,
    `shard ${h.ref.name}: column ${region.name}: row ${fileRow} of the file (row ${run.row + i} of row group ${run.unit}): ${why}`,
    { shard: h.ref.name, path: h.ref.file, column: region.name, row: fileRow });
  if (v === null || v === undefined) throw refuse(`is null; fixed-shape columns cannot hold nulls (shape [${region.shape.join(', ')}])`);
  try {
    return flattenNestedFixed(v, region.shape);
  } catch (err) {
    if (!(err instanceof NestedShapeMismatch)) throw err;
    throw refuse(err.message);
  }
}

/** A null inside a list: gpufeed lists carry no per-item validity, so it is refused by name, never written as 0. */
function refuseNullItems(h: ParquetShardHandle, region: ColumnRegion, run: RowRun, i: number, items: ArrayLike<unknown>): void {
  for (let k = 0; k < items.length; k++) {
    if (items[k] === null || items[k] === undefined) {
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `shard ${h.ref.name}: column ${region.name}: row ${run.row + i} of row group ${run.unit} holds a null list item; gpufeed lists carry no per-item nulls (fill or drop them)`, { shard: h.ref.name, path: h.ref.file, column: region.name });
    }
  }
}

function writeNumber(view: DataView, offset: number, dtype: ColumnRegion['dtype'], value: unknown): void {
  switch (dtype) {
    case 'int8': view.setInt8(offset, Number(value)); break;
    case 'uint8': view.setUint8(offset, Number(value)); break;
    case 'bool': view.setUint8(offset, value ? 1 : 0); break;
    case 'int16': view.setInt16(offset, Number(value), true); break;
    case 'uint16': view.setUint16(offset, Number(value), true); break;
    case 'int32': view.setInt32(offset, Number(value), true); break;
    case 'uint32': view.setUint32(offset, Number(value), true); break;
    case 'int64': view.setBigInt64(offset, BigInt(value as bigint | number), true); break;
    case 'uint64': view.setBigUint64(offset, BigInt(value as bigint | number), true); break;
    case 'float16': view.setUint16(offset, numberToHalf(Number(value)), true); break;
    case 'float32': view.setFloat32(offset, Number(value), true); break;
    case 'float64': view.setFloat64(offset, Number(value), true); break;
    default: throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `dtype ${dtype} is not numeric`);
  }
}

const encoder = new TextEncoder();

/** Rows run..run+count are contiguous in a flat column: one copy into the slot. */
function copyFlatRows(h: ParquetShardHandle, run: RowRun, target: SlotTarget, bytes: Uint8Array, rowBytes: number, ops: CopyOps): void {
  const region = target.region;
  const src = bytes.subarray(run.row * rowBytes, (run.row + run.count) * rowBytes);
  if (src.byteLength !== run.count * rowBytes) throw corrupt(h.ref, `row group ${run.unit} has fewer than ${run.row + run.count} rows`);
  target.bytes.set(src, region.valuesOffset + run.slotRow * region.rowBytes);
  if (region.validOffset >= 0) target.bytes.fill(1, region.validOffset + run.slotRow, region.validOffset + run.slotRow + run.count);
  ops.bytesRead += src.byteLength;
}

/** The loader's shared cache of decoded flat chunks, as a worker uses it. */
export interface SharedDecoded {
  cache: RowGroupCache;
  /** The loader is stopping: stop waiting for another worker's decode. */
  stopped: () => boolean;
}

/**
 * Copies the run of column `column` (cacheColumnId) from the shared cache, decoding the
 * chunk into it first when no worker has; false when the chunk must take the per-worker path.
 */
function copySharedRun(h: ParquetShardHandle, run: RowRun, target: SlotTarget, column: number, ops: CopyOps, shared: SharedDecoded): boolean {
  const region = target.region;
  const flatPiece = (unit: number): PieceDecoder => ({
    size: Number(h.metadata.row_groups[unit]?.num_rows ?? 0) * region.rowBytes,
    decode: (into) => decodeFlatColumn(h.fd, h.ref, h.metadata, unit, region, into)?.bytes.byteLength,
  });
  // While another worker decodes this chunk (in order, or a small window, every worker wants the
  // same row group at once), decode the next row group's chunk instead of waiting for it: the
  // plan's next batches need it, and decoding stays parallel. A read ahead never waits and its
  // errors are left for the run that needs the chunk (after that run's piece checks).
  const next = run.unit + 1;
  const readAhead = next < h.metadata.row_groups.length ? (): void => {
    try {
      const ahead = shared.cache.acquire(h.ref.index, next, column, 0, flatPiece(next), shared.stopped, 'never');
      if (ahead !== 'fallback') shared.cache.release(ahead.entry);
    } catch {
      // The piece stays EMPTY; its own run decodes it again and reports what is wrong.
    }
  } : undefined;
  const got = shared.cache.acquire(h.ref.index, run.unit, column, 0, flatPiece(run.unit), shared.stopped, readAhead);
  if (got === 'fallback') return false;
  try {
    copyFlatRows(h, run, target, got.bytes, region.rowBytes, ops);
  } finally {
    shared.cache.release(got.entry);
  }
  return true;
}

/** The cache ids of `targets`' columns in `h`'s file, kept on the handle for the batch's other runs (one lookup per run, not per column). */
function cacheColumnIds(h: ParquetShardHandle, targets: readonly SlotTarget[]): Int32Array {
  const memo = h.cacheIds;
  if (memo?.targets === targets) return memo.ids;
  const ids = Int32Array.from(targets, (t) => cacheColumnId(h.metadata, t.region.name));
  h.cacheIds = { targets, ids };
  return ids;
}

/** Copies one run of rows of every target column from a Parquet row group into the slot. */
export async function copyParquetRun(h: ParquetShardHandle, run: RowRun, targets: readonly SlotTarget[], ops: CopyOps, shared?: SharedDecoded): Promise<void> {
  const left: SlotTarget[] = [];
  const ids = shared ? cacheColumnIds(h, targets) : undefined;
  for (let c = 0; c < targets.length; c++) {
    const t = targets[c]!;
    // The shared cache knows a column by its place in the file, not in this layout.
    const column = ids ? ids[c]! : -1;
    // Variable-length columns page by page (var-column.ts), flat ones through the shared cache.
    if (isVariableLength(t.region.kind)) {
      if (!copyVarRun(h, run, t, column, ops, column >= 0 ? shared : undefined)) left.push(t);
    } else if (column < 0 || !mayBeFlat(t.region) || !copySharedRun(h, run, t, column, ops, shared!)) {
      left.push(t);
    }
  }
  if (left.length === 0) return;
  const rest = left;
  const decoded = await decodeRowGroup(h, run.unit, rest.map((t) => t.region));
  for (const target of rest) {
    const region = target.region;
    const values = decoded.columns.get(region.name)!;
    if (isFlat(values)) {
      copyFlatRows(h, run, target, values.bytes, values.rowBytes, ops);
      continue;
    }
    const view = new DataView(target.bytes.buffer, target.bytes.byteOffset, target.bytes.byteLength);
    const eb = region.elementBytes;
    // pyarrow's multi-dim fixed_size_list: rows come back as lists of lists (one level a dimension).
    const nestedRows = region.kind === 'fixed' && region.shape.length > 1 && (leafPath(h.metadata.schema, region.name)?.maxRep ?? 0) > 1;
    const offsets = region.offsetsOffset >= 0
      ? new Int32Array(target.bytes.buffer, target.bytes.byteOffset + region.offsetsOffset, (region.valuesOffset - region.offsetsOffset) >> 2)
      : undefined;
    for (let i = 0; i < run.count; i++) {
      const v = values[run.row + i];
      const slotRow = run.slotRow + i;
      if (region.validOffset >= 0) target.bytes[region.validOffset + slotRow] = v === null || v === undefined ? 0 : 1;
      if (region.kind === 'scalar') {
        if (v !== null && v !== undefined) writeNumber(view, region.valuesOffset + slotRow * eb, region.dtype, v);
        else target.bytes.fill(0, region.valuesOffset + slotRow * eb, region.valuesOffset + (slotRow + 1) * eb);
        ops.bytesRead += eb;
      } else if (region.kind === 'fixed') {
        const arr = nestedRows ? nestedFixedRow(h, region, run, i, v) : v as ArrayLike<unknown> | null;
        const per = region.rowBytes / eb;
        if (!arr || arr.length !== per) {
          throw corrupt(h.ref, `column ${region.name}: row ${run.row + i} of row group ${run.unit} has ${arr ? arr.length : 'null'} values, the schema says ${per}`);
        }
        refuseNullItems(h, region, run, i, arr);
        const base = region.valuesOffset + slotRow * region.rowBytes;
        for (let k = 0; k < per; k++) writeNumber(view, base + k * eb, region.dtype, arr[k]);
        ops.bytesRead += region.rowBytes;
      } else {
        // Variable length: strings/binary as bytes, lists as elements.
        let bytes: Uint8Array | undefined;
        let list: ArrayLike<unknown> | undefined;
        if (region.kind === 'bytes') bytes = v === null || v === undefined ? new Uint8Array(0) : typeof v === 'string' ? encoder.encode(v) : (v as Uint8Array);
        else refuseNullItems(h, region, run, i, (list = (v ?? []) as ArrayLike<unknown>));
        const elems = bytes ? bytes.length : list!.length;
        if (target.cursor + elems > MAX_VAR_ELEMENTS) throw varColumnTooLong(region, h.ref.name);
        offsets![slotRow] = target.cursor;
        // Values that do not fit are only counted: the batch is decoded again into a one-off slot
        // of that size (oversize-batch.ts).
        if ((target.cursor + elems) * eb <= region.valuesBytes) {
          if (bytes) target.bytes.set(bytes, region.valuesOffset + target.cursor);
          else for (let k = 0; k < elems; k++) writeNumber(view, region.valuesOffset + (target.cursor + k) * eb, region.dtype, list![k]);
        }
        target.cursor += elems;
        offsets![slotRow + 1] = target.cursor;
        ops.bytesRead += elems * eb;
      }
    }
  }
}
