// One pass over a dataset's shards from S3 (s3rver on loopback) through a proxy that adds latency
// before every response, with a cold node-local cache, then the same pass from the warm cache.
// Prints times, their ratio, and the bytes fetched per rank.
//   npx tsx benchmarks/s3-cache.ts [--shards 32] [--shard-bytes 4MiB] [--latency-ms 30] [--ranks 2]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { S3Store } from '../src/storage/s3.js';
import { ShardCache } from '../src/cache/shard-cache.js';
import { PrefetchingShardSource } from '../src/pipeline/prefetcher.js';
import { parseBytes, formatBytes } from '../src/util/bytes.js';
import { startS3Server, uploadDataset, S3RVER_CREDENTIALS } from '../test/helpers/s3-server.js';
import { startFaultProxy } from '../test/helpers/fault-proxy.js';
import type { ManifestV1 } from '../src/dataset/types.js';

const { values } = parseArgs({
  options: {
    shards: { type: 'string', default: '32' },
    'shard-bytes': { type: 'string', default: '4MiB' },
    'latency-ms': { type: 'string', default: '30' },
    ranks: { type: 'string', default: '2' },
  },
});
const shardCount = Number(values.shards);
const shardBytes = parseBytes(values['shard-bytes'] ?? '4MiB', '--shard-bytes');
const latencyMs = Number(values['latency-ms']);
const ranks = Number(values.ranks);

interface PassResult {
  ms: number;
  bytesFetchedPerRank: number[];
  rankBytesRead: number[];
}

/** Each rank reads its own shards (round-robin split), hinting ahead like the loader will. */
async function pass(store: S3Store, manifest: ManifestV1, cacheDir: string, verifyOnFirstUse = true): Promise<PassResult> {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: ranks }, async (_, rank) => {
      // One cache instance per rank, as separate processes would have.
      const cache = new ShardCache({ cacheDir, cacheBytes: 4 * manifest.bytes, minFreeBytes: 0, verifyOnFirstUse });
      const source = new PrefetchingShardSource(store, manifest, { cache, prefetchConcurrency: 4 });
      const mine = manifest.shards.map((_, i) => i).filter((i) => i % ranks === rank);
      let read = 0;
      source.hint(mine);
      for (let k = 0; k < mine.length; k++) {
        const lease = await source.acquire(mine[k]!);
        read += (await readFile(lease.path)).length;
        lease.release();
        source.hint(mine.slice(k + 1));
      }
      const fetched = source.stats.bytesDownloaded;
      await source.close();
      await cache.close();
      return { fetched, read };
    }),
  );
  return { ms: performance.now() - started, bytesFetchedPerRank: results.map((r) => r.fetched), rankBytesRead: results.map((r) => r.read) };
}

const server = await startS3Server(['bench']);
const proxy = await startFaultProxy(server.endpoint, { latencyMs, match: () => false });
const dir = await mkdtemp(join(tmpdir(), 'gpufeed-bench-s3-'));
try {
  const { manifest } = await uploadDataset(server, 'bench', 'ds', shardCount, shardBytes, 0);
  const store = new S3Store('s3://bench/ds', { endpoint: proxy.endpoint, credentials: S3RVER_CREDENTIALS });
  const cacheDir = join(dir, 'cache');
  const cold = await pass(store, manifest, cacheDir);
  const gets = proxy.stats.gets;
  // A new process re-hashes each cached shard on first use (verifyOnFirstUse); show both.
  const warm = await pass(store, manifest, cacheDir);
  const warmNoVerify = await pass(store, manifest, cacheDir, false);
  await store.close();
  const result = {
    dataset: { shards: shardCount, shardBytes, totalBytes: manifest.bytes },
    latencyMsPerResponse: latencyMs,
    ranks,
    cold: { ms: Math.round(cold.ms), MBps: +(manifest.bytes / 1e6 / (cold.ms / 1000)).toFixed(1), bytesFetchedPerRank: cold.bytesFetchedPerRank, getRequests: gets },
    warm: { ms: Math.round(warm.ms), MBps: +(manifest.bytes / 1e6 / (warm.ms / 1000)).toFixed(1), bytesFetchedPerRank: warm.bytesFetchedPerRank, getRequests: proxy.stats.gets - gets },
    warmNoReverify: { ms: Math.round(warmNoVerify.ms), MBps: +(manifest.bytes / 1e6 / (warmNoVerify.ms / 1000)).toFixed(1) },
    coldOverWarm: +(cold.ms / warm.ms).toFixed(2),
  };
  process.stdout.write(
    `s3-cache: ${shardCount} shards x ${formatBytes(shardBytes)}, ${ranks} ranks, +${latencyMs} ms per response\n` +
      `  cold: ${result.cold.ms} ms (${result.cold.MBps} MB/s), fetched per rank: ${cold.bytesFetchedPerRank.map(formatBytes).join(', ')}, ${gets} GETs\n` +
      `  warm: ${result.warm.ms} ms (${result.warm.MBps} MB/s), fetched per rank: ${warm.bytesFetchedPerRank.map(formatBytes).join(', ')}, ${result.warm.getRequests} GETs\n` +
      `  warm without first-use re-hash: ${result.warmNoReverify.ms} ms (${result.warmNoReverify.MBps} MB/s)\n` +
      `  cold/warm: ${result.coldOverWarm}x\n${JSON.stringify(result)}\n`,
  );
} finally {
  await proxy.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
