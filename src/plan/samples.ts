// Global sample ids: shard order in the manifest, then row order. This maps ids to shards and back
// with a binary search over cumulative row counts, and fingerprints the shards (row counts and
// content hashes) so a resume state can tell whether it is used with the dataset it was taken on.
import { createHash } from 'node:crypto';
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';

/** What the plan needs of a manifest shard, in manifest order. */
export interface ShardSize {
  rows: number;
  bytes: number;
  /**
   * The manifest's content hash (`sha256:<hex>`), for the resume fingerprint. Pass it whenever
   * states are taken or checked: without it two datasets with the same row counts look the same.
   */
  hash?: string;
}

export interface SampleLocation {
  shard: number;
  row: number;
}

export class SampleLocator {
  readonly shardCount: number;
  readonly totalRows: number;
  /** cumulative[i] = first global id of shard i; cumulative[shardCount] = totalRows. */
  private readonly cumulative: Float64Array;

  constructor(shards: readonly ShardSize[]) {
    this.shardCount = shards.length;
    this.cumulative = new Float64Array(shards.length + 1);
    let total = 0;
    for (let i = 0; i < shards.length; i++) {
      const rows = (shards[i] as ShardSize).rows;
      if (!Number.isSafeInteger(rows) || rows < 0) {
        throw invalidOption('shards', `shard ${i} has an invalid row count ${String(rows)}`, { shardIndex: i });
      }
      total += rows;
      this.cumulative[i + 1] = total;
    }
    if (!Number.isSafeInteger(total)) throw invalidOption('shards', `total rows ${total} is not a safe integer`);
    this.totalRows = total;
  }

  /** First global id of `shard`; shardStart(shardCount) is totalRows. */
  shardStart(shard: number): number {
    return this.cumulative[shard] as number;
  }

  shardRows(shard: number): number {
    return (this.cumulative[shard + 1] as number) - (this.cumulative[shard] as number);
  }

  /** Shard holding global id `id` (empty shards are skipped). */
  shardOf(id: number): number {
    if (!(id >= 0 && id < this.totalRows)) {
      throw new GpufeedError(ErrorCodes.INTERNAL, `sample id ${id} outside [0, ${this.totalRows})`);
    }
    // Largest i with cumulative[i] <= id; then shard i has rows because cumulative[i+1] > id.
    let lo = 0;
    let hi = this.shardCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.cumulative[mid] as number) <= id) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  locate(id: number): SampleLocation {
    const shard = this.shardOf(id);
    return { shard, row: id - (this.cumulative[shard] as number) };
  }
}

const locators = new WeakMap<readonly ShardSize[], SampleLocator>();

/**
 * The id -> (shard, row) map of a manifest's shards. Cached per shards array (by identity), so
 * planning every epoch does not rebuild it; do not mutate a shards array after passing it in.
 */
export function samplesToShards(shards: readonly ShardSize[]): SampleLocator {
  let locator = locators.get(shards);
  if (!locator) {
    locator = new SampleLocator(shards);
    locators.set(shards, locator);
  }
  return locator;
}

/** (shard, row) of one global sample id. */
export function locateSample(shards: readonly ShardSize[], id: number): SampleLocation {
  return samplesToShards(shards).locate(id);
}

/**
 * sha256 over the shards' row counts and content hashes, in manifest order: changes when shards
 * are added, removed, reordered, resized or rewritten. (Version 1 resume states had an FNV-1a
 * of the row counts only, `rows-fnv1a:`; state.ts refuses them.)
 */
export function datasetFingerprint(shards: readonly ShardSize[]): string {
  // Cached per shards array like the locator: state() may run after every batch.
  let f = fingerprints.get(shards);
  if (f === undefined) {
    const h = createHash('sha256');
    h.update(`${shards.length}\n`);
    for (const shard of shards) h.update(`${shard.rows} ${shard.hash ?? ''}\n`);
    f = `shards-sha256:${h.digest('hex').slice(0, 32)}`;
    fingerprints.set(shards, f);
  }
  return f;
}

const fingerprints = new WeakMap<readonly ShardSize[], string>();
