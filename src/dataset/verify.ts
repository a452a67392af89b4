// `gpufeed verify`: every shard in the manifest exists, has the recorded size, hashes to the
// recorded sha256, and agrees with the manifest's schema, row count, layout and piece checksums
// (shard-truth.ts: the file is the truth). Problems are collected (one per shard), not thrown, so
// one run reports them all.
import { ErrorCodes, GpufeedError, type ErrorCode } from '../errors.js';
import type { StoreOptions } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { hashObject } from './hash.js';
import { openDataset } from './open-dataset.js';
import { checkShardAgainstFile, readShardFacts } from './shard-truth.js';
import type { ColumnSpec, ManifestV1, ShardEntry } from './types.js';

export interface ShardProblem {
  shard: string;
  code: ErrorCode;
  message: string;
}

export interface VerifyReport {
  uri: string;
  shards: number;
  rows: number;
  bytes: number;
  ok: boolean;
  problems: ShardProblem[];
}

export interface VerifyOptions {
  storeOptions?: StoreOptions;
  /** Shards hashed at once. Default 4. */
  concurrency?: number;
  onShard?: (shard: ShardEntry, problem: ShardProblem | undefined) => void;
}

export async function verifyDataset(uri: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const { manifest, shards: store, manifestUri } = await openDataset(uri, options.storeOptions);
  try {
    // The report names the dataset (where index.json is), wherever its shards are.
    return { ...(await verifyShards(store, manifest, options)), uri: manifestUri };
  } finally {
    await store.close();
  }
}

export async function verifyShards(store: Store, manifest: ManifestV1, options: VerifyOptions = {}): Promise<VerifyReport> {
  const problems: (ShardProblem | undefined)[] = new Array(manifest.shards.length);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let next = 0;
  const work = async (): Promise<void> => {
    while (next < manifest.shards.length) {
      const i = next++;
      const shard = manifest.shards[i]!;
      const problem = await verifyShard(store, shard, manifest.schema);
      problems[i] = problem;
      options.onShard?.(shard, problem);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, manifest.shards.length) }, work));
  const found = problems.filter((p): p is ShardProblem => p !== undefined);
  return { uri: store.uri, shards: manifest.shards.length, rows: manifest.rows, bytes: manifest.bytes, ok: found.length === 0, problems: found };
}

/** `schema`: the manifest's, compared with the file's own (omit to check size and hash only). */
export async function verifyShard(store: Store, shard: ShardEntry, schema?: readonly ColumnSpec[]): Promise<ShardProblem | undefined> {
  const problem = (code: ErrorCode, message: string): ShardProblem => ({ shard: shard.path, code, message: `shard ${shard.path}: ${message}` });
  const info = await store.head(shard.path);
  if (!info) return problem(ErrorCodes.SHARD_MISSING, 'is missing');
  if (info.size !== shard.bytes) {
    return problem(ErrorCodes.SHARD_CORRUPT, `is ${info.size} bytes, the manifest says ${shard.bytes} (${info.size < shard.bytes ? 'truncated' : 'extra bytes'})`);
  }
  let hash: string;
  try {
    hash = await hashObject(store, shard.path, shard.bytes);
  } catch (err) {
    if (err instanceof GpufeedError && err.code === ErrorCodes.STORAGE_NOT_FOUND) return problem(ErrorCodes.SHARD_MISSING, 'is missing');
    throw err;
  }
  if (hash !== shard.hash) return problem(ErrorCodes.HASH_MISMATCH, `content hash ${hash} differs from the manifest's ${shard.hash}`);
  if (!schema) return undefined;
  try {
    const read = (offset: number, length: number) => store.get(shard.path, { offset, length });
    const facts = await readShardFacts(read, shard.bytes, shard.format, shard.path, true, schema);
    checkShardAgainstFile(shard, schema, facts, { footerChecksum: true, pieceChecksums: true });
  } catch (err) {
    if (!(err instanceof GpufeedError) || err.code === ErrorCodes.INTERNAL) throw err;
    // Already "shard <path>: ..." when it comes from the comparison.
    return { shard: shard.path, code: err.code, message: err.message.startsWith(`shard ${shard.path}`) ? err.message : `shard ${shard.path}: ${err.message}` };
  }
  return undefined;
}
