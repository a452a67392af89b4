// Where an input row came from, for errors: the file and a 1-based line (JSONL, CSV) or row number.
import { ErrorCodes, GpufeedError } from '../errors.js';

export interface RowRef {
  file: string;
  /** 1-based line number in text inputs, 1-based row number in Parquet and Arrow inputs. */
  row: number;
  unit: 'line' | 'row';
}

export function describeRow(at: RowRef): string {
  return `${at.file}, ${at.unit} ${at.row}`;
}

export function badInput(at: RowRef, column: string | undefined, message: string): GpufeedError {
  const col = column === undefined ? '' : ` column ${JSON.stringify(column)}:`;
  return new GpufeedError(ErrorCodes.BAD_INPUT, `${describeRow(at)}:${col} ${message}`, {
    path: at.file, row: at.row, ...(column === undefined ? {} : { column }),
  });
}
