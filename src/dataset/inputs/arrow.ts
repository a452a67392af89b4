// Arrow IPC input, file (with footer) or stream format, read batch by batch.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { RecordBatchReader, Type, type RecordBatch, type Vector } from 'apache-arrow';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { registerArrowCodecs } from '../../formats/arrow/codecs.js';
import { arrowLeaves, type ArrowLeaf } from '../../formats/schema-map.js';
import { decimalToFloat64, littleEndianInteger } from '../../formats/decimal.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile, InputReader, RowBatch } from './source.js';

type AnyReader = Awaited<ReturnType<typeof RecordBatchReader.from>>;

// pyarrow's default Feather v2 is LZ4-frame compressed; zstd is its other codec.
registerArrowCodecs();

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
    return arrowLeaves(reader.schema, { strict: false, where: this.file.path }).map((l) => l.spec);
  }

  async *batches(): AsyncIterable<RowBatch> {
    const reader = await this.open();
    let row = 0;
    let leaves: ArrowLeaf[] | undefined;
    try {
      const it = (reader as AsyncIterable<RecordBatch>)[Symbol.asyncIterator]();
      for (;;) {
        let next: IteratorResult<RecordBatch>;
        try {
          next = await it.next();
        } catch (err) {
          // A body that does not decompress or decode is bad input, named, not an internal error.
          throw new GpufeedError(ErrorCodes.BAD_INPUT, `${this.file.path}: cannot read the record batch after row ${row} (${(err as Error).message})`, { path: this.file.path, row }, { cause: err });
        }
        if (next.done) break;
        const batch = next.value;
        leaves ??= arrowLeaves(batch.schema, { strict: false, where: this.file.path });
        const out = batchToRows(batch, leaves, this.file.path, row);
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

/**
 * Rows as plain objects keyed by gpufeed column name (struct children flattened to `a.b`). List
 * cells stay Arrow Vectors (the builder copies their typed arrays); dates, times, timestamps and
 * durations are their stored integers; decimals their value as a double; dictionaries decoded.
 */
function batchToRows(batch: RecordBatch, leaves: readonly ArrowLeaf[], where: string, firstRow: number): Record<string, unknown>[] {
  const n = batch.numRows;
  const rows = new Array<Record<string, unknown>>(n);
  for (let r = 0; r < n; r++) rows[r] = {};
  for (const leaf of leaves) {
    let vec: Vector | null = batch.getChildAt(leaf.path[0]!);
    const parents: Vector[] = [];
    for (const j of leaf.path.slice(1)) {
      if (!vec) break;
      parents.push(vec);
      vec = vec.getChildAt(j);
    }
    if (!vec) continue;
    const name = leaf.spec.name;
    const cell = cellReader(vec, leaf);
    for (let r = 0; r < n; r++) {
      let valid = true;
      for (const p of parents) if (!p.isValid(r)) valid = false;
      const v = valid ? cell(r) : null;
      if (v !== null && v !== undefined && (leaf.spec.kind === 'list' || leaf.spec.kind === 'fixed')) {
        const items = v as Vector;
        if (items.nullCount > 0) {
          throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${where}, row ${firstRow + r + 1}: column ${JSON.stringify(name)}: the list holds a null item; gpufeed lists carry no per-item nulls (fill or drop them)`, { path: where, row: firstRow + r + 1, column: name });
        }
        // Half floats: numbers (Vector.get widens exactly), which the builder narrows back to the same bits.
        rows[r]![name] = leaf.spec.dtype === 'float16' ? Array.from(items as Iterable<unknown>) : items;
      } else rows[r]![name] = v;
    }
  }
  return rows;
}

/** How to read row r of one column's vector (one record batch: a single Data chunk). */
function cellReader(vec: Vector, leaf: ArrowLeaf): (r: number) => unknown {
  const t = leaf.type;
  const data = vec.data[0];
  if (!data) return () => null;
  const logical = leaf.spec.logical;
  if (logical && logical !== 'decimal') {
    // The stored integers, not apache-arrow's conversion to milliseconds.
    const values = data.values as ArrayLike<number | bigint>;
    return (r) => (vec.isValid(r) ? values[data.offset + r] : null);
  }
  if (t.typeId === Type.Decimal || logical === 'decimal') {
    const width = (t as unknown as { bitWidth: number }).bitWidth / 8;
    const values = data.values as Uint8Array | Uint32Array;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const scale = leaf.spec.scale ?? 0;
    // The nearest double to unscaled / 10^scale (formats/decimal.ts, shared with the in-place route).
    return (r) => (vec.isValid(r) ? decimalToFloat64(littleEndianInteger(bytes, (data.offset + r) * width, width), scale) : null);
  }
  return (r) => vec.get(r);
}
