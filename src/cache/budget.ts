// What a cache budget must hold for a run never to wait for room: for each rank sharing the cache
// dir (the ranks of a node), the shards its readers can hold leased at once (leased shards are
// never evicted) and its prefetch window (downloads in progress cannot be evicted either). Pinned,
// finished prefetches and unheld entries are evictable, so they need no room of their own.
import { ErrorCodes, GpufeedError } from '../errors.js';

export interface CacheSharing {
  /** Processes sharing the cache dir with this one, itself included (LOCAL_WORLD_SIZE). Default 1. */
  ranksSharingCache?: number;
  /**
   * Most shards one rank's readers hold leased at once (batches in flight plus leases kept for
   * reuse); computed on demand, as it may scan the plan. Default 1: one shard being read.
   */
  leasedShards?: () => number;
}

export interface CacheNeed {
  ranks: number;
  leasedShards: number;
  /** Bytes one rank can hold leased: leasedShards x the largest shard, at most the dataset. */
  leasedBytes: number;
  prefetchBytes: number;
  /** ranks x (leasedBytes + prefetchBytes) */
  needed: number;
}

export interface CacheNeedInput {
  cacheBytes: number;
  largestShard: number;
  datasetBytes: number;
  /** An explicit prefetch window, else the default (see below). */
  prefetchBytes?: number | undefined;
  sharing?: CacheSharing;
}

/**
 * The need, and the default prefetch window: half of this rank's share of the budget, at most the
 * share minus what its leases can hold, and never under one shard.
 */
export function cacheNeed(i: CacheNeedInput): CacheNeed {
  const ranks = Math.max(1, Math.floor(i.sharing?.ranksSharingCache ?? 1));
  const leasedShards = Math.max(1, Math.floor(i.sharing?.leasedShards?.() ?? 1));
  const leasedBytes = Math.max(i.largestShard, Math.min(i.datasetBytes, leasedShards * i.largestShard));
  const share = Math.floor(i.cacheBytes / ranks);
  const prefetchBytes = i.prefetchBytes ?? Math.max(i.largestShard, Math.min(Math.floor(share / 2), share - leasedBytes));
  return { ranks, leasedShards, leasedBytes, prefetchBytes, needed: ranks * (leasedBytes + prefetchBytes) };
}

/** GPUFEED_CACHE_BUDGET unless cacheBytes holds the need. */
export function checkCacheBudget(cacheBytes: number, need: CacheNeed, where: string): void {
  if (cacheBytes >= need.needed) return;
  const ranks = need.ranks > 1 ? `${need.ranks} ranks sharing the cache, each with ` : '';
  throw new GpufeedError(
    ErrorCodes.CACHE_BUDGET,
    `option cacheBytes (--cache-bytes) ${cacheBytes} is too small for ${where}: need at least ${need.needed} bytes ` +
      `(${ranks}prefetchBytes ${need.prefetchBytes} + ${need.leasedBytes} bytes for up to ${need.leasedShards} shards leased at once by batches in flight and recently read)`,
    { option: 'cacheBytes', needed: need.needed, ranks: need.ranks, leasedShards: need.leasedShards, prefetchBytes: need.prefetchBytes, path: where },
  );
}
