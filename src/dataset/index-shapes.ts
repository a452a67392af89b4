// `gpufeed index --shape col=dims`: declares a list or fixed-size-list column a fixed-shape tensor.
// The claim is checked against the data at index time, so the manifest never says "fixed" for a
// file whose rows disagree: a Parquet column is read (that column only, row group by row group)
// and every row must hold exactly product(dims) values; an Arrow column must already be a
// fixed-size list of that many values (the decode path reads Arrow fixed shapes in place).
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { valuesPerRow } from './columns.js';
import { isNumericDType } from './manifest.js';
import type { RangeReader } from '../formats/range-reader.js';
import type { ColumnSpec, ShardFormat } from './types.js';

export interface ShapedFile {
  format: ShardFormat;
  read: RangeReader;
  size: number;
  /** File path or URI named in errors. */
  where: string;
}

/** `columns` with each of `shapes` applied, after checking the file agrees. */
export async function applyIndexShapes(columns: readonly ColumnSpec[], shapes: Record<string, number[]>, file: ShapedFile): Promise<ColumnSpec[]> {
  const names = Object.keys(shapes);
  if (names.length === 0) return columns.slice();
  const out = columns.slice();
  let parquet: { buf: AsyncBuffer; metadata: Awaited<ReturnType<typeof parquetMetadataAsync>> } | undefined;
  for (const name of names) {
    const i = out.findIndex((c) => c.name === name);
    const col = out[i];
    if (!col) {
      throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `${file.where}: --shape names column ${JSON.stringify(name)}, which is not among the indexed columns (${columns.map((c) => c.name).join(', ')})`, { path: file.where, column: name, option: 'shape' });
    }
    const shape = shapes[name]!;
    const per = shape.reduce((a, b) => a * b, 1);
    const fixed: ColumnSpec = { name, dtype: col.dtype, kind: 'fixed', shape: shape.slice(), nullable: false };
    if (!isNumericDType(col.dtype) || (col.kind !== 'list' && col.kind !== 'fixed')) {
      throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${file.where}: column ${name} is ${col.kind} ${col.dtype}; --shape applies to lists of numbers`, { path: file.where, column: name, option: 'shape' });
    }
    if (file.format === 'arrow') {
      if (col.kind !== 'fixed') {
        throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${file.where}: column ${name} is a variable-length Arrow list; --shape on an Arrow file needs a fixed-size list (re-encode it with gpufeed prep --shape, or write it as a fixed_size_list)`, { path: file.where, column: name, option: 'shape' });
      }
      if (valuesPerRow(col) !== per) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${file.where}: column ${name}, row 1: holds ${valuesPerRow(col)} values a row (a fixed-size list), --shape ${shape.join('x')} needs ${per}`, { path: file.where, column: name, row: 1 });
      }
      out[i] = fixed;
      continue;
    }
    parquet ??= await openParquet(file);
    await checkParquetRows(parquet.buf, parquet.metadata, name, per, file.where);
    out[i] = fixed;
  }
  return out;
}

async function openParquet(file: ShapedFile): Promise<{ buf: AsyncBuffer; metadata: Awaited<ReturnType<typeof parquetMetadataAsync>> }> {
  const buf: AsyncBuffer = {
    byteLength: file.size,
    slice: async (start: number, end?: number): Promise<ArrayBuffer> => {
      const stop = end ?? file.size;
      const bytes = await file.read(start, stop - start);
      // A copy: the bytes may be a view into a pooled Buffer (whose slice() is no copy).
      return new Uint8Array(bytes).buffer;
    },
  };
  return { buf, metadata: await parquetMetadataAsync(buf) };
}

async function checkParquetRows(buf: AsyncBuffer, metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>, name: string, per: number, where: string): Promise<void> {
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const n = Number(rg.num_rows);
    if (n === 0) continue;
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buf, metadata, columns: [name], rowStart, rowEnd: rowStart + n, compressors, utf8: false });
    } catch (err) {
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${where}: column ${name}: cannot read rows ${rowStart + 1}-${rowStart + n} (${(err as Error).message})`, { path: where, column: name }, { cause: err });
    }
    for (let r = 0; r < rows.length; r++) {
      const v = rows[r]![name] as ArrayLike<unknown> | null | undefined;
      const len = v === null || v === undefined ? undefined : v.length;
      if (len !== per) {
        const row = rowStart + r + 1;
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${where}: column ${name}, row ${row}: ${len === undefined ? 'is null' : `has ${len} values`}, --shape says ${per}`, { path: where, column: name, row });
      }
      // A fixed-shape tensor has no null elements either (typed arrays cannot hold one).
      if (Array.isArray(v) && v.some((x) => x === null || x === undefined)) {
        const row = rowStart + r + 1;
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${where}: column ${name}, row ${row}: has a null element; a fixed-shape column cannot`, { path: where, column: name, row });
      }
    }
    rowStart += n;
  }
}
