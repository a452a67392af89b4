// What the metrics and the stall watch may read of a loader: its stages' own counters and states,
// as closures the loader hands over. Reading them is the whole cost of a scrape or a report; the
// stages count as they always do.
import type { ManifestV1 } from '../dataset/types.js';
import type { World } from '../plan/index.js';
import type { LoaderStatsSnapshot } from '../pipeline/stats.js';
import type { ShardCache } from '../cache/shard-cache.js';
import type { RequestLog } from '../storage/request-log.js';
import type { BucketSnapshot } from '../util/bucket-counts.js';

/** One decode worker's row of the control block (control-block.ts, STAT_*). */
export type WorkerCounters = Float64Array;

export interface StoreCounters {
  retries: number;
  hedges: number;
  slowDowns: number;
  bytesReceived: number;
}

export interface LoaderProbe {
  readonly uri: string;
  readonly manifest: ManifestV1;
  readonly world: World;
  stats(): LoaderStatsSnapshot;
  waitHistogram(): BucketSnapshot;
  workerCounters(): WorkerCounters[];
  /** The seq the consumer waits for now, and since when (Date.now()); undefined while it does not wait. */
  waiting(): { seq: number; since: number } | undefined;
  /** The seq the consumer takes next. */
  nextSeq(): number;
  position(seq: number): { epoch: number; step: number };
  /** Manifest indexes of the shards batch `seq` reads, in order. */
  shardsOf(seq: number): number[];
  /** The remote dataset's cache; undefined for a dataset read in place. */
  cache?: ShardCache | undefined;
  /** The object store's requests; undefined for a local dataset. */
  requestLog?: RequestLog | undefined;
  storeCounters?: (() => StoreCounters) | undefined;
  /** Ends the consumer's wait with `err` (stallAction 'fail'). */
  fail(err: Error): void;
}
