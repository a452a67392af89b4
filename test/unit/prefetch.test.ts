// The in-place source for local datasets, createShardSource's choice, and the prefetching source
// over a fake remote store (no network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../../src/storage/local.js';
import type { Store, ObjectInfo } from '../../src/storage/store.js';
import { createShardSource, InPlaceShardSource, PrefetchingShardSource } from '../../src/pipeline/prefetcher.js';
import type { ManifestV1, ShardEntry } from '../../src/dataset/types.js';
import { GpufeedError } from '../../src/errors.js';

const KiB = 1024;

function manifestOf(files: { path: string; data: Buffer }[]): ManifestV1 {
  const shards: ShardEntry[] = files.map((f) => ({
    path: f.path, format: 'arrow', rows: 1, bytes: f.data.length,
    hash: `sha256:${createHash('sha256').update(f.data).digest('hex')}`, layout: { kind: 'arrow', batches: [] },
  }));
  return { format: 'gpufeed-dataset', version: 1, schema: [], shards, rows: shards.length, bytes: shards.reduce((a, s) => a + s.bytes, 0) };
}

async function tempDir(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-prefetch-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A store that looks remote (no localPath) and serves from memory, slowly, counting downloads. */
class FakeRemoteStore implements Store {
  readonly uri = 's3://fake/ds';
  readonly downloads: string[] = [];
  active = 0;
  maxActive = 0;
  /** Downloads finished (file written). */
  completed = 0;
  constructor(private readonly files: Map<string, Buffer>, private readonly delayMs = 20) {}
  localPath(): undefined {
    return undefined;
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    const d = this.files.get(key);
    return d ? { key, size: d.length } : undefined;
  }
  async get(key: string): Promise<Uint8Array> {
    return this.files.get(key)!;
  }
  async download(key: string, dest: string): Promise<number> {
    this.downloads.push(key);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await new Promise((r) => setTimeout(r, this.delayMs));
      const d = this.files.get(key)!;
      await writeFile(dest, d);
      this.completed++;
      return d.length;
    } finally {
      this.active--;
    }
  }
  async list(): Promise<ObjectInfo[]> {
    return [];
  }
  async put(): Promise<void> {}
  async delete(key: string): Promise<void> {
    this.files.delete(key);
  }
  async close(): Promise<void> {}
}

function dataset(n: number, bytes: number) {
  const files = Array.from({ length: n }, (_, i) => ({ path: `shard-${i}.arrow`, data: randomBytes(bytes + i) }));
  return { files, manifest: manifestOf(files), map: new Map(files.map((f) => [f.path, f.data])) };
}

test('local datasets are read in place: missing and wrong-size shards are named', async (t) => {
  const dir = await tempDir(t);
  const { files, manifest } = dataset(3, 2 * KiB);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, files[0]!.path), files[0]!.data);
  await writeFile(join(dir, files[1]!.path), files[1]!.data.subarray(1));
  const source = createShardSource(new LocalStore(dir), manifest);
  assert.ok(source instanceof InPlaceShardSource);
  const lease = await source.acquire(0);
  assert.equal(lease.path, join(dir, files[0]!.path));
  lease.release();
  await assert.rejects(source.acquire(1), (e: unknown) => e instanceof GpufeedError && e.code === 'GPUFEED_SHARD_CORRUPT' && /shard-1\.arrow/.test(e.message));
  await assert.rejects(source.acquire(2), (e: unknown) => e instanceof GpufeedError && e.code === 'GPUFEED_SHARD_MISSING' && /shard-2\.arrow/.test(e.message));
  await assert.rejects(source.acquire(7), /out of range/);
  await source.close();
});

test('remote datasets go through the cache; hinted shards are fetched ahead, bounded', async (t) => {
  const dir = await tempDir(t);
  const { files, manifest, map } = dataset(10, 4 * KiB);
  const store = new FakeRemoteStore(map, 30);
  const source = createShardSource(store, manifest, { cacheDir: dir, cacheBytes: 64 * KiB, minFreeBytes: 0, prefetchBytes: 5 * 4 * KiB + 20, prefetchConcurrency: 2 });
  assert.ok(source instanceof PrefetchingShardSource);
  t.after(() => source.close());
  const order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7];
  source.hint(order);
  // Waits for the window to fill, by count (bounded), not for a fixed time: a loaded machine may
  // take any time. A sixth download, were the window wrong, would start as soon as one of the first
  // five finished, so it would be seen by the time the fifth is done and a few turns have passed.
  for (let i = 0; i < 1000 && store.completed < 5; i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  // Five shards fit the prefetch window; two downloads at a time.
  assert.deepEqual([...store.downloads].sort(), order.slice(0, 5).map((i) => `shard-${i}.arrow`).sort());
  assert.ok(store.maxActive <= 2);
  for (const i of order) {
    const lease = await source.acquire(i);
    assert.ok((await readFile(lease.path)).equals(files[i]!.data));
    lease.release();
  }
  assert.equal(store.downloads.length, 10);
  assert.ok(source.stats.readyOnAcquire >= 5, JSON.stringify(source.stats));
});

test('acquire of a shard nobody hinted starts its download at once, past the prefetch queue', async (t) => {
  const dir = await tempDir(t);
  const { manifest, map } = dataset(6, 4 * KiB);
  const store = new FakeRemoteStore(map, 100);
  const source = new PrefetchingShardSource(store, manifest, { cacheDir: dir, cacheBytes: 64 * KiB, minFreeBytes: 0, prefetchConcurrency: 1 });
  t.after(() => source.close());
  source.hint([0, 1, 2, 3]);
  const lease = await source.acquire(5);
  // With one prefetch at a time, the queue would have reached shard 5 only after 0..3; the demand
  // fetch went past it: at most the prefetch already in flight (shard 0) came before it.
  const at = store.downloads.indexOf('shard-5.arrow');
  assert.ok(at >= 0 && at <= 1, `downloads in order: ${store.downloads.join(', ')}`);
  assert.ok(!store.downloads.slice(0, at).some((p) => p !== 'shard-0.arrow'), store.downloads.join(', '));
  lease.release();
});

test('a cache budget too small for the prefetch window is GPUFEED_CACHE_BUDGET with the bytes needed', async (t) => {
  const dir = await tempDir(t);
  const { manifest, map } = dataset(4, 10 * KiB);
  const largest = 10 * KiB + 3;
  assert.throws(() => new PrefetchingShardSource(new FakeRemoteStore(map), manifest, { cacheDir: dir, cacheBytes: 15 * KiB }), (e: unknown) => {
    assert.ok(e instanceof GpufeedError && e.code === 'GPUFEED_CACHE_BUDGET');
    assert.match(e.message, new RegExp(`need at least ${2 * largest} bytes`));
    return true;
  });
  assert.throws(() => new PrefetchingShardSource(new FakeRemoteStore(map), manifest, { cacheDir: dir, cacheBytes: 100 * KiB, prefetchBytes: 1 }), /prefetchBytes/);
});
