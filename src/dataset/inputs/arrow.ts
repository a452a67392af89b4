// Arrow IPC input, file (with footer) or stream format, read batch by batch.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { columnsFromArrowSchema } from '../formats/schema-map.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile, InputReader, RowBatch } from './source.js';

type AnyReader = Awaited<ReturnType<typeof RecordBatchReader.from>>;

export class ArrowInputReader implements InputReader {
  readonly unit = 'row' as const;
  private reader: AnyReader | undefined;
  private handle: FileHandle | undefined;
  private read = 0;

  constructor(readonly file: InputFile) {}

  get bytesRead(): number {
    return this.read;
  }

  private async open(): Promise<AnyReader> {
    if (this.reader) return this.reader;
    try {
      const fh = await open(this.file.path, 'r');
      const head = Buffer.alloc(6);
      await fh.read(head, 0, 6, 0);
      if (head.toString('latin1') === 'ARROW1') {
        // File format: random access through the handle (footer first).
        this.handle = fh;
        this.reader = await RecordBatchReader.from(fh);
      } else {
        await fh.close();
        this.reader = await RecordBatchReader.from(createReadStream(this.file.path, { highWaterMark: 1 << 20 }));
      }
      await this.reader.open();
    } catch (err) {
      await this.close();
      throw new GpufeedError(ErrorCodes.BAD_INPUT, `${this.file.path}: not a readable Arrow IPC file or stream (${(err as Error).message})`, { path: this.file.path }, { cause: err });
    }
    return this.reader;
  }

  private async close(): Promise<void> {
    await this.handle?.close().catch(() => {});
    this.handle = undefined;
  }

  async declaredColumns(): Promise<ColumnSpec[]> {
    const reader = await this.open();
    return columnsFromArrowSchema(reader.schema, { strict: false, where: this.file.path });
  }

  async *batches(): AsyncIterable<RowBatch> {
    const reader = await this.open();
    let row = 0;
    try {
      for await (const batch of reader as AsyncIterable<RecordBatch>) {
        const out = batchToRows(batch);
        const refs = new Array<number>(out.length);
        for (let i = 0; i < out.length; i++) refs[i] = row + i + 1;
        row += out.length;
        yield { rows: out, refs };
      }
    } finally {
      this.read = this.file.size;
      await this.close();
    }
  }
}

/** Rows as plain objects; list cells stay Arrow Vectors (the builder copies their typed arrays). */
function batchToRows(batch: RecordBatch): Record<string, unknown>[] {
  const n = batch.numRows;
  const rows = new Array<Record<string, unknown>>(n);
  for (let r = 0; r < n; r++) rows[r] = {};
  batch.schema.fields.forEach((f, i) => {
    const vec = batch.getChildAt(i);
    if (!vec) return;
    for (let r = 0; r < n; r++) rows[r]![f.name] = vec.get(r);
  });
  return rows;
}
