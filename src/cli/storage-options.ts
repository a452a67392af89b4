// Storage and cache flags shared by subcommands that read datasets (dump, bench, index, ...): one
// definition, converted to the option objects openStore() and createShardSource() take.
import type { Command } from 'commander';
import { invalidOption } from '../errors.js';
import { parseBytes } from '../util/bytes.js';
import type { S3StoreOptions, StoreOptions } from '../storage/index.js';
import type { RetryEvent } from '../storage/request-runner.js';
import type { ShardCacheOptions } from '../cache/options.js';

export interface StorageFlags {
  s3Endpoint?: string;
  s3Timeout?: string;
  s3FirstByteTimeout?: string;
  cacheDir?: string;
  cacheBytes?: string;
  minFreeBytes?: string;
}

/**
 * Adds --s3-endpoint, --s3-timeout, --s3-first-byte-timeout, and with `cache` (default)
 * --cache-dir, --cache-bytes and --min-free-bytes.
 */
export function addStorageOptions(cmd: Command, { cache = true }: { cache?: boolean } = {}): Command {
  cmd
    .option('--s3-endpoint <url>', 'S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS)')
    .option('--s3-timeout <ms>', 'deadline of one storage request, all retries included, in ms (default 60000)')
    .option('--s3-first-byte-timeout <ms>', 'retry a storage request with no response after this many ms (default 2500)');
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
  const s3: S3StoreOptions = { onRetry: reportRetry };
  if (flags.s3Timeout !== undefined) s3.requestTimeoutMs = milliseconds(flags.s3Timeout, '--s3-timeout');
  if (flags.s3FirstByteTimeout !== undefined) s3.firstByteTimeoutMs = milliseconds(flags.s3FirstByteTimeout, '--s3-first-byte-timeout');
  store.s3 = s3;
  const cache: ShardCacheOptions = {};
  if (flags.cacheDir !== undefined) cache.cacheDir = flags.cacheDir;
  if (flags.cacheBytes !== undefined) cache.cacheBytes = parseBytes(flags.cacheBytes, '--cache-bytes');
  if (flags.minFreeBytes !== undefined) cache.minFreeBytes = parseBytes(flags.minFreeBytes, '--min-free-bytes');
  return { store, cache };
}

function milliseconds(text: string, flag: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw invalidOption(flag, `must be a whole number of milliseconds >= 1, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** The CLI's progress line for a storage request that is being retried (slow or failing store). */
export function retryLine(e: RetryEvent): string {
  return `gpufeed: storage: ${e.what} ${e.path}: attempt ${e.attempt} of ${e.maxAttempts} failed (${e.reason}); retrying in ${e.delayMs} ms (${(e.elapsedMs / 1000).toFixed(1)} s so far)\n`;
}

function reportRetry(e: RetryEvent): void {
  process.stderr.write(retryLine(e));
}
