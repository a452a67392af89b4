// Faults end to end: S3 behind a fault-injecting proxy, ranks sharing one cache dir, a rank killed
// with SIGKILL mid-download. Reuses the rank child program of cache.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Store } from '../../src/storage/s3.js';
import { ShardCache } from '../../src/cache/shard-cache.js';
import { PrefetchingShardSource } from '../../src/pipeline/prefetcher.js';
import { verifyCache, cacheStatus } from '../../src/cache/maintenance.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { readShardsThrough, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import { checkDownloadsNeverOverlap, setupDataset, spawnRank } from './cache.test.js';

const KiB = 1024;
const RANK_PROGRAM = fileURLToPath(new URL('./cache.test.ts', import.meta.url));

test('~10% of GETs faulted: two ranks (two sources in this process + one child) get every shard exactly, each downloaded once', async (t) => {
  const count = 16;
  const { server, ds, manifestPath, cacheDir, eventsPath } = await setupDataset(t, count, 48 * KiB, 2 * KiB);
  const proxy = await startFaultProxy(server.endpoint, { probability: 0.1, seed: 42, stallMs: 10_000 });
  t.after(() => proxy.close());
  const store = new S3Store('s3://data/ds', {
    endpoint: proxy.endpoint, credentials: S3RVER_CREDENTIALS, partSize: 32 * KiB, attemptTimeoutMs: 1500, hedgeMinDelayMs: 100, retryBaseMs: 10, retryMaxMs: 200,
  });
  t.after(() => store.close());
  const cacheOpts = { cacheDir, cacheBytes: 4 * ds.manifest.bytes, minFreeBytes: 0 };
  const cache = new ShardCache({ ...cacheOpts, onEvent: (e) => void import('node:fs').then((fs) => fs.appendFileSync(eventsPath, `${JSON.stringify(e)}\n`)) });
  t.after(() => cache.close());
  const a = new PrefetchingShardSource(store, ds.manifest, { cache });
  const b = new PrefetchingShardSource(store, ds.manifest, { cache });
  t.after(() => a.close());
  t.after(() => b.close());
  const order = Array.from({ length: count }, (_, i) => i);
  const [child, badA, badB] = await Promise.all([
    spawnRank(RANK_PROGRAM, { endpoint: proxy.endpoint, uri: 's3://data/ds', cacheDir, cacheBytes: cacheOpts.cacheBytes, manifestPath, order: [...order].reverse(), eventsPath }),
    readShardsThrough(a, ds.manifest, order),
    readShardsThrough(b, ds.manifest, order.map((i) => (i + 8) % count)),
  ]);
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual(child.result?.bad, []);
  assert.deepEqual(badA, []);
  assert.deepEqual(badB, []);
  // The event appends are asynchronous: wait (bounded, by count) until every download's end is in.
  let events = await checkDownloadsNeverOverlap(eventsPath);
  for (let i = 0; i < 200 && events.filter((e) => e.type === 'download-end').length < count; i++) {
    await new Promise((r) => setTimeout(r, 25));
    events = await checkDownloadsNeverOverlap(eventsPath);
  }
  const downloads = events.filter((e) => e.type === 'download-end');
  assert.equal(downloads.length, count, `downloads: ${downloads.length}`);
  const faults = Object.values(proxy.stats.faults).reduce((x, y) => x + y, 0);
  assert.ok(faults >= 2, `only ${faults} faults were injected in ${proxy.stats.gets} GETs`);
});

test('a rank killed with SIGKILL mid-download leaves nothing that breaks verify or the next run', async (t) => {
  const count = 10;
  const { server, ds, manifestPath, cacheDir, eventsPath } = await setupDataset(t, count, 256 * KiB, 16 * KiB);
  // Slow responses so the kill lands while downloads are in flight.
  const proxy = await startFaultProxy(server.endpoint, { latencyMs: 30 });
  t.after(() => proxy.close());
  const spec = { endpoint: proxy.endpoint, uri: 's3://data/ds', cacheDir, cacheBytes: 4 * ds.manifest.bytes, manifestPath, order: Array.from({ length: count }, (_, i) => i), eventsPath };
  for (const completeBefore of [0, 2, 4]) {
    // Kill once this child has finished `completeBefore` downloads and started another.
    const killed = await spawnRank(RANK_PROGRAM, spec, 30_000, (child) => {
      const poll = setInterval(() => {
        void readFile(eventsPath, 'utf8').catch(() => '').then((text) => {
          const mine = text.split('\n').filter((l) => l.includes(`"pid":${child.pid},`));
          const ends = mine.filter((l) => l.includes('"download-end"')).length;
          const starts = mine.filter((l) => l.includes('"download-start"')).length;
          if (ends >= completeBefore && starts > ends) {
            clearInterval(poll);
            child.kill('SIGKILL');
          }
        });
      }, 2);
      child.on('exit', () => clearInterval(poll));
    });
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    // Stale leftovers are cleaned and every complete entry verifies.
    const verified = await verifyCache(cacheDir);
    assert.deepEqual(verified.bad, []);
    assert.ok(verified.ok >= completeBefore);
    const status = await cacheStatus(cacheDir);
    assert.equal(status.downloading, 0);
    assert.equal(status.held, 0);
    assert.deepEqual(await readdir(join(cacheDir, 'tmp')), []);
    assert.deepEqual((await readdir(join(cacheDir, 'leases'))), []);
    assert.deepEqual((await readdir(join(cacheDir, 'locks'))), []);
  }
  const next = await spawnRank(RANK_PROGRAM, spec);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(next.result?.bad, []);
  assert.equal((await verifyCache(cacheDir)).ok, count);
});
