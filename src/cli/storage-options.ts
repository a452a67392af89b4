// Storage and cache flags shared by subcommands that read datasets (dump, bench, index, ...): one
// definition, converted to the option objects openStore() and createShardSource() take.
import type { Command } from 'commander';
import { invalidOption } from '../errors.js';
import { parseBytes } from '../util/bytes.js';
import type { StoreOptions } from '../storage/index.js';
import type { ShardCacheOptions } from '../cache/options.js';

export interface StorageFlags {
  s3Endpoint?: string;
  cacheDir?: string;
  cacheBytes?: string;
  minFreeBytes?: string;
}

/** Adds --s3-endpoint, and with `cache` (default) --cache-dir, --cache-bytes and --min-free-bytes. */
export function addStorageOptions(cmd: Command, { cache = true }: { cache?: boolean } = {}): Command {
  cmd.option('--s3-endpoint <url>', 'S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)');
  if (cache) {
    cmd
      .option('--cache-dir <dir>', 'node-local shard cache for remote datasets (default: $GPUFEED_CACHE_DIR or <tmp>/gpufeed-cache)')
      .option('--cache-bytes <size>', 'cache byte budget, shared by the processes of a node, e.g. 200GiB (default 16GiB)')
      .option('--min-free-bytes <size>', 'keep this much disk free under the cache (default 1GiB)');
  }
  return cmd;
}

export interface StorageOptionObjects {
  store: StoreOptions;
  cache: ShardCacheOptions;
}

export function storageOptionsFrom(flags: StorageFlags): StorageOptionObjects {
  const store: StoreOptions = {};
  if (flags.s3Endpoint !== undefined) {
    if (!/^https?:\/\/./.test(flags.s3Endpoint)) throw invalidOption('--s3-endpoint', `must be an http:// or https:// URL, got ${JSON.stringify(flags.s3Endpoint)}`);
    store.s3Endpoint = flags.s3Endpoint;
  }
  const cache: ShardCacheOptions = {};
  if (flags.cacheDir !== undefined) cache.cacheDir = flags.cacheDir;
  if (flags.cacheBytes !== undefined) cache.cacheBytes = parseBytes(flags.cacheBytes, '--cache-bytes');
  if (flags.minFreeBytes !== undefined) cache.minFreeBytes = parseBytes(flags.minFreeBytes, '--min-free-bytes');
  return { store, cache };
}
