// One shard, from columnar rows to finished bytes: encode (Arrow or Parquet), lay out, hash.
// Runs inside the prep worker pool (workers/prep-shard.ts) or on the main thread.
import { encodeArrowShard, withArrowPieceChecksums } from '../formats/arrow/file.js';
import { maxRowBytesOf, pieceValuesOf, type ShardColumns } from '../formats/column-data.js';
import { encodeParquetShard, withParquetPieceChecksums } from '../formats/parquet/writer.js';
import { hashBytes } from './hash.js';
import type { ArrowLayout, ColumnSpec, ParquetLayout, ShardFormat } from './types.js';

export interface ShardJob {
  schema: ColumnSpec[];
  shard: ShardColumns;
  format: ShardFormat;
  /** Parquet codec: snappy, gzip, zstd, none. */
  compression?: string;
  /** Overrides for tests: Arrow batch / Parquet row group byte targets. */
  targetBatchBytes?: number;
  maxBatchRows?: number;
}

export interface EncodedShardResult {
  bytes: Uint8Array;
  rows: number;
  layout: ArrowLayout | ParquetLayout;
  hash: string;
  maxRowBytes?: Record<string, number>;
  pieceValues?: Record<string, number[]>;
}

export function encodeShard(job: ShardJob): EncodedShardResult {
  const { bytes, layout } = job.format === 'arrow'
    ? encodeArrowShard(job.schema, job.shard, { targetBatchBytes: job.targetBatchBytes, maxBatchRows: job.maxBatchRows })
    : encodeParquetShard(job.schema, job.shard, { compression: job.compression, targetRowGroupBytes: job.targetBatchBytes });
  const checked = layout.kind === 'arrow' ? withArrowPieceChecksums(layout, bytes) : withParquetPieceChecksums(layout, bytes);
  const result: EncodedShardResult = { bytes, rows: job.shard.rows, layout: checked, hash: hashBytes(bytes) };
  const maxRowBytes = maxRowBytesOf(job.schema, job.shard);
  if (maxRowBytes) result.maxRowBytes = maxRowBytes;
  const pieceRows = checked.kind === 'arrow' ? checked.batches.map((b) => b.rows) : checked.rowGroups.map((g) => g.rows);
  const pieceValues = pieceValuesOf(job.schema, job.shard, pieceRows);
  if (pieceValues) result.pieceValues = pieceValues;
  return result;
}
