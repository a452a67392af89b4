// The cache budget rules (cache/budget.ts), the plan-based bound on shards leased at once
// (pipeline/lease-bound.ts), and a disk floor no eviction can meet failing at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { cacheNeed, checkCacheBudget } from '../../src/cache/budget.js';
import { ShardCache } from '../../src/cache/shard-cache.js';
import { GpufeedError } from '../../src/errors.js';
import { maxLeasedShards } from '../../src/pipeline/lease-bound.js';
import type { RankEpochPlan } from '../../src/plan/index.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

test('cacheNeed: one rank, one shard read: the prefetch window plus that shard (the old rule)', () => {
  const n = cacheNeed({ cacheBytes: 100_000, largestShard: 10_000, datasetBytes: 80_000 });
  assert.deepEqual(n, { ranks: 1, leasedShards: 1, leasedBytes: 10_000, prefetchBytes: 50_000, needed: 60_000 });
  assert.equal(cacheNeed({ cacheBytes: 15_000, largestShard: 10_000, datasetBytes: 80_000 }).needed, 20_000);
});

test('cacheNeed: leases in flight and every rank of the node count; the default window shrinks to fit', () => {
  const n = cacheNeed({ cacheBytes: 200_000, largestShard: 10_000, datasetBytes: 1_000_000, sharing: { ranksSharingCache: 2, leasedShards: () => 5 } });
  // Each rank: 5 leased shards (50,000) + half its 100,000 share, capped at share - leases.
  assert.deepEqual(n, { ranks: 2, leasedShards: 5, leasedBytes: 50_000, prefetchBytes: 50_000, needed: 200_000 });
  checkCacheBudget(200_000, n, 's3://b/ds');
  // The case: 3 shards of 1,049,754 bytes, all of them leased at once, 2,100,000 budget.
  const tight = cacheNeed({ cacheBytes: 2_100_000, largestShard: 1_049_754, datasetBytes: 3 * 1_049_754, sharing: { leasedShards: () => 7 } });
  assert.equal(tight.leasedBytes, 3 * 1_049_754); // never more than the dataset
  assert.throws(() => checkCacheBudget(2_100_000, tight, 's3://b/ds'), (e: GpufeedError) => {
    assert.equal(e.code, 'GPUFEED_CACHE_BUDGET');
    assert.equal(e.details.option, 'cacheBytes');
    assert.equal(e.details.needed, 4 * 1_049_754);
    assert.match(e.message, /--cache-bytes/);
    assert.match(e.message, /need at least 4199016 bytes/);
    return true;
  });
  const two = cacheNeed({ cacheBytes: 1, largestShard: 100, datasetBytes: 10_000, prefetchBytes: 300, sharing: { ranksSharingCache: 2, leasedShards: () => 3 } });
  assert.throws(() => checkCacheBudget(1, two, 'x'), /2 ranks sharing the cache, each with prefetchBytes 300 \+ 300 bytes for up to 3 shards/);
});

/** A plan from explicit batches of sample ids; sample i lives in shard floor(i / rowsPerShard). */
function fakePlan(epochs: number[][][]): (e: number) => RankEpochPlan {
  return (e) => {
    const steps = epochs[e] ?? [];
    return { epoch: e, steps: steps.length, batchIds: (s: number) => steps[s]! } as unknown as RankEpochPlan;
  };
}

test('maxLeasedShards: distinct shards of the worst run of in-flight steps, plus idle leases, at most every shard', () => {
  const shardOf = (id: number): number => Math.floor(id / 10);
  // Sequential: each batch of 5 inside one shard, two batches per shard.
  const seq = Array.from({ length: 10 }, (_, s) => Array.from({ length: 5 }, (_, k) => s * 5 + k));
  const base = { shardOf, shardCount: 5, startEpoch: 0, epochs: 1, idle: 0 };
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([seq]), window: 1 }), 1);
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([seq]), window: 3 }), 2);
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([seq]), window: 3, idle: 4 }), 5); // capped at 5 shards
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([seq]), window: 2, idle: 1 }), 3); // 2 at a shard edge + 1 idle
  // One scattered batch touches 4 shards.
  const scattered = [[0, 1], [2, 3], [5, 15, 25, 35], [40, 41]];
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([scattered]), window: 1 }), 4);
  // In flight across the epoch boundary: the end of epoch 0 with the start of epoch 1.
  const e0 = [[0], [10]];
  const e1 = [[20], [30], [40]];
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([e0, e1]), epochs: 2, window: 3 }), 3);
  assert.equal(maxLeasedShards({ ...base, plan: fakePlan([e0, e1]), epochs: 1, window: 3 }), 2);
  assert.equal(maxLeasedShards({ ...base, shardCount: 0, plan: fakePlan([[]]), window: 3 }), 1);
});

test('a disk floor that emptying the cache cannot meet is GPUFEED_CACHE_BUDGET at once, naming minFreeBytes', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const data = randomBytes(1000);
  let fetches = 0;
  // admitTimeoutMs is far beyond the test's timeout: only failing at once passes.
  const cache = new ShardCache({ cacheDir: dir, minFreeBytes: 2 ** 52, admitTimeoutMs: 600_000 });
  t.after(() => cache.close());
  const ref = {
    datasetUri: 's3://b/ds',
    shard: { path: 'shards/a.arrow', bytes: data.length, hash: `sha256:${createHash('sha256').update(data).digest('hex')}` },
    fetch: async (dest: string) => { fetches++; await writeFile(dest, data); },
  };
  await assert.rejects(cache.acquire(ref), (e: GpufeedError) => {
    assert.equal(e.code, 'GPUFEED_CACHE_BUDGET');
    assert.equal(e.details.option, 'minFreeBytes');
    assert.match(e.message, /--min-free-bytes/);
    assert.match(e.message, /shards\/a\.arrow/);
    return true;
  });
  assert.equal(fetches, 0);
  // A prefetch gets the same answer (not "try later").
  await assert.rejects(cache.acquire(ref, 'pin'), { code: 'GPUFEED_CACHE_BUDGET' });
});
