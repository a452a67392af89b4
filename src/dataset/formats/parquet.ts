// Parquet shards: encode ShardColumns with hyparquet-writer in row groups of ~8 MiB, and read a
// Parquet file's layout (row groups, footer range) from its footer alone.
import { parquetMetadata, type ColumnChunk, type DecodedArray, type FileMetaData, type RowGroup, type SchemaElement } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
// Subpaths of hyparquet-writer: its package.json exports `./src/*.js` (not only `.`), and the
// version is pinned exactly (package.json, lockfile), so no release arrives unasked; an upgrade
// must re-run the prep and formats tests. The public ParquetWriter.write runs every token through
// generic Dremel encoding, which dominates prep time for token lists (see below).
import { writeColumn } from 'hyparquet-writer/src/column.js';
import { snappyCompress } from 'hyparquet-writer/src/snappy.js';
import type { PageData } from 'hyparquet-writer/src/types.js';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { valuesPerRow } from '../columns.js';
import { halfToNumber } from '../float16.js';
import type { ColumnSpec, ParquetLayout } from '../types.js';
import { columnBytes, type ColumnData, type ShardColumns } from './column-data.js';
import { parquetCodec } from './compression.js';
import { PIECE_HASH, pieceChecksum, type LayoutReadOptions } from '../piece-checksum.js';
import type { RangeReader } from './range-reader.js';
import { parquetLeaves, parquetSchemaFor, SCHEMA_METADATA_KEY, type ParquetLeaf } from './schema-map.js';
import { parquetChunkRanges } from '../../formats/parquet/chunk-ranges.js';

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
  const elements = parquetSchemaFor(schema);
  const pq = new ParquetWriter({
    writer,
    schema: elements,
    codec,
    compressors,
    createdBy: 'gpufeed',
    kvMetadata: [{ key: SCHEMA_METADATA_KEY, value: JSON.stringify(schema) }],
  });
  // Schema paths (root -> leaf) per column, in the flat element list's order.
  const paths: SchemaElement[][] = [];
  for (let i = 1, c = 0; c < schema.length; c++) {
    const col = schema[c]!;
    if (col.kind === 'fixed' || col.kind === 'list') {
      paths.push([elements[0]!, elements[i]!, elements[i + 1]!, elements[i + 2]!]);
      i += 3;
    } else {
      paths.push([elements[0]!, elements[i]!]);
      i += 1;
    }
  }
  const groupRows = parquetRowGroupRows(shard, opts);
  // hyparquet-writer's ParquetWriter.write runs every value through generic Dremel encoding, which
  // dominates the time for token lists. gpufeed's columns are at most one list level deep, so the
  // levels are computed directly here and each chunk goes to its writeColumn; ParquetWriter still
  // writes the header, page indexes and footer (its row_groups / pendingIndexes / num_rows fields,
  // pinned with hyparquet-writer 0.17).
  const state = pq as unknown as { row_groups: RowGroup[]; pendingIndexes: unknown[]; num_rows: bigint };
  for (let start = 0; start < shard.rows; start += groupRows) {
    const end = Math.min(shard.rows, start + groupRows);
    const groupStart = writer.offset;
    const chunks: ColumnChunk[] = [];
    schema.forEach((col, c) => {
      const data = shard.columns[c];
      if (!data) throw new GpufeedError(ErrorCodes.INTERNAL, `shard has no data for column ${col.name}`);
      const schemaPath = paths[c]!;
      const isTensor = col.kind === 'fixed' || col.kind === 'list';
      const result = writeColumn({
        writer,
        column: {
          columnName: col.name,
          element: schemaPath[schemaPath.length - 1]!,
          schemaPath,
          codec,
          compressors: { SNAPPY: snappyCompress, ...compressors },
          // Token lists are large and high-cardinality: dictionary attempts and min/max stats over
          // every element cost more than they give.
          stats: !isTensor,
          pageSize: 1 << 20,
          columnIndex: false,
          offsetIndex: true,
          ...(isTensor ? { encoding: 'PLAIN' as const } : {}),
        },
        pageData: pageDataOf(col, data, start, end),
      });
      chunks.push(result.chunk);
      state.pendingIndexes.push(result);
    });
    let totalUncompressed = 0n;
    for (const ch of chunks) totalUncompressed += ch.meta_data?.total_uncompressed_size ?? 0n;
    state.num_rows += BigInt(end - start);
    state.row_groups.push({
      columns: chunks,
      total_byte_size: totalUncompressed,
      num_rows: BigInt(end - start),
      total_compressed_size: BigInt(writer.offset - groupStart),
    });
  }
  pq.finish();
  const bytes = writer.getBytes();
  const { layout } = parquetLayoutFromFooter(bytes, bytes.length);
  return { bytes, layout };
}

/** `layout` with the checksum of every column chunk and of the footer of `bytes`, the whole file. */
export function withParquetPieceChecksums(layout: ParquetLayout, bytes: Uint8Array): ParquetLayout {
  const { metadata } = parquetLayoutFromFooter(bytes, bytes.length);
  const ranges = parquetChunkRanges(metadata);
  const rowGroups = layout.rowGroups.map((g, i) => ({
    ...g,
    chunks: (ranges[i] ?? []).map((c) => ({ ...c, crc32: pieceChecksum(bytes.subarray(c.offset, c.offset + c.bytes)) })),
  }));
  return { ...layout, rowGroups, pieceHash: PIECE_HASH, footerCrc32: pieceChecksum(bytes.subarray(layout.footerOffset, layout.footerOffset + layout.footerLength)) };
}

/**
 * Typed arrays pass through to hyparquet-writer as they are, except uint32: its converter keeps a
 * Uint32Array unsigned, which the INT32 writer then refuses; a plain array gets wrapped properly.
 */
function physical(col: ColumnSpec, values: ColumnData['values']): DecodedArray {
  // float16 is held as bits; hyparquet-writer's FLOAT16 takes numbers (exact both ways).
  if (col.dtype === 'float16') return Array.from(values as Uint16Array, halfToNumber) as DecodedArray;
  return (col.dtype === 'uint32' ? Array.from(values as Uint32Array) : values) as DecodedArray;
}

/** Values and Dremel levels of rows [start, end) of one column, as writeColumn takes them. */
function pageDataOf(col: ColumnSpec, data: ColumnData, start: number, end: number): PageData {
  const valid = (r: number): boolean => !data.validity || data.validity[r] === 1;
  const v = data.values;
  const rows = end - start;
  switch (col.kind) {
    case 'scalar': {
      // An OPTIONAL column needs definition levels even when this shard holds no null.
      let values: DecodedArray;
      if (col.dtype === 'bool' || data.validity) {
        const arr = new Array<unknown>(rows);
        for (let r = 0; r < rows; r++) arr[r] = valid(start + r) ? (col.dtype === 'bool' ? v[start + r] === 1 : col.dtype === 'float16' ? halfToNumber(v[start + r] as number) : v[start + r]) : null;
        values = arr as DecodedArray;
      } else {
        values = physical(col, v.subarray(start, end));
      }
      if (!col.nullable) return { values, definitionLevels: [], repetitionLevels: [], maxDefinitionLevel: 0 };
      const def = new Array<number>(rows);
      for (let r = 0; r < rows; r++) def[r] = valid(start + r) ? 1 : 0;
      return { values, definitionLevels: def, repetitionLevels: [], maxDefinitionLevel: 1 };
    }
    case 'bytes': {
      const o = data.offsets!;
      const bytes = v as Uint8Array;
      const values = new Array<Uint8Array | null>(rows);
      for (let r = 0; r < rows; r++) values[r] = valid(start + r) ? bytes.subarray(o[start + r]!, o[start + r + 1]!) : null;
      if (!col.nullable) return { values, definitionLevels: [], repetitionLevels: [], maxDefinitionLevel: 0 };
      const def = new Array<number>(rows);
      for (let r = 0; r < rows; r++) def[r] = valid(start + r) ? 1 : 0;
      return { values, definitionLevels: def, repetitionLevels: [], maxDefinitionLevel: 1 };
    }
    case 'fixed':
    case 'list': {
      const n = col.kind === 'fixed' ? valuesPerRow(col) : 0;
      const first = (r: number): number => (data.offsets ? data.offsets[r]! : r * n);
      const lo = first(start);
      const hi = first(end);
      // Levels: repeated `list` adds one definition level, an OPTIONAL outer group another.
      const maxDef = col.nullable ? 2 : 1;
      let placeholders = 0;
      for (let r = start; r < end; r++) if (!valid(r) || first(r + 1) === first(r)) placeholders++;
      const count = hi - lo + placeholders;
      const def = new Uint8Array(count);
      const rep = new Uint8Array(count);
      const bool = col.dtype === 'bool';
      // Fast path: no null or empty rows, so the values are exactly the typed array's slice.
      const values: unknown[] | ArrayLike<unknown> = placeholders === 0 && !bool ? physical(col, v.subarray(lo, hi)) : new Array<unknown>(count);
      let k = 0;
      for (let r = start; r < end; r++) {
        const a = first(r);
        const b = first(r + 1);
        if (!valid(r) || a === b) {
          def[k] = valid(r) ? maxDef - 1 : 0;
          rep[k] = 0;
          if (Array.isArray(values)) values[k] = undefined;
          k++;
          continue;
        }
        def.fill(maxDef, k, k + b - a);
        rep.fill(1, k + 1, k + b - a);
        if (Array.isArray(values)) for (let j = a; j < b; j++) values[k + j - a] = bool ? v[j] === 1 : col.dtype === 'float16' ? halfToNumber(v[j] as number) : v[j];
        k += b - a;
      }
      return { values: values as DecodedArray, definitionLevels: def as unknown as number[], repetitionLevels: rep as unknown as number[], maxDefinitionLevel: maxDef };
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
  // hyparquet wants an ArrayBuffer that ends with the footer; copy just the footer bytes. Not
  // footer.slice(): on a Node Buffer (small reads come from its shared pool) that is a view, and
  // its .buffer is the whole pool, which does not end with the footer.
  const buf = new ArrayBuffer(footer.length);
  new Uint8Array(buf).set(footer);
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(buf);
  } catch (err) {
    throw corrupt(where, `footer does not decode (${(err as Error).message})`);
  }
  const chunks = parquetChunkRanges(metadata, where);
  const rowGroups = metadata.row_groups.map((rg, i) => {
    let start = Infinity;
    let end = 0;
    for (const c of chunks[i]!) {
      start = Math.min(start, c.offset);
      end = Math.max(end, c.offset + c.bytes);
    }
    if (!Number.isFinite(start)) start = 4;
    if (end > footerOffset) throw corrupt(where, `row group ${i} runs past the footer`);
    return { rows: Number(rg.num_rows), offset: start, bytes: Math.max(0, end - start) };
  });
  const rows = rowGroups.reduce((a, g) => a + g.rows, 0);
  return { layout: { kind: 'parquet', rowGroups, footerOffset, footerLength }, rows, metadata };
}

// Chunk ranges live apart from the reader and writer (the decode workers' piece checks need only them).
export { parquetChunkRanges, type ParquetChunkRange } from '../../formats/parquet/chunk-ranges.js';

export interface ParquetFileLayout extends ParquetFooterInfo {
  /** The schema as gpufeed columns (strict mapping; throws GPUFEED_UNSUPPORTED_TYPE). */
  columns: ColumnSpec[];
  /** Checksum of the footer as read (layout.footerCrc32 too when piece checksums were asked for). */
  footerCrc32: number;
}

/**
 * A whole layout through ranged reads: the tail, then the footer if it is larger; with
 * `pieceChecksums` (the default, what `gpufeed index` records) also every column chunk, once, to
 * checksum it.
 */
export async function readParquetLayout(read: RangeReader, fileSize: number, where = 'parquet file', opts: LayoutReadOptions = {}): Promise<ParquetFileLayout> {
  const { info, footerCrc32 } = await readParquetFooter(read, fileSize, where);
  const leaves = parquetLeaves(info.metadata.schema, info.metadata.key_value_metadata ?? [], { where });
  refuseNullListItems(info.metadata, leaves, where);
  if (opts.pieceChecksums ?? true) await addParquetChunkChecksums(info, read, footerCrc32, where);
  return { ...info, columns: leaves.map((l) => l.spec), footerCrc32 };
}

/** The footer through ranged reads (the tail, then the footer if it is larger), and its checksum. */
export async function readParquetFooter(read: RangeReader, fileSize: number, where = 'parquet file'): Promise<{ info: ParquetFooterInfo; footerCrc32: number }> {
  const first = Math.min(fileSize, 64 << 10);
  let tail = await read(fileSize - first, first);
  const { footerLength } = parquetFooterRange(tail, fileSize, where);
  if (footerLength > tail.length) tail = await read(fileSize - footerLength, footerLength);
  return { info: parquetLayoutFromFooter(tail, fileSize, where), footerCrc32: pieceChecksum(tail.subarray(tail.length - footerLength)) };
}

/** Reads every column chunk once to record its checksum in the layout, with the footer's. */
export async function addParquetChunkChecksums(info: ParquetFooterInfo, read: RangeReader, footerCrc32: number, where: string): Promise<void> {
  const ranges = parquetChunkRanges(info.metadata, where);
  for (let g = 0; g < info.layout.rowGroups.length; g++) {
    const chunks = [];
    for (const c of ranges[g]!) chunks.push({ ...c, crc32: pieceChecksum(await read(c.offset, c.bytes)) });
    info.layout.rowGroups[g]!.chunks = chunks;
  }
  info.layout.pieceHash = PIECE_HASH;
  info.layout.footerCrc32 = footerCrc32;
}

/**
 * Null items inside list columns, found from the footer where the writer recorded definition level
 * histograms (pyarrow does): gpufeed lists carry no per-item nulls. Without histograms the decode
 * workers refuse such a row when they meet it.
 */
export function refuseNullListItems(metadata: FileMetaData, leaves: readonly ParquetLeaf[], where: string): void {
  const lists = leaves.filter((l) => (l.spec.kind === 'list' || l.spec.kind === 'fixed') && l.element.repetition_type === 'OPTIONAL');
  if (lists.length === 0) return;
  let firstRow = 0;
  metadata.row_groups.forEach((rg, g) => {
    for (const leaf of lists) {
      const chunk = rg.columns.find((c) => c.meta_data?.path_in_schema[0] === leaf.path[0] && (c.meta_data?.path_in_schema.length ?? 0) > 1);
      const hist = chunk?.meta_data?.size_statistics?.definition_level_histogram;
      if (!chunk || !hist) continue;
      // Levels: [0 .. maxDef]; an optional item that is null stops one short of the top.
      const nulls = Number(hist[hist.length - 2] ?? 0);
      if (nulls > 0) {
        throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}: column ${JSON.stringify(leaf.spec.name)}: row group ${g} (rows ${firstRow + 1}-${firstRow + Number(rg.num_rows)}) holds ${nulls} null list item(s); gpufeed lists carry no per-item nulls (fill or drop them)`, { path: where, column: leaf.spec.name, row: firstRow + 1 });
      }
    }
    firstRow += Number(rg.num_rows);
  });
}

