// Parquet input, read with hyparquet (the fastest reader here; see benchmarks/parquet-readers.ts),
// one row group at a time so memory stays bounded by the largest row group.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type FileMetaData, type SchemaElement } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { RAW_PARQUET_PARSERS } from '../../formats/parquet/parsers.js';
import { parquetLeaves, type ParquetLeaf } from '../../formats/schema-map.js';
import { storedDecimalToFloat64 } from '../../formats/decimal.js';
import { flattenNestedFixed, NestedShapeMismatch } from '../../formats/nested-fixed.js';
import { badInput } from '../row-ref.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile, InputReader, RowBatch } from './source.js';

export class ParquetInputReader implements InputReader {
  readonly unit = 'row' as const;
  private file_: AsyncBuffer | undefined;
  private metadata: FileMetaData | undefined;
  private read = 0;

  constructor(readonly file: InputFile) {}

  get bytesRead(): number {
    return this.read;
  }

  private async open(): Promise<{ buf: AsyncBuffer; metadata: FileMetaData }> {
    if (!this.file_ || !this.metadata) {
      try {
        this.file_ = await asyncBufferFromFile(this.file.path);
        this.metadata = await parquetMetadataAsync(this.file_);
      } catch (err) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${this.file.path}: not a readable Parquet file (${(err as Error).message})`, { path: this.file.path }, { cause: err });
      }
    }
    return { buf: this.file_, metadata: this.metadata };
  }

  async declaredColumns(): Promise<ColumnSpec[]> {
    const { metadata } = await this.open();
    return this.leavesOf(metadata).map((l) => l.spec);
  }

  private leaves: ParquetLeaf[] | undefined;

  private leavesOf(metadata: FileMetaData): ParquetLeaf[] {
    this.leaves ??= parquetLeaves(metadata.schema, metadata.key_value_metadata ?? [], { strict: false, where: this.file.path });
    return this.leaves;
  }

  async *batches(): AsyncIterable<RowBatch> {
    const { buf, metadata: fileMetadata } = await this.open();
    const leaves = this.leavesOf(fileMetadata);
    // hyparquet scales decimals by a multiplication (not exact); it gets them unannotated, as their
    // stored integers or bytes, and storedDecimalToFloat64 (formats/decimal.ts) divides once.
    const decimals = new Set<SchemaElement>(leaves.filter((l) => l.spec.logical === 'decimal').map((l) => l.element));
    const metadata: FileMetaData = decimals.size === 0 ? fileMetadata : {
      ...fileMetadata,
      schema: fileMetadata.schema.map((el) => (decimals.has(el) ? { ...el, converted_type: undefined, logical_type: undefined } : el)),
    };
    const flat = leaves.some((l) => l.path.length > 1 || l.spec.logical === 'decimal');
    const nested = leaves.filter((l) => l.nestedLists !== undefined);
    let rowStart = 0;
    for (const rg of metadata.row_groups) {
      const n = Number(rg.num_rows);
      if (n === 0) continue;
      let rows: Record<string, unknown>[];
      try {
        // utf8: false keeps unannotated BYTE_ARRAY (binary) as bytes; UTF8 columns still decode.
        rows = await parquetReadObjects({ file: buf, metadata, rowStart, rowEnd: rowStart + n, compressors, utf8: false, parsers: RAW_PARQUET_PARSERS });
      } catch (err) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${this.file.path}: cannot read rows ${rowStart + 1}-${rowStart + n} (${(err as Error).message})`, { path: this.file.path }, { cause: err });
      }
      if (flat) rows = rows.map((row) => flattenRow(row, leaves));
      for (const leaf of nested) flattenNestedColumn(rows, leaf, this.file.path, rowStart);
      const refs = new Array<number>(rows.length);
      for (let i = 0; i < rows.length; i++) refs[i] = rowStart + i + 1;
      rowStart += n;
      this.read += Number(rg.total_compressed_size ?? rg.total_byte_size);
      yield { rows, refs };
    }
    this.read = this.file.size;
  }
}


/** A row keyed by gpufeed column name: struct children as `a.b` (null when a parent is), decimals as doubles. */
function flattenRow(row: Record<string, unknown>, leaves: readonly ParquetLeaf[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const leaf of leaves) {
    let v: unknown = row;
    for (const key of leaf.path) v = v === null || v === undefined ? null : (v as Record<string, unknown>)[key];
    if (leaf.spec.logical === 'decimal' && v !== null && v !== undefined) v = storedDecimalToFloat64(v, leaf.spec.scale ?? 0);
    out[leaf.spec.name] = v ?? null;
  }
  return out;
}


/**
 * pyarrow's multi-dim fixed_size_list comes back as lists of lists: each row's cell becomes its
 * values row-major, after checking every level has the shape's length and nothing inside is null.
 * A null row stays null (the column builder refuses it: fixed-shape columns hold no nulls).
 */
function flattenNestedColumn(rows: Record<string, unknown>[], leaf: ParquetLeaf, file: string, rowStart: number): void {
  const name = leaf.spec.name;
  const shape = leaf.spec.shape!;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const cell = row[name];
    if (cell === null || cell === undefined) continue;
    try {
      row[name] = flattenNestedFixed(cell, shape);
    } catch (err) {
      if (err instanceof NestedShapeMismatch) throw badInput({ file, row: rowStart + i + 1, unit: 'row' }, name, err.message);
      throw err;
    }
  }
}
