// One file's layout and columns for `gpufeed index`, from its footer (Parquet, Arrow IPC file) or
// its message prefixes (Arrow IPC stream), with --columns/--drop applied before the columns are
// mapped: a dropped column may be of a type gpufeed cannot carry (a struct of image bytes, say).
import { Schema } from 'apache-arrow';
import type { SchemaElement } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { isArrowFileFormat, readArrowStreamLayout } from '../formats/arrow/stream.js';
import { selectColumnNames, isSelecting, type ColumnSelection } from './column-selection.js';
import { readArrowBatches, readArrowDictionaryChecksums, readArrowFooter } from '../formats/arrow/file.js';
import type { RangeReader } from '../formats/range-reader.js';
import { columnsFromArrowSchema, parquetLeaves } from '../formats/schema-map.js';
import { PIECE_HASH, pieceChecksum } from './piece-checksum.js';
import type { ArrowBatchLayout, ArrowLayout, ColumnSpec, ParquetLayout, ShardFormat } from './types.js';
import { checkDictionariesInPlace, type ArrowFooterInfo } from '../formats/arrow/file.js';

export interface IndexedFile {
  layout: ArrowLayout | ParquetLayout;
  rows: number;
  /** The kept columns, mapped strictly (what the decode path reads in place). */
  columns: ColumnSpec[];
  /** CRC-32 of the footer (Parquet, Arrow IPC file); a stream has none. */
  footerCrc32?: number;
}

export interface IndexLayoutOptions {
  /** Also checksum every piece (Parquet column chunk, Arrow record batch), reading each once. */
  pieceChecksums?: boolean;
  /**
   * Map only these columns, and no error for a name the file lacks: the shard checks
   * (shard-truth.ts) read a file for the manifest's columns, and name a missing one themselves.
   */
  onlyColumns?: ReadonlySet<string>;
}


export async function readIndexLayout(format: ShardFormat, read: RangeReader, size: number, where: string, select: ColumnSelection = {}, opts: IndexLayoutOptions = {}): Promise<IndexedFile> {
  const only = opts.onlyColumns;
  const keep = (names: string[]): Set<string> =>
    new Set(only ? names.filter((n) => only.has(n)) : isSelecting(select) ? selectColumnNames(names, select, where) : names);
  if (format === 'parquet') {
    // Imported here, not above: a decode worker checking Arrow shards never loads the Parquet
    // footer reader and hyparquet (module loading is most of its start-up).
    const { addParquetChunkChecksums, readParquetFooter, refuseNullListItems } = await import('../formats/parquet/file.js');
    const { info, footerCrc32 } = await readParquetFooter(read, size, where);
    // Every chunk, kept columns or not: the checksums cover the file as it is.
    if (opts.pieceChecksums) await addParquetChunkChecksums(info, read, footerCrc32, where);
    const elements = keptParquetElements(info.metadata.schema, keep, where);
    const leaves = parquetLeaves(elements, info.metadata.key_value_metadata ?? [], { where });
    // What the decode path cannot carry, refused before any batch (null list items, from the
    // footer's level histograms where the writer recorded them).
    refuseNullListItems(info.metadata, leaves, where);
    return { layout: info.layout, rows: info.rows, columns: leaves.map((l) => l.spec), footerCrc32 };
  }
  const head = await read(0, Math.min(size, 8));
  let schema: Schema;
  let layout: ArrowLayout;
  let rows: number;
  let footerCrc32: number | undefined;
  let footerInfo: ArrowFooterInfo | undefined;
  if (isArrowFileFormat(head)) {
    const footer = await readArrowFooter(read, size, where);
    footerInfo = footer.info;
    footerCrc32 = footer.footerCrc32;
    // Codecs the workers cannot decompress, null fixed-size rows and null list items: refused here.
    const { batches, rows: batchRows } = await readArrowBatches(read, footer.info, where, opts.pieceChecksums ?? false);
    schema = footer.info.schema;
    layout = opts.pieceChecksums ? { kind: 'arrow', batches, pieceHash: PIECE_HASH, footerCrc32 } : { kind: 'arrow', batches };
    if (opts.pieceChecksums && footer.info.dictionaryBlocks.length > 0) layout.dictionaries = await readArrowDictionaryChecksums(read, footer.info);
    rows = batchRows;
  } else {
    ({ schema, layout, rows } = await readArrowStreamLayout(read, size, where));
    if (opts.pieceChecksums) {
      for (const b of layout.batches) b.crc32 = pieceChecksum(await read(b.offset, b.metadataLength + b.bodyLength));
      layout.pieceHash = PIECE_HASH;
    }
  }
  const kept = keep(schema.fields.map((f) => f.name));
  const columns = columnsFromArrowSchema(new Schema(schema.fields.filter((f) => kept.has(f.name)), schema.metadata), { where });
  // Delta or repeated dictionaries of the kept columns: refused here (the workers read one per id).
  if (footerInfo) await checkDictionariesInPlace(read, footerInfo, where, kept);
  const out: IndexedFile = { layout, rows, columns };
  if (footerCrc32 !== undefined) out.footerCrc32 = footerCrc32;
  return out;
}

/** The flat Parquet schema (root first) with only the kept top-level columns' subtrees. */
export function keptParquetElements(schema: readonly SchemaElement[], keep: (names: string[]) => Set<string>, where: string): SchemaElement[] {
  const root = schema[0];
  if (!root) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `${where}: Parquet footer has no schema`, { path: where });
  const subtrees: { name: string; elements: SchemaElement[] }[] = [];
  let i = 1;
  const end = (at: number): number => {
    let next = at + 1;
    for (let k = 0; k < (schema[at]?.num_children ?? 0); k++) next = end(next);
    return next;
  };
  for (let k = 0; k < (root.num_children ?? 0) && i < schema.length; k++) {
    const stop = end(i);
    subtrees.push({ name: schema[i]!.name, elements: schema.slice(i, stop) });
    i = stop;
  }
  const kept = keep(subtrees.map((s) => s.name));
  const chosen = subtrees.filter((s) => kept.has(s.name));
  return [{ ...root, num_children: chosen.length }, ...chosen.flatMap((s) => s.elements)];
}
