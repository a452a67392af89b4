// Cache options, defaults and validation (at construction, naming the option).
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { invalidOption } from '../errors.js';

const GiB = 1024 ** 3;

export interface CacheEvent {
  type: 'hit' | 'download-start' | 'download-end' | 'evict' | 'corrupt' | 'hash-mismatch';
  /** Cache entry name (see entry-name.ts). */
  name: string;
  /** Shard path in the manifest, where known. */
  shard?: string;
  bytes: number;
  pid: number;
  /** ms since epoch */
  time: number;
}

export interface ShardCacheOptions {
  /** Cache folder, shared by the ranks of a node. Default $GPUFEED_CACHE_DIR, else <os tmpdir>/gpufeed-cache. */
  cacheDir?: string;
  /** Byte budget for cached shards (downloads in progress included), across all processes. Default 16 GiB. */
  cacheBytes?: number;
  /** Keep at least this much disk free on the cache's filesystem. Default 1 GiB. */
  minFreeBytes?: number;
  /** Longest wait for another process's download of the same shard, ms. Default 600000. */
  lockTimeoutMs?: number;
  /** Longest wait for room in the budget when a reader needs a shard, ms. Default 60000. */
  admitTimeoutMs?: number;
  /** Poll interval for locks and room, ms. Default 20. */
  pollMs?: number;
  /**
   * Re-hash a cached shard the first time this cache instance uses it (catches files damaged on
   * disk or by hand between runs; files this instance downloaded are hashed while admitted).
   * Default true.
   */
  verifyOnFirstUse?: boolean;
  /** Observer for cache events (stats, tests). Must not throw. */
  onEvent?: (event: CacheEvent) => void;
}

export interface ResolvedShardCacheOptions {
  cacheDir: string;
  cacheBytes: number;
  minFreeBytes: number;
  lockTimeoutMs: number;
  admitTimeoutMs: number;
  pollMs: number;
  verifyOnFirstUse: boolean;
  onEvent: ((event: CacheEvent) => void) | undefined;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.GPUFEED_CACHE_DIR || join(tmpdir(), 'gpufeed-cache'));
}

export function resolveCacheOptions(o: ShardCacheOptions): ResolvedShardCacheOptions {
  const int = (name: string, value: unknown, def: number, min: number): number => {
    if (value === undefined) return def;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw invalidOption(name, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  if (o.cacheDir !== undefined && (typeof o.cacheDir !== 'string' || o.cacheDir.length === 0)) {
    throw invalidOption('cacheDir', 'must be a non-empty path');
  }
  if (o.verifyOnFirstUse !== undefined && typeof o.verifyOnFirstUse !== 'boolean') throw invalidOption('verifyOnFirstUse', 'must be a boolean');
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function') throw invalidOption('onEvent', 'must be a function');
  return {
    cacheDir: o.cacheDir ? resolve(o.cacheDir) : defaultCacheDir(),
    cacheBytes: int('cacheBytes', o.cacheBytes, 16 * GiB, 1),
    minFreeBytes: int('minFreeBytes', o.minFreeBytes, 1 * GiB, 0),
    lockTimeoutMs: int('lockTimeoutMs', o.lockTimeoutMs, 600_000, 1),
    admitTimeoutMs: int('admitTimeoutMs', o.admitTimeoutMs, 60_000, 0),
    pollMs: int('pollMs', o.pollMs, 20, 1),
    verifyOnFirstUse: o.verifyOnFirstUse ?? true,
    onEvent: o.onEvent,
  };
}
