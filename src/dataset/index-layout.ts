// One file's layout and columns for `gpufeed index`, from its footer (Parquet, Arrow IPC file) or
// its message prefixes (Arrow IPC stream), with --columns/--drop applied before the columns are
// mapped: a dropped column may be of a type gpufeed cannot carry (a struct of image bytes, say).
import { Schema } from 'apache-arrow';
import type { SchemaElement } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { isArrowFileFormat, readArrowStreamLayout } from './arrow-stream.js';
import { selectColumnNames, isSelecting, type ColumnSelection } from './column-selection.js';
import { arrowFooterRange, arrowLayoutFromFooter, arrowMessageRows } from './formats/arrow.js';
import { parquetFooterRange, parquetLayoutFromFooter } from './formats/parquet.js';
import type { RangeReader } from './formats/range-reader.js';
import { columnsFromArrowSchema, columnsFromParquetSchema } from './formats/schema-map.js';
import type { ArrowBatchLayout, ArrowLayout, ColumnSpec, ParquetLayout, ShardFormat } from './types.js';

export interface IndexedFile {
  layout: ArrowLayout | ParquetLayout;
  rows: number;
  /** The kept columns, mapped strictly (what the decode path reads in place). */
  columns: ColumnSpec[];
}

const TAIL_PROBE_BYTES = 64 << 10;

export async function readIndexLayout(format: ShardFormat, read: RangeReader, size: number, where: string, select: ColumnSelection = {}): Promise<IndexedFile> {
  const keep = (names: string[]): Set<string> => new Set(isSelecting(select) ? selectColumnNames(names, select, where) : names);
  if (format === 'parquet') {
    const first = Math.min(size, TAIL_PROBE_BYTES);
    let tail = await read(size - first, first);
    const { footerLength } = parquetFooterRange(tail, size, where);
    if (footerLength > tail.length) tail = await read(size - footerLength, footerLength);
    const info = parquetLayoutFromFooter(tail, size, where);
    const elements = keptParquetElements(info.metadata.schema, keep, where);
    return { layout: info.layout, rows: info.rows, columns: columnsFromParquetSchema(elements, info.metadata.key_value_metadata ?? [], { where }) };
  }
  const head = await read(0, Math.min(size, 8));
  let schema: Schema;
  let layout: ArrowLayout;
  let rows: number;
  if (isArrowFileFormat(head)) {
    const first = Math.min(size, TAIL_PROBE_BYTES);
    let tail = await read(size - first, first);
    const { footerLength } = arrowFooterRange(tail, size, where);
    if (footerLength > tail.length) tail = await read(size - footerLength, footerLength);
    const info = arrowLayoutFromFooter(tail, size, where);
    const batches: ArrowBatchLayout[] = [];
    for (const b of info.blocks) batches.push({ ...b, rows: arrowMessageRows(await read(b.offset, b.metadataLength), where) });
    schema = info.schema;
    layout = { kind: 'arrow', batches };
    rows = batches.reduce((a, b) => a + b.rows, 0);
  } else {
    ({ schema, layout, rows } = await readArrowStreamLayout(read, size, where));
  }
  const kept = keep(schema.fields.map((f) => f.name));
  const columns = columnsFromArrowSchema(new Schema(schema.fields.filter((f) => kept.has(f.name)), schema.metadata), { where });
  return { layout, rows, columns };
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
