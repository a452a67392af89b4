// Parquet input, read with hyparquet (the fastest reader here; see benchmarks/parquet-readers.ts),
// one row group at a time so memory stays bounded by the largest row group.
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { columnsFromParquetSchema } from '../formats/schema-map.js';
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
    return columnsFromParquetSchema(metadata.schema, metadata.key_value_metadata ?? [], { strict: false, where: this.file.path });
  }

  async *batches(): AsyncIterable<RowBatch> {
    const { buf, metadata } = await this.open();
    let rowStart = 0;
    for (const rg of metadata.row_groups) {
      const n = Number(rg.num_rows);
      if (n === 0) continue;
      let rows: Record<string, unknown>[];
      try {
        // utf8: false keeps unannotated BYTE_ARRAY (binary) as bytes; UTF8 columns still decode.
        rows = await parquetReadObjects({ file: buf, metadata, rowStart, rowEnd: rowStart + n, compressors, utf8: false });
      } catch (err) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${this.file.path}: cannot read rows ${rowStart + 1}-${rowStart + n} (${(err as Error).message})`, { path: this.file.path }, { cause: err });
      }
      const refs = new Array<number>(rows.length);
      for (let i = 0; i < rows.length; i++) refs[i] = rowStart + i + 1;
      rowStart += n;
      this.read += Number(rg.total_compressed_size ?? rg.total_byte_size);
      yield { rows, refs };
    }
    this.read = this.file.size;
  }
}
