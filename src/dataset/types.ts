// Manifest v1 types: the on-disk contract of a gpufeed dataset (index.json). Validation lives in
// manifest.ts; this file only names the shapes so every subsystem can share them.

export const MANIFEST_FILE = 'index.json';
export const MANIFEST_FORMAT = 'gpufeed-dataset';
export const MANIFEST_VERSION = 1;

export type NumericDType =
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float16' | 'float32' | 'float64';

/**
 * Element type of a column. `bool` travels as one byte per value; `string` is UTF-8 bytes;
 * `float16` is IEEE half precision, held as its 16 bits (a Uint16Array in JS).
 */
export type DType = NumericDType | 'bool' | 'string' | 'binary';

/**
 * How rows of a column are laid out:
 * - `scalar`: one value per row (a numeric or bool dtype);
 * - `fixed`: a fixed-shape tensor per row, `shape` gives its dimensions (product = values per row);
 * - `list`: a variable-length list of a numeric dtype;
 * - `bytes`: a variable-length string or binary value (dtype `string` or `binary`).
 */
export type ColumnKind = 'scalar' | 'fixed' | 'list' | 'bytes';

export interface ColumnSpec {
  name: string;
  dtype: DType;
  kind: ColumnKind;
  /** Only for kind `fixed`: per-row shape, every dimension >= 1. */
  shape?: number[];
  nullable: boolean;
  /**
   * What the stored numbers mean when a column comes from a richer type: `decimal` (converted to
   * float64, `scale` digits after the point), `date` (days or ms since the epoch), `time` (since
   * midnight), `timestamp` (since the epoch, in `timezone` when the file names one), `duration`.
   * Absent for plain numbers.
   */
  logical?: LogicalType;
  /** Unit of a date/time/timestamp/duration column's integers. */
  unit?: TimeUnit;
  /** Time zone of a timestamp column, as the file names it (`UTC`, `Europe/Paris`, `+01:00`). */
  timezone?: string;
  /** Decimal columns: precision and scale of the source type. */
  precision?: number;
  scale?: number;
}

export type LogicalType = 'decimal' | 'date' | 'time' | 'timestamp' | 'duration';
export type TimeUnit = 'day' | 's' | 'ms' | 'us' | 'ns';

export type ShardFormat = 'arrow' | 'parquet';

/** One record batch of an Arrow IPC file: where its message starts, and its lengths. */
export interface ArrowBatchLayout {
  /** Byte offset of the message (its metadata prefix) in the file. */
  offset: number;
  /** Metadata length including prefix and padding, as the IPC footer's Block records it. */
  metadataLength: number;
  /** Body length in bytes. */
  bodyLength: number;
  rows: number;
  /** Piece checksum (layout.pieceHash) of the batch's bytes, metadata + body. Absent in older manifests. */
  crc32?: number;
}

/** Algorithm of the per-piece checksums of a layout: zlib's CRC-32 (`zlib.crc32`). */
export type PieceHash = 'crc32';

/** One dictionary batch of an Arrow IPC file (the values of a dictionary-encoded column). */
export interface ArrowDictionaryLayout {
  offset: number;
  metadataLength: number;
  bodyLength: number;
  /** Piece checksum (layout.pieceHash) of the batch's bytes, metadata + body. */
  crc32: number;
}

export interface ArrowLayout {
  kind: 'arrow';
  batches: ArrowBatchLayout[];
  /** The file's dictionary batches with their checksums; only where it has some and pieceHash is set. */
  dictionaries?: ArrowDictionaryLayout[];
  /** Set when the layout carries piece checksums (batches[].crc32, footerCrc32). */
  pieceHash?: PieceHash;
  /** Checksum of the file's footer: flatbuffer + int32 length + "ARROW1" (the last footer length + 10 bytes). */
  footerCrc32?: number;
}

export interface ParquetRowGroupLayout {
  rows: number;
  /** Byte offset of the first column chunk of this row group. */
  offset: number;
  /** Bytes spanned by this row group's column chunks (compressed). */
  bytes: number;
  /** Per column chunk, in the footer's order, its range and checksum. Absent in older manifests. */
  chunks?: ParquetChunkLayout[];
}

/** One column chunk of a row group (all its pages, dictionary page included). */
export interface ParquetChunkLayout {
  /** Top-level column the chunk belongs to (first element of its schema path). */
  column: string;
  offset: number;
  bytes: number;
  crc32: number;
}

export interface ParquetLayout {
  kind: 'parquet';
  rowGroups: ParquetRowGroupLayout[];
  /** Offset and length of the footer (metadata + 8-byte tail), for ranged reads. */
  footerOffset: number;
  footerLength: number;
  /** Set when the layout carries piece checksums (rowGroups[].chunks, footerCrc32). */
  pieceHash?: PieceHash;
  /** Checksum of the footer range [footerOffset, footerOffset + footerLength). */
  footerCrc32?: number;
}

export interface ShardEntry {
  /** Relative, '/'-separated path inside the dataset; never absolute, never `..`, never a URL. */
  path: string;
  format: ShardFormat;
  rows: number;
  bytes: number;
  /** Content hash of the whole file, `sha256:<hex>`. */
  hash: string;
  layout: ArrowLayout | ParquetLayout;
  /**
   * Per variable-length column, the largest number of value bytes one row has in this shard;
   * batch slots are sized from it so a decode never overflows.
   */
  maxRowBytes?: Record<string, number>;
  /**
   * Per list column, the values (tokens) each piece holds, aligned with layout.batches or
   * layout.rowGroups: what packing (plan/packing.ts) balances partitions and counts steps by.
   */
  pieceValues?: Record<string, number[]>;
}

export interface ManifestV1 {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  schema: ColumnSpec[];
  shards: ShardEntry[];
  /** Sum of shard rows. */
  rows: number;
  /** Sum of shard bytes. */
  bytes: number;
  /**
   * Where the shards are, when not beside index.json (`gpufeed index --out`): an absolute folder,
   * file:// or s3:// URI, or a path relative to the folder holding index.json. Shard paths are
   * relative to it and stay inside it. A manifest on S3 may only name an S3 base.
   */
  base?: string;
  createdBy?: string;
  createdAt?: string;
  /** Names of the label column's values, by index (`prep --images`: the class folders, sorted). */
  classes?: string[];
}

export const DTYPE_BYTES: Record<DType, number> = {
  int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, int64: 8, uint64: 8,
  float16: 2, float32: 4, float64: 8, bool: 1, string: 1, binary: 1,
};
