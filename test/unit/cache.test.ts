// ShardCache on a temp dir with an in-memory "remote": admission, hashing, eviction, leases, and
// what dead processes leave behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardCache, NoRoomForPrefetch, type ShardRef } from '../../src/cache/shard-cache.js';
import { cacheEntryName, hashFromEntryName } from '../../src/cache/entry-name.js';
import { GpufeedError } from '../../src/errors.js';

const KiB = 1024;

function sha(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function fakeShard(path: string, bytes: number) {
  const data = randomBytes(bytes);
  let fetches = 0;
  let corruptNext = 0;
  const ref: ShardRef & { fetches(): number; corrupt(n: number): void; data: Buffer } = {
    datasetUri: 's3://bucket/ds',
    shard: { path, bytes, hash: sha(data) },
    data,
    async fetch(dest) {
      fetches++;
      const out = Buffer.from(data);
      if (corruptNext > 0) {
        corruptNext--;
        out[0] = out[0]! ^ 0xff;
      }
      await writeFile(dest, out);
    },
    fetches: () => fetches,
    corrupt(n) {
      corruptNext = n;
    },
  };
  return ref;
}

async function tempDir(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-cache-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A pid that certainly belongs to no process now. */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
}

test('a shard is fetched once, then served from the cache; concurrent acquires share a download', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 1024 * KiB, minFreeBytes: 0 });
  t.after(() => cache.close());
  const ref = fakeShard('a/s0.arrow', 10 * KiB);
  const h1 = await cache.acquire(ref);
  assert.ok((await readFile(h1.path)).equals(ref.data));
  assert.match(h1.path, /\.arrow$/);
  h1.release();
  const h2 = await cache.acquire(ref);
  assert.equal(h2.path, h1.path);
  h2.release();
  assert.equal(ref.fetches(), 1);
  assert.deepEqual({ hits: cache.stats.hits, downloads: cache.stats.downloads }, { hits: 1, downloads: 1 });
  // Concurrent acquires in one instance share one download.
  const ref2 = fakeShard('a/s1.arrow', 10 * KiB);
  const hs = await Promise.all([cache.acquire(ref2), cache.acquire(ref2), cache.acquire(ref2, 'pin')]);
  assert.equal(ref2.fetches(), 1);
  hs.forEach((h) => h.release());
});

test('hash mismatch: retried once, then GPUFEED_HASH_MISMATCH naming the shard; nothing partial left', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 1024 * KiB, minFreeBytes: 0 });
  t.after(() => cache.close());
  const once = fakeShard('x/once.parquet', 4 * KiB);
  once.corrupt(1);
  const h = await cache.acquire(once);
  assert.ok((await readFile(h.path)).equals(once.data));
  assert.equal(once.fetches(), 2);
  h.release();
  const bad = fakeShard('x/bad.parquet', 4 * KiB);
  bad.corrupt(2);
  await assert.rejects(cache.acquire(bad), (err: unknown) => {
    assert.ok(err instanceof GpufeedError);
    assert.equal(err.code, 'GPUFEED_HASH_MISMATCH');
    assert.match(err.message, /x\/bad\.parquet/);
    return true;
  });
  assert.deepEqual(await readdir(join(dir, 'tmp')), []);
  assert.equal((await readdir(join(dir, 'shards'))).length, 1);
});

test('LRU eviction keeps the budget and never evicts a leased shard; open fds stay readable', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 30 * KiB, minFreeBytes: 0, admitTimeoutMs: 200 });
  t.after(() => cache.close());
  const refs = Array.from({ length: 5 }, (_, i) => fakeShard(`s${i}.arrow`, 10 * KiB));
  const held = await cache.acquire(refs[0]!);
  const fd = await open(held.path, 'r');
  t.after(() => fd.close());
  for (const r of refs.slice(1)) {
    const h = await cache.acquire(r);
    h.release();
    assert.ok((await cache.usedBytes()) <= 30 * KiB);
  }
  // s0 is leased: still there although least recently used.
  const names = await readdir(join(dir, 'shards'));
  assert.ok(names.includes(cache.entryName(refs[0]!)));
  assert.equal(names.length, 3);
  held.release();
  // Now s0 is the LRU unleased entry and goes first; the fd opened before still reads it whole.
  const h5 = await cache.acquire(fakeShard('s5.arrow', 10 * KiB));
  h5.release();
  assert.ok(!(await readdir(join(dir, 'shards'))).includes(cache.entryName(refs[0]!)));
  const buf = Buffer.alloc(10 * KiB);
  await fd.read(buf, 0, buf.length, 0);
  assert.ok(buf.equals(refs[0]!.data));
});

test('budget errors: a shard larger than the budget; no room while everything is leased', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 20 * KiB, minFreeBytes: 0, admitTimeoutMs: 100 });
  t.after(() => cache.close());
  await assert.rejects(cache.acquire(fakeShard('big.arrow', 21 * KiB)), (err: unknown) => {
    assert.ok(err instanceof GpufeedError && err.code === 'GPUFEED_CACHE_BUDGET');
    assert.match(err.message, /need at least 21504 bytes/);
    return true;
  });
  const a = await cache.acquire(fakeShard('a.arrow', 10 * KiB));
  const b = await cache.acquire(fakeShard('b.arrow', 10 * KiB));
  await assert.rejects(cache.acquire(fakeShard('c.arrow', 10 * KiB), 'pin'), NoRoomForPrefetch);
  await assert.rejects(cache.acquire(fakeShard('c.arrow', 10 * KiB)), (err: unknown) => {
    assert.ok(err instanceof GpufeedError && err.code === 'GPUFEED_CACHE_BUDGET');
    assert.match(err.message, /c\.arrow/);
    assert.match(err.message, /need at least 30720 bytes/);
    return true;
  });
  a.release();
  b.release();
});

test('a reader may evict entries that are only pinned by a prefetch', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 20 * KiB, minFreeBytes: 0, admitTimeoutMs: 100 });
  t.after(() => cache.close());
  const p1 = await cache.acquire(fakeShard('p1.arrow', 10 * KiB), 'pin');
  const p2 = await cache.acquire(fakeShard('p2.arrow', 10 * KiB), 'pin');
  const r = await cache.acquire(fakeShard('r.arrow', 10 * KiB), 'lease');
  assert.ok((await cache.usedBytes()) <= 20 * KiB);
  [p1, p2, r].forEach((h) => h.release());
});

test('what dead processes leave is cleaned: stale lock broken, temp file and lease removed', async (t) => {
  const dir = await tempDir(t);
  const ref = fakeShard('d.arrow', 8 * KiB);
  const name = cacheEntryName(ref.datasetUri, ref.shard.path, ref.shard.hash);
  const dead = `${deadPid()}-0`;
  for (const sub of ['shards', 'tmp', 'locks', 'leases']) await mkdir(join(dir, sub), { recursive: true });
  await writeFile(join(dir, 'locks', `${name}.lock`), `${dead}.abc\n`);
  await writeFile(join(dir, 'locks', 'admit.lock'), `${dead}.abc\n`);
  await writeFile(join(dir, 'tmp', `${name}.${dead}.${8 * KiB}.part`), randomBytes(3000));
  // A dead process "leased" the only entry; its lease must not pin it.
  const other = fakeShard('o.arrow', 8 * KiB);
  const otherName = cacheEntryName(other.datasetUri, other.shard.path, other.shard.hash);
  await writeFile(join(dir, 'shards', otherName), other.data);
  await writeFile(join(dir, 'leases', `${dead}-1.json`), JSON.stringify({ [otherName]: { leases: 1, pins: 0 } }));
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 10 * KiB, minFreeBytes: 0, lockTimeoutMs: 2000, admitTimeoutMs: 200 });
  t.after(() => cache.close());
  const h = await cache.acquire(ref);
  assert.ok((await readFile(h.path)).equals(ref.data));
  h.release();
  assert.deepEqual(await readdir(join(dir, 'tmp')), []);
  assert.ok(!(await readdir(join(dir, 'leases'))).some((f) => f.startsWith(dead)));
  assert.deepEqual((await readdir(join(dir, 'shards'))), [name]);
});

test('cache names: dataset and path separate entries; the hash is recoverable from the name', () => {
  const hash = `sha256:${'ab'.repeat(32)}`;
  const a = cacheEntryName('s3://b/one', 'x.arrow', hash);
  const b = cacheEntryName('s3://b/two', 'x.arrow', hash);
  const c = cacheEntryName('s3://b/one', 'y.arrow', hash);
  assert.notEqual(a, b);
  assert.notEqual(a, c);
  assert.equal(hashFromEntryName(a), 'ab'.repeat(32));
  assert.throws(() => cacheEntryName('s3://b/one', 'x.arrow', 'md5:00'), /sha256/);
});

test('options are validated, naming the option', () => {
  assert.throws(() => new ShardCache({ cacheBytes: 0 }), /cacheBytes/);
  assert.throws(() => new ShardCache({ minFreeBytes: -1 }), /minFreeBytes/);
  assert.throws(() => new ShardCache({ cacheDir: '' }), /cacheDir/);
});
