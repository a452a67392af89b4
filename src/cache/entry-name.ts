// Cache file names: a digest of (dataset URI, shard path) so two datasets never collide, then the
// shard's sha256 so `cache verify` can re-hash a file without any other record, then the shard's
// extension for humans. e.g. 3f9a0c1d2e4b5a6c7d8e-<64 hex>.parquet
import { createHash } from 'node:crypto';
import { ErrorCodes, GpufeedError } from '../errors.js';

const NAME = /^([0-9a-f]{20})-([0-9a-f]{64})(\.[A-Za-z0-9]{1,12})?$/;

/** The hex digest of a manifest hash `sha256:<hex>`; throws naming the shard for anything else. */
export function sha256HexOf(hash: string, shardPath: string): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(hash);
  if (!m?.[1]) {
    throw new GpufeedError(ErrorCodes.MANIFEST_INVALID, `shard ${shardPath}: hash ${JSON.stringify(hash)} is not "sha256:<64 hex digits>"; the cache needs it to verify downloads`, { shard: shardPath });
  }
  return m[1].toLowerCase();
}

export function cacheEntryName(datasetUri: string, shardPath: string, hash: string): string {
  const where = createHash('sha256').update(`${datasetUri}\n${shardPath}`).digest('hex').slice(0, 20);
  const ext = /\.[A-Za-z0-9]{1,12}$/.exec(shardPath)?.[0] ?? '';
  return `${where}-${sha256HexOf(hash, shardPath)}${ext}`;
}

/** The sha256 hex embedded in a cache file name, or undefined for names the cache did not make. */
export function hashFromEntryName(name: string): string | undefined {
  return NAME.exec(name)?.[2];
}
