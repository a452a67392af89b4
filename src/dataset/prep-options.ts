// prep's options: validated up front, each error naming the option.
import { availableParallelism } from 'node:os';
import { invalidOption } from '../errors.js';
import type { StoreOptions } from '../storage/index.js';
import { parseBytes } from '../util/bytes.js';
import { checkColumnSelection, isSelecting, parseColumnList, type ColumnSelection } from './column-selection.js';
import { ALL_DTYPES } from './dtypes.js';
import { parquetCodec } from '../formats/parquet/compression.js';
import type { DType, ShardFormat } from './types.js';

export interface PrepOptions {
  /** Output dataset: a local folder, file:// or (with an S3 store) s3:// URI. */
  out: string;
  format?: ShardFormat;
  /** Target bytes of column data per shard: a number or `64MiB`. Default 64 MiB. */
  shardSize?: number | string;
  /** Fixed-shape columns: `{ input_ids: [2048] }`. */
  shapes?: Record<string, number[]>;
  /** Column (element) dtypes overriding inference: `{ label: 'int32' }`. */
  types?: Record<string, DType>;
  /** Columns to make nullable even if the sample shows no null. */
  nullable?: string[];
  /** Parquet codec: snappy (default), zstd, gzip, none. */
  compression?: string;
  overwrite?: boolean;
  /** Encoder threads; 0 encodes on the main thread. Default: CPUs - 1, at most 8. */
  workers?: number;
  /** Rows sampled from the first input to infer a JSONL/CSV schema. Default 1000. */
  sampleRows?: number;
  /** Progress line on stderr: true, false, or undefined for "when stderr is a TTY". */
  progress?: boolean;
  storeOptions?: StoreOptions;
  /** Only this Hugging Face split of folder and glob inputs (train, validation, test, ...). */
  split?: string;
  /** Keep only these columns. */
  columns?: string[];
  /** Leave out these columns. */
  drop?: string[];
  /** The one input is an ImageNet-style folder ROOT/<class>/<image>: rows of (image, label, path). */
  images?: boolean;
  /** Where skipped input files are reported (default: a stderr line per folder or glob). */
  warn?: (line: string) => void;
  /** Test hooks: Arrow record batch / Parquet row group byte target and row cap. */
  targetBatchBytes?: number;
  maxBatchRows?: number;
}

export interface ResolvedPrepOptions {
  out: string;
  format: ShardFormat;
  shardSize: number;
  shapes: Record<string, number[]>;
  types: Record<string, DType>;
  nullable: string[];
  compression: string;
  overwrite: boolean;
  workers: number;
  sampleRows: number;
  progress: boolean | undefined;
  storeOptions: StoreOptions;
  split?: string;
  select?: ColumnSelection;
  images?: boolean;
  warn?: (line: string) => void;
  targetBatchBytes?: number;
  maxBatchRows?: number;
}

export const DEFAULT_SHARD_SIZE = 64 << 20;
export const MAX_SHARD_SIZE = 2 ** 31 - 1; // Arrow int32 offsets bound a column within a shard

export function defaultWorkers(): number {
  return Math.max(1, Math.min(8, availableParallelism() - 1));
}

export function resolvePrepOptions(o: PrepOptions): ResolvedPrepOptions {
  if (typeof o.out !== 'string' || o.out.length === 0) throw invalidOption('out', 'give the output dataset folder or URI (--out DIR)');
  const format = o.format ?? 'arrow';
  if (format !== 'arrow' && format !== 'parquet') throw invalidOption('format', `expected arrow or parquet, got ${JSON.stringify(format)}`);
  const shardSize = o.shardSize === undefined ? DEFAULT_SHARD_SIZE : parseBytes(o.shardSize, 'shard-size');
  if (shardSize < 1 || shardSize > MAX_SHARD_SIZE) throw invalidOption('shard-size', `must be between 1 byte and 2GiB, got ${JSON.stringify(o.shardSize)}`);
  const compression = o.compression ?? 'snappy';
  parquetCodec(compression, 'compression');
  if (o.compression !== undefined && format === 'arrow' && compression !== 'none') {
    throw invalidOption('compression', `applies to --format parquet; Arrow shards are written uncompressed (the loader reads them in place)`);
  }
  const workers = o.workers ?? defaultWorkers();
  if (!Number.isInteger(workers) || workers < 0 || workers > 256) throw invalidOption('workers', `must be an integer from 0 to 256, got ${JSON.stringify(o.workers)}`);
  const sampleRows = o.sampleRows ?? 1000;
  if (!Number.isInteger(sampleRows) || sampleRows < 1) throw invalidOption('sampleRows', `must be an integer >= 1, got ${JSON.stringify(o.sampleRows)}`);
  const shapes: Record<string, number[]> = {};
  for (const [name, shape] of Object.entries(o.shapes ?? {})) {
    if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
      throw invalidOption('shape', `column ${name}: dimensions must be integers >= 1, got ${JSON.stringify(shape)}`, { column: name });
    }
    shapes[name] = shape.slice();
  }
  const types: Record<string, DType> = {};
  for (const [name, t] of Object.entries(o.types ?? {})) {
    if (!ALL_DTYPES.includes(t)) throw invalidOption('type', `column ${name}: unknown dtype ${JSON.stringify(t)}; expected one of ${ALL_DTYPES.join(', ')}`, { column: name });
    types[name] = t;
  }
  const select: ColumnSelection = {};
  if (o.columns !== undefined) select.columns = parseColumnList(o.columns, 'columns')!;
  if (o.drop !== undefined) select.drop = parseColumnList(o.drop, 'drop')!;
  checkColumnSelection(select);
  if (o.split !== undefined && (typeof o.split !== 'string' || o.split.length === 0)) throw invalidOption('split', `expected a split name such as train, got ${JSON.stringify(o.split)}`);
  return {
    out: o.out, format, shardSize, shapes, types, nullable: o.nullable ?? [], compression, overwrite: o.overwrite ?? false,
    workers, sampleRows, progress: o.progress, storeOptions: o.storeOptions ?? {},
    ...(o.images === true ? { images: true } : {}),
    ...(o.split !== undefined ? { split: o.split } : {}), ...(isSelecting(select) ? { select } : {}), ...(o.warn ? { warn: o.warn } : {}),
    targetBatchBytes: o.targetBatchBytes, maxBatchRows: o.maxBatchRows,
  };
}

/** `input_ids=2048` or `image=3x224x224` (also `3,224,224`) -> [name, shape]. */
export function parseShapeSpec(text: string): [string, number[]] {
  const m = /^([^=]+)=(\d+(?:[x,]\d+)*)$/.exec(text.trim());
  if (!m) throw invalidOption('shape', `expected COLUMN=DIMS such as input_ids=2048 or image=3x224x224, got ${JSON.stringify(text)}`);
  const dims = m[2]!.split(/[x,]/).map(Number);
  if (dims.some((d) => d < 1)) throw invalidOption('shape', `dimensions must be >= 1, got ${JSON.stringify(text)}`);
  return [m[1]!, dims];
}

/** `label=int32` -> [name, dtype]. */
export function parseTypeSpec(text: string): [string, DType] {
  const m = /^([^=]+)=(\w+)$/.exec(text.trim());
  if (!m || !ALL_DTYPES.includes(m[2] as DType)) {
    throw invalidOption('type', `expected COLUMN=DTYPE with DTYPE one of ${ALL_DTYPES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  return [m[1]!, m[2] as DType];
}
