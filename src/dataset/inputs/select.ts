// prep's --columns / --drop: an InputReader that passes on only the kept columns. Files with a
// schema (Parquet, Arrow) are checked up front; for JSON Lines and CSV the first input is checked
// once it has been read (a name no row of it holds is UNKNOWN_COLUMN), before any manifest exists.
import { ErrorCodes, GpufeedError } from '../../errors.js';
import type { ColumnSelection } from '../column-selection.js';
import { selectedDeclaredColumns } from './selected-schema.js';
import type { ColumnSpec } from '../types.js';
import type { InputFile, InputReader, RowBatch } from './source.js';

export class SelectingReader implements InputReader {
  private kept: Set<string> | undefined;

  constructor(private readonly inner: InputReader, private readonly select: ColumnSelection, private readonly checkNames: boolean) {}

  get file(): InputFile {
    return this.inner.file;
  }

  get unit(): 'line' | 'row' {
    return this.inner.unit;
  }

  get bytesRead(): number {
    return this.inner.bytesRead;
  }

  async declaredColumns(): Promise<ColumnSpec[] | undefined> {
    if (this.file.kind !== 'parquet' && this.file.kind !== 'arrow') return this.inner.declaredColumns();
    // Mapped after selecting, so a dropped column may be of a type gpufeed cannot carry.
    const cols = await selectedDeclaredColumns(this.file, this.select);
    this.kept = new Set(cols.map((c) => c.name));
    return cols;
  }

  async *batches(): AsyncIterable<RowBatch> {
    const keep = this.kept ?? (this.select.columns ? new Set(this.select.columns) : undefined);
    const drop = new Set(this.select.drop ?? []);
    const asked = [...(this.select.columns ?? []), ...drop];
    const seen = new Set<string>();
    for await (const batch of this.inner.batches()) {
      const rows = batch.rows.map((row) => {
        const out: Record<string, unknown> = {};
        for (const k in row) {
          if (this.checkNames) seen.add(k);
          if ((keep ? keep.has(k) : true) && !drop.has(k)) out[k] = row[k];
        }
        return out;
      });
      yield { rows, refs: batch.refs };
    }
    if (this.checkNames && !this.kept) {
      const unknown = asked.filter((n) => !seen.has(n));
      if (unknown.length > 0) {
        throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `${this.file.path}: no column${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => JSON.stringify(n)).join(', ')} in any ${this.unit} (columns: ${[...seen].join(', ')})`, {
          path: this.file.path, column: unknown[0], columns: unknown,
        });
      }
    }
  }
}
