// The up-front cache budget check against real loaders reading from s3rver through one cache dir:
// a budget under what the run needs is refused at open; the budget it asks for runs whole epochs
// with admitTimeoutMs 0, i.e. no reader ever found the cache without room (any wait would fail at
// once), for one rank and for two ranks of a node sharing the cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, GpufeedError, type LoaderOptions } from '../../src/index.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';

const ROWS = 240;
const SEQ = 64;
const token = (i: number, k: number): number => (i * 7919 + k) % 65_521;

async function setup(t: import('node:test').TestContext) {
  const saved = { ...process.env };
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
  t.after(() => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-cache-budget-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => token(i, k)), label: i })).join('\n'));
  const manifest = await prepDataset([input], {
    out: 's3://data/ds', shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 8 * 1024,
    workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint },
  });
  assert.ok(manifest.shards.length >= 8, `several shards (${manifest.shards.length})`);
  const largest = Math.max(...manifest.shards.map((s) => s.bytes));
  return { dir, server, manifest, largest };
}

async function readAll(loader: Loader): Promise<number[]> {
  const ids: number[] = [];
  for await (const b of loader) {
    const tokens = b.columns.tokens as Int32Array;
    b.ids.forEach((id, i) => assert.equal(tokens[i * SEQ + 3], token(id, 3), `sample ${id}`));
    ids.push(...b.ids);
  }
  return ids;
}

function neededOf(err: unknown): number {
  assert.ok(err instanceof GpufeedError, String(err));
  assert.equal(err.code, 'GPUFEED_CACHE_BUDGET', err.message);
  assert.equal(err.details.option, 'cacheBytes');
  return err.details.needed as number;
}

test('one rank: the old minimum (window + one shard) is refused at open; the budget asked for runs 2 epochs without waiting for room', async (t) => {
  const { dir, server, largest } = await setup(t);
  const base: LoaderOptions = {
    batchSize: 8, shuffle: 'window', shuffleWindow: 32, seed: 5, epochs: 2, workers: 2, s3Endpoint: server.endpoint,
    cacheDir: join(dir, 'cache1'), minFreeBytes: 0, admitTimeoutMs: 0, localWorldSize: 1,
  };
  // What the check used to ask for: one shard being read plus a one-shard window.
  let needed = 0;
  await assert.rejects(Loader.open('s3://data/ds', { ...base, cacheBytes: 2 * largest }), (e) => { needed = neededOf(e); return true; });
  assert.ok(needed > 2 * largest, `needs ${needed}, more than two shards (${2 * largest})`);
  const loader = await Loader.open('s3://data/ds', { ...base, cacheBytes: needed });
  try {
    const ids = await readAll(loader);
    assert.equal(ids.length, 2 * ROWS);
    assert.deepEqual([...new Set(ids)].sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i));
  } finally {
    await loader.close();
  }
  // One byte less is refused up front, not after a stall.
  await assert.rejects(Loader.open('s3://data/ds', { ...base, cacheBytes: needed - 1 }), (e) => neededOf(e) === needed);
});

test('two ranks of a node sharing one cache dir: the budget covers both; both read their epoch without waiting for room', async (t) => {
  const { dir, server } = await setup(t);
  const cacheDir = join(dir, 'cache2');
  const opts = (rank: number, cacheBytes: number): LoaderOptions => ({
    batchSize: 4, shuffle: 'window', shuffleWindow: 24, seed: 9, workers: 1, s3Endpoint: server.endpoint,
    cacheDir, cacheBytes, minFreeBytes: 0, admitTimeoutMs: 0, worldSize: 2, rank, localWorldSize: 2, localRank: rank,
  });
  // Each rank checks with its own plan (its leases in flight) times the ranks of the node; a
  // budget both accept holds them together.
  let needed = 0;
  for (const rank of [0, 1]) {
    await assert.rejects(Loader.open('s3://data/ds', opts(rank, 1)), (e) => { needed = Math.max(needed, neededOf(e)); return true; });
  }
  const oneRank = await Loader.open('s3://data/ds', { ...opts(0, 1), worldSize: 1, rank: 0, localWorldSize: 1, localRank: 0 }).catch((e: unknown) => neededOf(e));
  assert.equal(typeof oneRank, 'number');
  assert.ok(needed > (oneRank as number), `two ranks need ${needed}, more than one alone (${String(oneRank)})`);
  const loaders = [await Loader.open('s3://data/ds', opts(0, needed)), await Loader.open('s3://data/ds', opts(1, needed))];
  try {
    const [a, b] = await Promise.all(loaders.map(readAll));
    const all = [...a!, ...b!].sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: ROWS }, (_, i) => i));
  } finally {
    await Promise.all(loaders.map((l) => l.close()));
  }
});
