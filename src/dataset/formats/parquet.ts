// Parquet shards: encode ShardColumns with hyparquet-writer in row groups of ~8 MiB, and read a
// Parquet file's layout (row groups, footer range) from its footer alone.
import { parquetMetadata, type DecodedArray, type FileMetaData } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { valuesPerRow } from '../columns.js';
import type { ColumnSpec, ParquetLayout } from '../types.js';
import { columnBytes, type ColumnData, type ShardColumns } from './column-data.js';
import { parquetCodec } from './compression.js';
import type { RangeReader } from './range-reader.js';
import { columnsFromParquetSchema, parquetSchemaFor, SCHEMA_METADATA_KEY } from './schema-map.js';

export const PARQUET_MAGIC = 0x31524150; // "PAR1" little-endian
export const PARQUET_TAIL_BYTES = 8;
export const PARQUET_TARGET_ROW_GROUP_BYTES = 8 << 20;

export interface ParquetEncodeOptions {
  /** snappy (default), gzip, zstd (where available) or none. */
  compression?: string;
  targetRowGroupBytes?: number;
}

export interface EncodedParquetShard {
  bytes: Uint8Array;
  layout: ParquetLayout;
}

export function parquetRowGroupRows(shard: ShardColumns, opts: ParquetEncodeOptions = {}): number {
  const target = opts.targetRowGroupBytes ?? PARQUET_TARGET_ROW_GROUP_BYTES;
  const total = shard.columns.reduce((a, c) => a + columnBytes(c), 0);
  const perRow = shard.rows > 0 ? total / shard.rows : 1;
  return Math.max(1, Math.floor(target / Math.max(perRow, 1)));
}

export function encodeParquetShard(schema: readonly ColumnSpec[], shard: ShardColumns, opts: ParquetEncodeOptions = {}): EncodedParquetShard {
  const { codec, compressors } = parquetCodec(opts.compression ?? 'snappy');
  const writer = new ByteWriter(Math.max(1024, shard.columns.reduce((a, c) => a + columnBytes(c), 0) + (64 << 10)));
  const pq = new ParquetWriter({
    writer,
    schema: parquetSchemaFor(schema),
    codec,
    compressors,
    createdBy: 'gpufeed',
    kvMetadata: [{ key: SCHEMA_METADATA_KEY, value: JSON.stringify(schema) }],
  });
  const rowGroupSize = parquetRowGroupRows(shard, opts);
  const columnData = schema.map((col, i) => {
    const data = shard.columns[i];
    if (!data) throw new GpufeedError(ErrorCodes.INTERNAL, `shard has no data for column ${col.name}`);
    const isTensor = col.kind === 'fixed' || col.kind === 'list';
    return {
      name: col.name,
      data: parquetValues(col, data, shard.rows) as DecodedArray,
      // Token lists are large and high-cardinality: dictionary attempts and min/max stats over every
      // element cost more than they give.
      ...(isTensor ? { encoding: 'PLAIN' as const, statistics: false } : {}),
    };
  });
  if (shard.rows > 0) pq.write({ columnData, rowGroupSize });
  pq.finish();
  const bytes = writer.getBytes();
  const { layout } = parquetLayoutFromFooter(bytes, bytes.length);
  return { bytes, layout };
}

/** Values in the shape hyparquet-writer takes: typed arrays for plain numbers, arrays otherwise. */
function parquetValues(col: ColumnSpec, data: ColumnData, rows: number): unknown[] | ArrayLike<unknown> {
  const valid = (r: number): boolean => !data.validity || data.validity[r] === 1;
  const v = data.values;
  switch (col.kind) {
    case 'scalar': {
      if (col.dtype === 'bool' || data.validity || ['int8', 'int16', 'uint8', 'uint16'].includes(col.dtype)) {
        const out = new Array<unknown>(rows);
        for (let r = 0; r < rows; r++) out[r] = valid(r) ? (col.dtype === 'bool' ? v[r] === 1 : v[r]) : null;
        return out;
      }
      return v as ArrayLike<unknown>;
    }
    case 'bytes': {
      const o = data.offsets!;
      const bytes = v as Uint8Array;
      const out = new Array<Uint8Array | null>(rows);
      for (let r = 0; r < rows; r++) out[r] = valid(r) ? bytes.subarray(o[r]!, o[r + 1]!) : null;
      return out;
    }
    case 'fixed':
    case 'list': {
      const n = col.kind === 'fixed' ? valuesPerRow(col) : 0;
      const out = new Array<unknown[] | null>(rows);
      for (let r = 0; r < rows; r++) {
        if (!valid(r)) {
          out[r] = null;
          continue;
        }
        const start = data.offsets ? data.offsets[r]! : r * n;
        const end = data.offsets ? data.offsets[r + 1]! : start + n;
        const row = new Array<unknown>(end - start);
        if (col.dtype === 'bool') for (let k = start; k < end; k++) row[k - start] = v[k] === 1;
        else for (let k = start; k < end; k++) row[k - start] = v[k];
        out[r] = row;
      }
      return out;
    }
  }
}

// ---- Reading the layout from the footer ----

function corrupt(where: string, why: string): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: not a readable Parquet file: ${why}`, { path: where });
}

/**
 * From the last 8 bytes (or more) of a file: the footer's range (metadata + 8-byte tail). Read that
 * range, then call parquetLayoutFromFooter.
 */
export function parquetFooterRange(tail: Uint8Array, fileSize: number, where = 'parquet file'): { footerOffset: number; footerLength: number } {
  if (tail.length < PARQUET_TAIL_BYTES || fileSize < 12) throw corrupt(where, `file of ${fileSize} bytes is too short`);
  const view = new DataView(tail.buffer, tail.byteOffset + tail.length - PARQUET_TAIL_BYTES, PARQUET_TAIL_BYTES);
  if (view.getUint32(4, true) !== PARQUET_MAGIC) throw corrupt(where, 'no PAR1 magic at the end (truncated?)');
  const metadataLength = view.getUint32(0, true);
  const footerLength = metadataLength + PARQUET_TAIL_BYTES;
  if (footerLength > fileSize - 4) throw corrupt(where, `footer length ${metadataLength} does not fit a file of ${fileSize} bytes`);
  return { footerOffset: fileSize - footerLength, footerLength };
}

export interface ParquetFooterInfo {
  layout: ParquetLayout;
  rows: number;
  metadata: FileMetaData;
}

/** Decodes the footer from `tail`, the last bytes (at least footerLength) of a file of `fileSize` bytes. */
export function parquetLayoutFromFooter(tail: Uint8Array, fileSize: number, where = 'parquet file'): ParquetFooterInfo {
  const { footerOffset, footerLength } = parquetFooterRange(tail, fileSize, where);
  if (tail.length < footerLength) throw corrupt(where, `need the last ${footerLength} bytes to read the footer, got ${tail.length}`);
  const footer = tail.subarray(tail.length - footerLength);
  // hyparquet wants an ArrayBuffer that ends with the footer; copy just the footer bytes.
  const buf = footer.slice().buffer;
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(buf);
  } catch (err) {
    throw corrupt(where, `footer does not decode (${(err as Error).message})`);
  }
  const rowGroups = metadata.row_groups.map((rg, i) => {
    let start = Infinity;
    let end = 0;
    for (const c of rg.columns) {
      const m = c.meta_data;
      if (!m) throw corrupt(where, `row group ${i} has a column chunk without metadata`);
      const first = Number(m.dictionary_page_offset ?? m.data_page_offset);
      const chunkStart = m.dictionary_page_offset !== undefined && Number(m.dictionary_page_offset) > 0 ? Math.min(first, Number(m.data_page_offset)) : Number(m.data_page_offset);
      start = Math.min(start, chunkStart);
      end = Math.max(end, chunkStart + Number(m.total_compressed_size));
    }
    if (!Number.isFinite(start)) start = 4;
    if (end > footerOffset) throw corrupt(where, `row group ${i} runs past the footer`);
    return { rows: Number(rg.num_rows), offset: start, bytes: Math.max(0, end - start) };
  });
  const rows = rowGroups.reduce((a, g) => a + g.rows, 0);
  return { layout: { kind: 'parquet', rowGroups, footerOffset, footerLength }, rows, metadata };
}

export interface ParquetFileLayout extends ParquetFooterInfo {
  /** The schema as gpufeed columns (strict mapping; throws GPUFEED_UNSUPPORTED_TYPE). */
  columns: ColumnSpec[];
}

/** A whole layout through at most two ranged reads (the tail, then the footer if it is larger). */
export async function readParquetLayout(read: RangeReader, fileSize: number, where = 'parquet file'): Promise<ParquetFileLayout> {
  const first = Math.min(fileSize, 64 << 10);
  let tail = await read(fileSize - first, first);
  const { footerLength } = parquetFooterRange(tail, fileSize, where);
  if (footerLength > tail.length) tail = await read(fileSize - footerLength, footerLength);
  const info = parquetLayoutFromFooter(tail, fileSize, where);
  const columns = columnsFromParquetSchema(info.metadata.schema, info.metadata.key_value_metadata ?? [], { where });
  return { ...info, columns };
}
