// Parquet files: a file's layout (row groups, column chunk ranges, footer range) read from its
// footer alone. The writer is writer.ts.
import { parquetMetadata, type FileMetaData } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import type { ColumnSpec, ParquetLayout } from '../../dataset/types.js';
import { PIECE_HASH, pieceChecksum, type LayoutReadOptions } from '../../dataset/piece-checksum.js';
import type { RangeReader } from '../range-reader.js';
import { parquetLeaves, type ParquetLeaf } from '../schema-map.js';

export const PARQUET_MAGIC = 0x31524150; // "PAR1" little-endian
export const PARQUET_TAIL_BYTES = 8;

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
export { parquetChunkRanges, type ParquetChunkRange } from './chunk-ranges.js';
import { parquetChunkRanges } from './chunk-ranges.js';

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

