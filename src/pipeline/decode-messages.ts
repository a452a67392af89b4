// Messages between the loader (main thread) and decode workers. Only plain data crosses: slab ids
// and offsets, never buffers (DESIGN.md, "Pinned memory").
import type { SerializedError } from '../errors.js';
import type { ShardFormat } from '../dataset/types.js';

/** A shard as a decode worker sees it: a complete local file. */
export interface ShardRef {
  /** Manifest order index. */
  index: number;
  /** Path as written in the manifest, for error messages. */
  name: string;
  /** Local file with the complete shard. */
  file: string;
  format: ShardFormat;
  bytes: number;
}

/**
 * `count` consecutive rows of one work unit (an Arrow record batch or a Parquet row group),
 * starting at `row` within the unit, go to slot rows `slotRow ..`. Runs are in slotRow order.
 */
export interface RowRun {
  shard: number;
  unit: number;
  /** For Arrow: the unit's message block, so the worker needs no manifest. */
  block?: { offset: number; metadataLength: number; bodyLength: number };
  row: number;
  count: number;
  slotRow: number;
}

/** Numbers per run in DecodeTask.runs: shard, unit, row, count, slotRow, block offset (-1: none), metadataLength, bodyLength. */
export const RUN_FIELDS = 8;

export interface DecodeTask {
  slabId: number;
  /**
   * The batch layout as JSON. A string clones as one copy, and the worker keeps the parsed layout
   * by its text, so a task costs no object graph to clone or parse.
   */
  layoutJson: string;
  rows: number;
  shards: ShardRef[];
  /** Packed RowRuns (RUN_FIELDS numbers each; row-runs.ts), in slotRow order. */
  runs: Float64Array;
}

export interface DecodeStats {
  rows: number;
  /** Bytes moved from shard files into the slot. */
  bytesRead: number;
  readNs: number;
  decodeNs: number;
}

export type DecodeReply = { ok: true; stats: DecodeStats } | { ok: false; error: SerializedError };

/**
 * The one long-lived task each decode worker runs (decode-worker.ts, runDecodeLoop): everything
 * it needs to schedule itself, sent once. Per batch nothing crosses but the control block's words.
 */
export interface DecodeLoopTask {
  /** This worker's index, 0 .. workers - 1 (its row of counters). */
  worker: number;
  control: import('./control-block.js').ControlBuffers;
  /** Slab id of each slot. */
  slabIds: number[];
  layoutJson: string;
  manifest: import('../dataset/types.js').ManifestV1;
  world: import('../plan/index.js').World;
  order: import('../plan/index.js').OrderOptions;
  stepsPerEpoch: number;
  /** Flat step (epoch * stepsPerEpoch + step) of seq 0. */
  startStep: number;
  /** First seq past the run (Infinity: endless). */
  endSeq: number;
  /** Local file of every shard (in-place datasets); absent: ask the main thread for leases. */
  paths?: string[];
  /** Errors, lease requests and releases go over this port. */
  port: import('node:worker_threads').MessagePort;
  /** How Arrow shards are read: gather copies from a file mapping, or pread. */
  read: import('../memory/index.js').ReadMode;
  /** Check each piece's checksum as it is first read (the loader's verifyPieces). Default true. */
  verifyPieces?: boolean;
  /** One Int32 per piece, set once any worker verified it (piece-check.ts, SharedPieceFlags). */
  pieceFlags?: SharedArrayBuffer;
  /** Decoded Parquet chunks shared by the loader's workers (row-group-cache.ts); absent: per-worker decoding only. */
  rowGroupCache?: import('../formats/parquet/row-group-cache.js').RowGroupCacheBuffers;
  /** Window-shuffle chunks the workers share, each computed once per loader (plan/shared-windows.ts). */
  sharedWindows?: import('../plan/index.js').SharedWindowBuffers;
  /** A packed loader's document feed: followed instead of the rank's sample plan (plan/packing.ts). */
  feed?: import('../plan/packing.js').FeedSpec;
  /** A mixture's resolved streams: the worker plans the mixture instead of the single dataset. */
  mixture?: import('../plan/index.js').ResolvedStream[];
  /** Bytes all one-off slabs of oversize batches may take at once (memory-budget.ts). */
  oneOffBytes: number;
  /** Page-lock one-off slabs (the loader's pin option; undefined: the addon's default). */
  pin?: boolean;
  /** onCorrupt 'skip': the shared bad-piece flags and per-slot row marks (quarantine.ts); absent: a corrupt piece fails its batch. */
  quarantine?: import('./quarantine.js').QuarantineBuffers;
  /** Image columns decoded and transformed into tensor regions (transforms/image-stage.ts). */
  images?: import('../transforms/image-stage.js').ImageTask;
}

/** Worker -> main thread, over the task's port. */
export type WorkerMessage =
  | { type: 'error'; seq: number; error: SerializedError }
  /** Batch `seq` lies in a one-off slab (oversize-batch.ts), with this layout; sent before the slot is published. */
  | { type: 'oneOff'; seq: number; slabId: number; bytes: number; layoutJson: string }
  /** A piece or shard this worker newly marked bad (quarantine.ts); sent before the batch that met it is published. */
  | { type: 'quarantine'; seq: number; event: import('./quarantine.js').QuarantineEvent }
  | { type: 'acquire'; id: number; shards: number[] }
  | { type: 'release'; shards: number[] };

/** Main thread -> worker: the answer to an acquire (one path per shard asked for, or why not). */
export type LeaseReply = { type: 'leases'; id: number; paths: string[] } | { type: 'leases'; id: number; error: SerializedError };

export interface DecodeLoopResult {
  batches: number;
}
