// The declared columns of a Parquet or Arrow input with --columns/--drop applied *before* the types
// are mapped, so dropping a column of a type gpufeed cannot carry (a struct of image bytes) works.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { RecordBatchReader, Schema } from 'apache-arrow';
import { asyncBufferFromFile, parquetMetadataAsync } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { selectColumnNames, type ColumnSelection } from '../column-selection.js';
import { columnsFromArrowSchema, columnsFromParquetSchema } from '../../formats/schema-map.js';
import { keptParquetElements } from '../index-layout.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile } from './source.js';

export async function selectedDeclaredColumns(file: InputFile, select: ColumnSelection): Promise<ColumnSpec[]> {
  const keep = (names: string[]): Set<string> => new Set(selectColumnNames(names, select, file.path));
  if (file.kind === 'parquet') {
    let metadata;
    try {
      metadata = await parquetMetadataAsync(await asyncBufferFromFile(file.path));
    } catch (err) {
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${file.path}: not a readable Parquet file (${(err as Error).message})`, { path: file.path }, { cause: err });
    }
    const elements = keptParquetElements(metadata.schema, keep, file.path);
    return columnsFromParquetSchema(elements, metadata.key_value_metadata ?? [], { strict: false, where: file.path });
  }
  const schema = await arrowSchemaOf(file.path);
  const kept = keep(schema.fields.map((f) => f.name));
  return columnsFromArrowSchema(new Schema(schema.fields.filter((f) => kept.has(f.name)), schema.metadata), { strict: false, where: file.path });
}

async function arrowSchemaOf(path: string): Promise<Schema> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(6);
    await fh.read(head, 0, 6, 0);
    const reader = head.toString('latin1') === 'ARROW1'
      ? await RecordBatchReader.from(fh)
      : await RecordBatchReader.from(createReadStream(path, { start: 0, highWaterMark: 1 << 16 }));
    await reader.open();
    const schema = reader.schema;
    await reader.cancel();
    return schema;
  } catch (err) {
    if (err instanceof GpufeedError) throw err;
    throw new GpufeedError(ErrorCodes.BAD_INPUT, `${path}: not a readable Arrow IPC file or stream (${(err as Error).message})`, { path }, { cause: err });
  } finally {
    await fh.close().catch(() => {});
  }
}
