// Where the decode pool gets shard bytes from. A local dataset's shards are read in place; a
// remote one's come through the node-local cache, kept ahead of need by the prefetcher
// (prefetcher.ts). Either way a decode worker gets a local file path.

export interface ShardLease {
  /** Local file holding the complete shard; stays readable until release(). */
  readonly path: string;
  release(): void;
}

/** What a fetching source has done; an in-place source has no stats. */
export interface ShardSourceStats {
  hits: number;
  downloads: number;
  bytesDownloaded: number;
  readyOnAcquire: number;
  waitedOnAcquire: number;
  /** Shard downloads run to the end, and their seconds summed. */
  fetches: number;
  fetchSeconds: number;
}

export interface ShardSource {
  readonly stats?: ShardSourceStats;
  /** The complete shard `index` (manifest order) on local disk. */
  acquire(index: number, signal?: AbortSignal): Promise<ShardLease>;
  /**
   * The shards the plan needs next, soonest first (repeats allowed). A prefetching source starts
   * fetching them ahead, within its byte and request bounds; a local source ignores it.
   */
  hint(upcoming: readonly number[]): void;
  close(): Promise<void>;
}
