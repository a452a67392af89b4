// Several processes (ranks of one node) sharing one cache dir against a real S3-compatible server:
// shards downloaded once at a time, the byte budget held across processes to within one shard,
// every byte right. This file is also the child "rank" program (GPUFEED_TEST_ROLE=rank).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/storage/index.js';
import { createShardSource, type PrefetchingShardSource } from '../../src/pipeline/prefetcher.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import type { CacheEvent } from '../../src/cache/options.js';
import { readShardsThrough, startS3Server, uploadDataset, S3RVER_CREDENTIALS, type TestS3Server } from '../helpers/s3-server.js';

const KiB = 1024;
const SELF = fileURLToPath(import.meta.url);

export interface RankSpec {
  endpoint: string;
  uri: string;
  cacheDir: string;
  cacheBytes: number;
  prefetchBytes?: number;
  manifestPath: string;
  order: number[];
  eventsPath: string;
  holdMs?: number;
}

/** The child side: one rank reading its order through a fresh source; prints a JSON result line. */
async function runRank(spec: RankSpec): Promise<void> {
  const manifest = JSON.parse(await readFile(spec.manifestPath, 'utf8')) as ManifestV1;
  // Credentials come from the environment, through the SDK's standard chain.
  const store = await openStore(spec.uri, { s3Endpoint: spec.endpoint, s3: { attemptTimeoutMs: 1500, hedgeMinDelayMs: 100, retryBaseMs: 10, retryMaxMs: 200, partSize: 32 * KiB } });
  const source = createShardSource(store, manifest, {
    cacheDir: spec.cacheDir, cacheBytes: spec.cacheBytes, minFreeBytes: 0, admitTimeoutMs: 20_000,
    ...(spec.prefetchBytes ? { prefetchBytes: spec.prefetchBytes } : {}),
    onEvent: (e: CacheEvent) => appendFileSync(spec.eventsPath, `${JSON.stringify(e)}\n`),
  }) as PrefetchingShardSource;
  const bad = await readShardsThrough(source, manifest, spec.order, spec.holdMs ?? 0);
  const stats = source.stats;
  await source.close();
  await store.close();
  process.stdout.write(`${JSON.stringify({ bad, stats })}\n`);
}

// Run as the rank child, or as this file's tests; imported by fault.test.ts, neither.
const isEntry = process.argv[1] !== undefined && resolve(process.argv[1]) === SELF;
if (process.env.GPUFEED_TEST_ROLE === 'rank') {
  if (isEntry) await runRank(JSON.parse(process.env.GPUFEED_TEST_SPEC ?? '{}') as RankSpec);
} else if (isEntry) {
  registerTests();
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  result?: { bad: string[]; stats: Record<string, number> };
}

/** Spawns `file` as a rank child; `onSpawn` gets the child (to kill it). Bounded by `timeoutMs`. */
export function spawnRank(file: string, spec: RankSpec, timeoutMs = 30_000, onSpawn?: (child: import('node:child_process').ChildProcess) => void): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      env: {
        ...process.env, GPUFEED_TEST_ROLE: 'rank', GPUFEED_TEST_SPEC: JSON.stringify(spec),
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', NODE_NO_WARNINGS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rank child timed out after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      let result;
      try {
        result = line ? JSON.parse(line) : undefined;
      } catch {
        result = undefined;
      }
      resolve({ code, signal, stdout, stderr, result });
    });
  });
}

/** Real bytes under shards/ and tmp/ right now. */
export async function cacheDiskBytes(cacheDir: string): Promise<number> {
  let total = 0;
  for (const sub of ['shards', 'tmp']) {
    for (const f of await readdir(join(cacheDir, sub)).catch(() => [] as string[])) {
      total += (await stat(join(cacheDir, sub, f)).catch(() => ({ size: 0 }))).size;
    }
  }
  return total;
}

/** Events from all ranks; throws if two processes downloaded one entry at overlapping times. */
export async function checkDownloadsNeverOverlap(eventsPath: string): Promise<CacheEvent[]> {
  const events = (await readFile(eventsPath, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as CacheEvent);
  const byName = new Map<string, CacheEvent[]>();
  for (const e of events) {
    if (e.type !== 'download-start' && e.type !== 'download-end') continue;
    byName.set(e.name, [...(byName.get(e.name) ?? []), e]);
  }
  for (const [name, list] of byName) {
    list.sort((a, b) => a.time - b.time || (a.type === 'download-end' ? -1 : 1));
    let active: number | undefined;
    for (const e of list) {
      if (e.type === 'download-start') {
        assert.equal(active, undefined, `entry ${name}: pid ${e.pid} started a download while pid ${active} was downloading it`);
        active = e.pid;
      } else if (active === e.pid) active = undefined;
    }
  }
  return events;
}

export async function setupDataset(t: import('node:test').TestContext, count: number, bytes: number, step = 1024) {
  const server: TestS3Server = await startS3Server(['data']);
  t.after(() => server.close());
  const ds = await uploadDataset(server, 'data', 'ds', count, bytes, step);
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-cache-it-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, JSON.stringify(ds.manifest));
  const cacheDir = join(dir, 'cache');
  const eventsPath = join(dir, 'events.jsonl');
  return { server, ds, dir, manifestPath, cacheDir, eventsPath };
}

function rotated(n: number, by: number): number[] {
  return Array.from({ length: n }, (_, i) => (i + by) % n);
}

function registerTests(): void {
  for (const processes of [2, 4]) {
    test(`${processes} processes share one cache dir with a budget smaller than the dataset`, async (t) => {
      const count = 16;
      const { server, ds, manifestPath, cacheDir, eventsPath } = await setupDataset(t, count, 40 * KiB, 512);
      const largest = Math.max(...ds.manifest.shards.map((s) => s.bytes));
      const cacheBytes = (processes + 2) * largest;
      let maxSeen = 0;
      let sampling = true;
      const sampler = (async () => {
        for (let i = 0; sampling && i < 20_000; i++) {
          maxSeen = Math.max(maxSeen, await cacheDiskBytes(cacheDir));
          await new Promise((r) => setTimeout(r, 3));
        }
      })();
      const results = await Promise.all(
        Array.from({ length: processes }, (_, r) =>
          spawnRank(SELF, {
            endpoint: server.endpoint, uri: 's3://data/ds', cacheDir, cacheBytes, prefetchBytes: largest, manifestPath,
            order: rotated(count, r * 3), eventsPath, holdMs: 5,
          }),
        ),
      );
      sampling = false;
      await sampler;
      for (const r of results) {
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(r.result?.bad, [], r.stderr);
      }
      const events = await checkDownloadsNeverOverlap(eventsPath);
      assert.ok(maxSeen <= cacheBytes + largest, `cache held ${maxSeen} bytes, budget ${cacheBytes} + one shard ${largest}`);
      assert.ok((await cacheDiskBytes(cacheDir)) <= cacheBytes);
      const downloads = events.filter((e) => e.type === 'download-end').length;
      assert.ok(downloads >= count, `${downloads} downloads`);
      assert.ok(events.some((e) => e.type === 'evict'));
    });
  }

  test('4 processes with room for the whole dataset: each shard is downloaded exactly once', async (t) => {
    const count = 12;
    const { server, ds, manifestPath, cacheDir, eventsPath } = await setupDataset(t, count, 24 * KiB);
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, r) =>
        spawnRank(SELF, { endpoint: server.endpoint, uri: 's3://data/ds', cacheDir, cacheBytes: 4 * ds.manifest.bytes, manifestPath, order: rotated(count, r), eventsPath }),
      ),
    );
    for (const r of results) assert.deepEqual(r.result?.bad, [], r.stderr);
    const events = await checkDownloadsNeverOverlap(eventsPath);
    const perName = new Map<string, number>();
    for (const e of events) if (e.type === 'download-end') perName.set(e.name, (perName.get(e.name) ?? 0) + 1);
    assert.equal(perName.size, count);
    assert.ok([...perName.values()].every((n) => n === 1), JSON.stringify([...perName.values()]));
  });

  test('a corrupted or truncated cached file is detected and fetched again', async (t) => {
    const { server, ds, cacheDir } = await setupDataset(t, 3, 20 * KiB);
    const store = await openStore('s3://data/ds', { s3Endpoint: server.endpoint, s3: { credentials: S3RVER_CREDENTIALS } });
    t.after(() => store.close());
    const opts = { cacheDir, cacheBytes: 1024 * KiB, minFreeBytes: 0 };
    const first = createShardSource(store, ds.manifest, opts) as PrefetchingShardSource;
    assert.deepEqual(await readShardsThrough(first, ds.manifest, [0, 1, 2]), []);
    await first.close();
    // Flip one byte of a cached shard (same size), and cut another short.
    const names = (await readdir(join(cacheDir, 'shards'))).sort();
    assert.equal(names.length, 3);
    const victim = join(cacheDir, 'shards', names[0]!);
    const buf = await readFile(victim);
    buf[100] = buf[100]! ^ 0x55;
    await writeFile(victim, buf);
    await writeFile(join(cacheDir, 'shards', names[1]!), buf.subarray(0, 10));
    const second = createShardSource(store, ds.manifest, opts) as PrefetchingShardSource;
    t.after(() => second.close());
    assert.deepEqual(await readShardsThrough(second, ds.manifest, [0, 1, 2]), []);
    assert.equal(second.stats.corruptRemoved, 2);
    assert.equal(second.stats.downloads, 2);
  });
}
