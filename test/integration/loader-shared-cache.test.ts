// The decoded-piece cache shared by a loader's decode workers (row-group-cache.ts): Parquet
// batches are the same, values included, with 1, 2 and 3 workers and equal the Arrow batches of the
// same rows; under a small decodeCacheBytes entries are evicted and reused while the cache's bytes
// stay under its bound; when the plan's working set fits, every chunk is decoded exactly once.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, type Batch } from '../../src/index.js';
import { DEFAULT_DECODE_CACHE_BYTES, RowGroupCache, planDecodeCache } from '../../src/formats/parquet/row-group-cache.js';

const ROWS = 389;
const SEQ = 16;
const token = (i: number, k: number): number => ((i * 7919 + k * 104729) % 65_521) - 30_000;

describe('shared decoded row-group cache', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-shared-cache-'));
  const input = join(root, 'rows.jsonl');
  const arrow = join(root, 'arrow');
  const parquet = join(root, 'parquet');

  before(async () => {
    const lines = Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => token(i, k)), label: i * 3 }));
    writeFileSync(input, lines.join('\n') + '\n');
    for (const [out, format] of [[arrow, 'arrow'], [parquet, 'parquet']] as const) {
      await prepDataset([input], { out, format, shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 4000, targetBatchBytes: 500, maxBatchRows: 9, workers: 0, progress: false });
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const digest = (b: Batch): string => {
    const h = createHash('sha256');
    h.update(`${b.epoch}:${b.step}:${b.ids.join(',')}`);
    for (const name of ['tokens', 'label']) {
      const c = b.columns[name] as ArrayBufferView;
      h.update(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    }
    return h.digest('hex');
  };

  const run = async (dir: string, workers: number, decodeCacheBytes?: number, shuffleWindow = 20): Promise<{ digests: string[]; decodes: number; evictions: number; chunks: number; entries: number; capacity: number; bound: number }> => {
    const loader = await Loader.open(dir, { batchSize: 5, workers, shuffle: 'window', shuffleWindow, seed: 3, epochs: 2, columns: ['tokens', 'label'], ...(decodeCacheBytes ? { decodeCacheBytes } : {}) });
    const digests: string[] = [];
    let decodes = 0;
    let evictions = 0;
    let capacity = 0;
    let bound = 0;
    let entries = 0;
    try {
      const cache = loader.rowGroupCache ? new RowGroupCache(loader.rowGroupCache) : undefined;
      if (cache) {
        capacity = cache.capacityBytes;
        bound = loader.rowGroupCache!.data.byteLength;
        entries = cache.entries;
      }
      for await (const b of loader) {
        const tokens = b.columns.tokens as Int32Array;
        b.ids.forEach((id, i) => {
          for (let k = 0; k < SEQ; k++) assert.equal(tokens[i * SEQ + k], token(id, k), `row ${id} value ${k} of step ${b.step} (${workers} workers)`);
        });
        digests.push(digest(b));
        if (cache) assert.ok(cache.usedBytes <= bound, `cache holds ${cache.usedBytes} bytes, bound ${bound}`);
      }
      decodes = cache ? cache.decodes : 0;
      evictions = cache ? cache.evictions : 0;
    } finally {
      await loader.close();
    }
    const chunks = loader.manifest.shards.reduce((a, s) => a + (s.layout.kind === 'parquet' ? s.layout.rowGroups.length : 0), 0) * 2;
    return { digests, decodes, evictions, chunks, entries, capacity, bound };
  };

  it('gives identical Parquet batches (values too) with 1, 2 and 3 workers, equal to Arrow, under a small bound', async () => {
    const reference = await run(arrow, 1);
    // Room for about 3 of the 16-row token chunks (64 bytes a row): entries must be evicted.
    const small = 3 * 9 * SEQ * 4;
    for (const workers of [1, 2, 3]) {
      const r = await run(parquet, workers, small);
      assert.ok(r.capacity > 0, 'a Parquet loader with flat columns has a shared cache');
      assert.ok(r.capacity <= small, `capacity ${r.capacity} within decodeCacheBytes ${small}`);
      assert.equal(r.capacity, r.bound);
      assert.ok(r.evictions > 0, 'entries are evicted and reused');
      assert.ok(r.decodes > r.chunks, `decoded ${r.decodes} pieces of ${r.chunks}: some again after eviction`);
      assert.deepEqual(r.digests, reference.digests, `${workers} workers`);
    }
  });

  it('decodes every chunk exactly once over two epochs when the window covers the dataset and the budget holds it', async () => {
    const reference = await run(arrow, 1, undefined, 1000);
    for (const workers of [1, 2]) {
      const r = await run(parquet, workers, undefined, 1000);
      assert.equal(r.evictions, 0);
      assert.equal(r.decodes, r.chunks, `${r.decodes} decodes of ${r.chunks} chunks over 2 epochs`);
      assert.deepEqual(r.digests, reference.digests, `${workers} workers`);
    }
  });

  it('sizes the cache from the window, row groups and columns, within decodeCacheBytes, warning when it cannot fit', async () => {
    const loader = await Loader.open(parquet, { batchSize: 5, workers: 2, shuffle: 'window', shuffleWindow: 20, columns: ['tokens', 'label'] });
    try {
      const plan = planDecodeCache(loader.manifest, loader.layout, loader.order, 2)!;
      assert.ok(plan.arenaBytes <= DEFAULT_DECODE_CACHE_BYTES && plan.arenaBytes === plan.needBytes && plan.warning === undefined);
      // The window spans the rows of a few row groups: the cache is far smaller than the dataset's decoded bytes.
      assert.ok(plan.needBytes < ROWS * (SEQ * 4 + 8), `${plan.needBytes} bytes for a window of 20 rows`);
      const whole = planDecodeCache(loader.manifest, loader.layout, { shuffle: 'naive', shuffleWindow: 20 }, 2)!;
      assert.ok(whole.needBytes >= ROWS * (SEQ * 4 + 8), 'a full shuffle needs the whole dataset live');
      const tight = planDecodeCache(loader.manifest, loader.layout, { shuffle: 'naive', shuffleWindow: 20 }, 2, 1000)!;
      assert.equal(tight.arenaBytes, 1000);
      assert.match(tight.warning ?? '', /decodeCacheBytes/);
    } finally {
      await loader.close();
    }
    await assert.rejects(Loader.open(parquet, { batchSize: 5, decodeCacheBytes: 0 }), (e: Error & { code?: string }) => e.code === 'GPUFEED_INVALID_OPTION' && /decodeCacheBytes/.test(e.message));
    const a = await Loader.open(arrow, { batchSize: 5, workers: 2, columns: ['tokens'] });
    try {
      assert.equal(a.rowGroupCache, undefined, 'no Parquet shards: no shared cache');
    } finally {
      await a.close();
    }
  });
});
