// ShardSource implementations and the factory that picks one: a local dataset's shards are read in
// place (no copy); a remote one's come through the node-local cache, fetched ahead of need.
import { stat } from 'node:fs/promises';
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';
import type { ManifestV1, ShardEntry } from '../dataset/types.js';
import type { Store } from '../storage/store.js';
import { NoRoomForPrefetch, ShardCache, type CacheHandle, type CacheStats, type ShardRef } from '../cache/shard-cache.js';
import type { ShardCacheOptions } from '../cache/options.js';
import { cacheNeed, checkCacheBudget, type CacheSharing } from '../cache/budget.js';
import type { ShardLease, ShardSource } from './shard-source.js';

export interface ShardSourceOptions extends ShardCacheOptions, CacheSharing {
  /** A cache to share (e.g. between sources of one process); else the source opens its own. */
  cache?: ShardCache;
  /**
   * Bytes of upcoming shards kept downloaded ahead of need (pinned in the cache). Must be at least
   * the largest shard, and cacheBytes must hold it plus the shards leased at once, for every rank
   * sharing the cache (cache/budget.ts). Default: half of this rank's share of the budget, within
   * those bounds.
   */
  prefetchBytes?: number;
  /** Prefetch downloads at once (a reader's demand fetch is never queued behind them). Default 4. */
  prefetchConcurrency?: number;
}

export interface PrefetchStats extends CacheStats {
  /** acquire() calls that found their shard already complete (prefetched or cached). */
  readyOnAcquire: number;
  /** acquire() calls that had to wait for a download. */
  waitedOnAcquire: number;
  /** Shard downloads this source ran to the end, and their seconds summed (the storage latency a shard sees). */
  fetches: number;
  fetchSeconds: number;
}

/** Shards of a dataset on local disk, handed out where they lie after a size check. */
export class InPlaceShardSource implements ShardSource {
  private closed = false;

  constructor(readonly store: Store, readonly manifest: ManifestV1) {
    if (store.localPath(manifest.shards[0]?.path ?? 'x') === undefined) {
      throw new GpufeedError(ErrorCodes.INVALID_OPTION, `${store.uri} is not on local disk; use createShardSource for remote stores`, { option: 'store', path: store.uri });
    }
  }

  async acquire(index: number, signal?: AbortSignal): Promise<ShardLease> {
    if (this.closed) throw new GpufeedError(ErrorCodes.CLOSED, 'shard source is closed');
    signal?.throwIfAborted();
    const shard = shardAt(this.manifest, index, this.store.uri);
    const path = this.store.localPath(shard.path);
    if (path === undefined) throw new GpufeedError(ErrorCodes.INTERNAL, `${this.store.uri}: no local path for ${shard.path}`, { shard: shard.path });
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      size = st.size;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new GpufeedError(ErrorCodes.SHARD_MISSING, `shard ${shard.path} is missing: ${path} does not exist`, { shard: shard.path, path });
      }
      throw err;
    }
    if (size !== shard.bytes) {
      throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${shard.path} is ${size} bytes on disk, the manifest says ${shard.bytes}: ${path}`, {
        shard: shard.path, path, expected: shard.bytes, actual: size,
      });
    }
    return { path, release() {} };
  }

  hint(_upcoming: readonly number[]): void {}

  async close(): Promise<void> {
    this.closed = true;
  }
}

export function shardAt(manifest: ManifestV1, index: number, uri: string): ShardEntry {
  const shard = Number.isInteger(index) ? manifest.shards[index] : undefined;
  if (!shard) {
    throw new GpufeedError(ErrorCodes.INVALID_OPTION, `${uri}: shard index ${index} is out of range (the manifest has ${manifest.shards.length} shards)`, { option: 'index', path: uri });
  }
  return shard;
}

/** In-place source for local stores; the cached, prefetching source for remote ones. */
export function createShardSource(store: Store, manifest: ManifestV1, options: ShardSourceOptions = {}): ShardSource {
  if (manifest.shards.length === 0 || store.localPath(manifest.shards[0]!.path) !== undefined) {
    return new InPlaceShardSource(store, manifest);
  }
  return new PrefetchingShardSource(store, manifest, options);
}

interface PinState {
  controller: AbortController;
  promise: Promise<CacheHandle | undefined>;
  handle?: CacheHandle;
  dropped: boolean;
}

/**
 * Shards of a remote dataset through the node-local cache. hint() names the shards the rank needs
 * next; the source keeps the first of them (up to prefetchBytes, prefetchConcurrency downloads at a
 * time) downloaded and pinned. acquire() returns a lease on a complete shard, starting its download
 * at once if the prefetcher had not.
 */
export class PrefetchingShardSource implements ShardSource {
  readonly cache: ShardCache;
  readonly prefetchBytes: number;
  readonly prefetchConcurrency: number;
  private readonly ownsCache: boolean;
  private upcoming: number[] = [];
  private readonly pins = new Map<number, PinState>();
  private readonly retryAt = new Map<number, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private active = 0;
  private closed = false;
  private readyOnAcquire = 0;
  private waitedOnAcquire = 0;
  private fetches = 0;
  private fetchMs = 0;

  constructor(readonly store: Store, readonly manifest: ManifestV1, options: ShardSourceOptions = {}) {
    this.ownsCache = options.cache === undefined;
    this.cache = options.cache ?? new ShardCache(options);
    const cacheBytes = this.cache.options.cacheBytes;
    const largest = manifest.shards.reduce((m, s) => Math.max(m, s.bytes), 0);
    if (options.prefetchBytes !== undefined && (!Number.isSafeInteger(options.prefetchBytes) || options.prefetchBytes < largest)) {
      throw invalidOption('prefetchBytes', `must be an integer >= the largest shard (${largest} bytes), got ${JSON.stringify(options.prefetchBytes)}`);
    }
    const c = options.prefetchConcurrency;
    if (c !== undefined && (!Number.isInteger(c) || c < 1)) throw invalidOption('prefetchConcurrency', `must be an integer >= 1, got ${JSON.stringify(c)}`);
    this.prefetchConcurrency = c ?? 4;
    // Room for every rank's leases and prefetch window (cache/budget.ts), so no reader waits for room.
    const need = cacheNeed({ cacheBytes, largestShard: largest, datasetBytes: manifest.bytes, prefetchBytes: options.prefetchBytes, sharing: options });
    this.prefetchBytes = need.prefetchBytes;
    checkCacheBudget(cacheBytes, need, store.uri);
  }

  get stats(): PrefetchStats {
    return { ...this.cache.stats, readyOnAcquire: this.readyOnAcquire, waitedOnAcquire: this.waitedOnAcquire, fetches: this.fetches, fetchSeconds: this.fetchMs / 1e3 };
  }

  hint(upcoming: readonly number[]): void {
    if (this.closed) return;
    this.upcoming = upcoming.filter((i) => Number.isInteger(i) && i >= 0 && i < this.manifest.shards.length);
    this.pump();
  }

  async acquire(index: number, signal?: AbortSignal): Promise<ShardLease> {
    if (this.closed) throw new GpufeedError(ErrorCodes.CLOSED, 'shard source is closed');
    const shard = shardAt(this.manifest, index, this.store.uri);
    // This use consumes the shard's first place in the upcoming list, freeing window room.
    const at = this.upcoming.indexOf(index);
    if (at >= 0 && at < 64) this.upcoming.splice(at, 1);
    const pin = this.pins.get(index);
    if (pin?.handle) this.readyOnAcquire++;
    else this.waitedOnAcquire++;
    if (pin && !pin.handle) await abortable(pin.promise.catch(() => undefined), signal);
    const handle = await this.cache.acquire(this.ref(shard), 'lease', signal);
    // The reader's lease now keeps it; the pin goes unless the shard is still in the window.
    this.pump();
    return { path: handle.path, release: () => handle.release() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const pending: Promise<unknown>[] = [];
    for (const [index, pin] of this.pins) {
      this.dropPin(index, pin);
      pin.controller.abort(new GpufeedError(ErrorCodes.CLOSED, 'shard source closed'));
      pending.push(pin.promise.catch(() => undefined));
    }
    await Promise.all(pending);
    if (this.ownsCache) await this.cache.close();
  }

  private ref(shard: ShardEntry): ShardRef {
    return {
      datasetUri: this.store.uri,
      shard,
      fetch: async (dest, signal) => {
        const started = performance.now();
        await this.store.download(shard.path, dest, signal ? { signal } : {});
        this.fetches++;
        this.fetchMs += performance.now() - started;
      },
    };
  }

  /** The first distinct upcoming shards that fit in prefetchBytes. */
  private window(): number[] {
    const out: number[] = [];
    const seen = new Set<number>();
    let bytes = 0;
    for (const i of this.upcoming) {
      if (seen.has(i)) continue;
      const size = this.manifest.shards[i]?.bytes ?? 0;
      if (bytes + size > this.prefetchBytes) break;
      seen.add(i);
      bytes += size;
      out.push(i);
    }
    return out;
  }

  private pump(): void {
    if (this.closed) return;
    const want = this.window();
    const wanted = new Set(want);
    for (const [index, pin] of this.pins) if (!wanted.has(index)) this.dropPin(index, pin);
    const now = Date.now();
    let nextRetry = Infinity;
    for (const index of want) {
      if (this.active >= this.prefetchConcurrency) break;
      if (this.pins.has(index)) continue;
      const at = this.retryAt.get(index) ?? 0;
      if (at > now) {
        nextRetry = Math.min(nextRetry, at);
        continue;
      }
      this.startPin(index);
    }
    if (nextRetry !== Infinity && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.pump();
      }, Math.max(1, nextRetry - now));
      this.retryTimer.unref();
    }
  }

  private startPin(index: number): void {
    const shard = this.manifest.shards[index];
    if (!shard) return;
    const controller = new AbortController();
    const pin: PinState = { controller, dropped: false, promise: Promise.resolve(undefined) };
    this.active++;
    pin.promise = this.cache.acquire(this.ref(shard), 'pin', controller.signal).then(
      (handle) => {
        if (pin.dropped || this.closed) handle.release();
        else pin.handle = handle;
        this.retryAt.delete(index);
        return handle;
      },
      (err: unknown) => {
        // Prefetch failures are not reported here: the reader's acquire() fetches the shard
        // itself and reports what goes wrong. No room: try again a little later.
        if (this.pins.get(index) === pin) this.pins.delete(index);
        this.retryAt.set(index, Date.now() + (err instanceof NoRoomForPrefetch ? 100 : 1000));
        return undefined;
      },
    ).finally(() => {
      this.active--;
      this.pump();
    });
    this.pins.set(index, pin);
  }

  private dropPin(index: number, pin: PinState): void {
    pin.dropped = true;
    pin.handle?.release();
    pin.handle = undefined;
    if (this.pins.get(index) === pin) this.pins.delete(index);
  }
}

function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
