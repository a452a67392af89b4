// What prep reads: input files of four kinds, each read as a stream of row batches.
import type { ColumnSelection } from '../column-selection.js';
import type { ColumnSpec } from '../types.js';

export type InputKind = 'jsonl' | 'csv' | 'parquet' | 'arrow' | 'images';

export interface InputFile {
  path: string;
  kind: InputKind;
  /** gzip-compressed text (`.gz`). */
  gzip: boolean;
  size: number;
  /** prep's --columns / --drop, applied as the file is read. */
  select?: ColumnSelection;
  /** Check the selection's names against this file (the first input). */
  checkSelection?: boolean;
  /** kind `images`: the folder's classes and files (inputs/image-folder.ts). */
  images?: import('./image-folder.js').ImageFolderListing;
}

export interface RowBatch {
  rows: Record<string, unknown>[];
  /** Per row: 1-based line number (JSONL, CSV) or row number (Parquet, Arrow). */
  refs: number[];
}

export interface InputReader {
  readonly file: InputFile;
  /** What `refs` count: lines of text, or rows of a columnar file. */
  readonly unit: 'line' | 'row';
  /**
   * The file's own schema, when it has one (Parquet, Arrow), mapped loosely (its values are
   * re-encoded, so dictionary and large types are fine). undefined for JSONL and CSV.
   */
  declaredColumns(): Promise<ColumnSpec[] | undefined>;
  /** Rows in file order, in batches of bounded size. */
  batches(): AsyncIterable<RowBatch>;
  /** Input bytes consumed so far (compressed bytes for .gz), for progress. */
  readonly bytesRead: number;
}

/** Rows per batch the text readers aim for: enough to amortize, small enough to stay bounded. */
export const TEXT_BATCH_ROWS = 512;
