// Variable-length Parquet columns read in place page by page (src/formats/parquet/var-column.ts,
// with the page decoder beside it): every value a loader delivers equals what DuckDB reads from
// the same file, for files DuckDB writes (every codec, pages v1 and v2, so plain, dictionary and
// delta encodings) and, when pyarrow is installed, files pyarrow writes (its defaults, small pages,
// pages v2, the delta encodings forced per column); with nulls, empty lists and empty strings; and a
// single row group of 1Mi rows reads within a small decodeCacheBytes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Loader, type Batch } from '../../src/index.js';
import { GpufeedError } from '../../src/errors.js';
import { openStore } from '../../src/storage/index.js';
import { writeManifest } from '../../src/dataset/index.js';
import { indexDataset } from '../../src/cli/index-cmd.js';
import { RowGroupCache } from '../../src/formats/parquet/row-group-cache.js';
import { loadManifest } from '../../src/dataset/index.js';
import { computeBatchLayout, isVariableLength } from '../../src/pipeline/batch-layout.js';
import { closeParquetShard, openParquetShard } from '../../src/formats/parquet/load-unit.js';
import { copyVarRun } from '../../src/formats/parquet/var-column.js';

type Expected = { ids: bigint[] | null; mask: number[] | null; text: string | null; label: bigint };

const ROWS = 3000;
// ids: some null rows, some empty lists; mask: int8 lists; text: nulls and empty strings.
const SOURCE = `SELECT
  CASE WHEN i % 17 = 3 THEN NULL WHEN i % 13 = 5 THEN []::BIGINT[] ELSE list_transform(range(i % 23), x -> (hash(i * 31 + x) % 100000)::BIGINT - 50000) END AS ids,
  CASE WHEN i % 19 = 7 THEN NULL ELSE list_transform(range(i % 11), x -> ((i + x) % 200 - 100)::TINYINT) END AS mask,
  CASE WHEN i % 29 = 1 THEN NULL WHEN i % 31 = 2 THEN '' ELSE 'row ' || i || ' ' || repeat('ab', i % 7) || chr(233) END AS text,
  (i * 7)::BIGINT AS label
FROM range(${ROWS}) t(i)`;

async function expected(conn: DuckDBConnection, file: string): Promise<Expected[]> {
  const r = await conn.runAndReadAll(`SELECT ids, mask, text, label FROM read_parquet('${file}')`);
  return r.getRowObjectsJS().map((o) => ({
    ids: o.ids === null ? null : (o.ids as bigint[]).map((v) => BigInt(v)),
    mask: o.mask === null ? null : (o.mask as number[]).map(Number),
    text: o.text as string | null,
    label: BigInt(o.label as bigint),
  }));
}

async function indexFolder(dir: string): Promise<void> {
  const store = await openStore(dir);
  try {
    await writeManifest(store, await indexDataset(store));
  } finally {
    await store.close();
  }
}

const dec = new TextDecoder();

function checkBatch(b: Batch, want: Expected[], where: string): void {
  const ids = b.columns.ids as { offsets: Int32Array; values: BigInt64Array };
  const mask = b.columns.mask as { offsets: Int32Array; values: Int8Array };
  const text = b.columns.text as { offsets: Int32Array; values: Uint8Array };
  const label = b.columns.label as BigInt64Array;
  b.ids.forEach((id, i) => {
    const w = want[id]!;
    const at = `${where}: row ${id}`;
    assert.equal(b.valid.ids![i], w.ids === null ? 0 : 1, `${at} ids validity`);
    assert.deepEqual(Array.from(ids.values.subarray(ids.offsets[i], ids.offsets[i + 1])), w.ids ?? [], `${at} ids`);
    assert.equal(b.valid.mask![i], w.mask === null ? 0 : 1, `${at} mask validity`);
    assert.deepEqual(Array.from(mask.values.subarray(mask.offsets[i], mask.offsets[i + 1])), w.mask ?? [], `${at} mask`);
    assert.equal(b.valid.text![i], w.text === null ? 0 : 1, `${at} text validity`);
    assert.equal(dec.decode(text.values.subarray(text.offsets[i], text.offsets[i + 1])), w.text ?? '', `${at} text`);
    assert.equal(label[i], w.label, `${at} label`);
  });
}

/** Loads every row (naive shuffle: rows from every page in every batch) and checks each against DuckDB. */
async function checkLoader(dir: string, want: Expected[], workers: number, where: string, decodeCacheBytes?: number): Promise<{ decodes: number; evictions: number; used: number; capacity: number }> {
  const loader = await Loader.open(dir, { batchSize: 37, workers, shuffle: 'naive', seed: 5, varRowBytes: 1024, ...(decodeCacheBytes ? { decodeCacheBytes } : {}) });
  const seen = new Set<number>();
  let used = 0;
  try {
    const cache = new RowGroupCache(loader.rowGroupCache!);
    for await (const b of loader) {
      checkBatch(b, want, where);
      for (const id of b.ids) seen.add(id);
      used = Math.max(used, cache.usedBytes);
    }
    assert.equal(seen.size, want.length, `${where}: every row once`);
    return { decodes: cache.decodes, evictions: cache.evictions, used, capacity: cache.capacityBytes };
  } finally {
    await loader.close();
  }
}

/** Every variable-length column of every row group takes the page path (no fallback to row assembly). */
async function assertInPlace(dir: string, where: string): Promise<void> {
  const store = await openStore(dir);
  const manifest = await loadManifest(store);
  await store.close();
  const shard = manifest.shards[0]!;
  if (shard.layout.kind !== 'parquet') throw new Error('not parquet');
  const maxRows = Math.max(...shard.layout.rowGroups.map((g) => g.rows));
  const layout = computeBatchLayout(manifest, manifest.schema, maxRows, 1024);
  const h = openParquetShard({ index: 0, name: shard.path, file: join(dir, shard.path), format: 'parquet', bytes: shard.bytes });
  try {
    const slot = new Uint8Array(layout.slotBytes);
    const ops = { scratch: (n: number) => new Uint8Array(n), bytesRead: 0 };
    shard.layout.rowGroups.forEach((g, unit) => {
      layout.columns.forEach((region, c) => {
        if (!isVariableLength(region.kind)) return;
        const target = { region, bytes: slot, cursor: 0 };
        assert.equal(copyVarRun(h, { shard: 0, unit, row: 0, count: g.rows, slotRow: 0 }, target, c, ops, undefined), true, `${where}: row group ${unit} column ${region.name} in place`);
      });
    });
  } finally {
    closeParquetShard(h);
  }
}

const hasPyarrow = spawnSync('python3', ['-c', 'import pyarrow'], { stdio: 'ignore' }).status === 0;

describe('variable-length Parquet columns in place, against DuckDB', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-var-'));
  let db: DuckDBInstance;
  let conn: DuckDBConnection;
  before(async () => {
    db = await DuckDBInstance.create(':memory:', { threads: '1' });
    conn = await db.connect();
  });
  after(() => {
    conn.closeSync();
    db.closeSync();
    rmSync(root, { recursive: true, force: true });
  });

  it('DuckDB-written files: every codec, pages v1 and v2, several row groups, 1 and 2 workers', async () => {
    for (const codec of ['uncompressed', 'snappy', 'zstd', 'gzip', 'brotli', 'lz4_raw']) {
      for (const version of codec === 'snappy' || codec === 'zstd' ? ['V1', 'V2'] : ['V1']) {
        const dir = join(root, `duck-${codec}-${version}`);
        mkdirSync(dir);
        const file = join(dir, 'part.parquet');
        await conn.run(`COPY (${SOURCE}) TO '${file}' (FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${version}, ROW_GROUP_SIZE 1000)`);
        await indexFolder(dir);
        const want = await expected(conn, file);
        await assertInPlace(dir, `${codec} ${version}`);
        const r = await checkLoader(dir, want, codec === 'snappy' ? 2 : 1, `${codec} ${version}`);
        assert.ok(r.decodes > 0, 'pages were decoded into the shared cache');
        assert.equal(r.evictions, 0, 'the default budget holds the whole (small) file');
      }
    }
  });

  it('pyarrow-written files: defaults, small pages, pages v2, delta encodings', { skip: !hasPyarrow && 'pyarrow is not installed' }, async () => {
    // Written from DuckDB's rows, so DuckDB reads the same values back from each file.
    const src = join(root, 'src.parquet');
    await conn.run(`COPY (${SOURCE}) TO '${src}' (FORMAT parquet)`);
    const variants: Record<string, string> = {
      defaults: '{}',
      small_pages_v2: "{'data_page_size': 2048, 'data_page_version': '2.0', 'row_group_size': 1100}",
      delta: "{'use_dictionary': False, 'data_page_size': 4096, 'column_encoding': {'ids.list.element': 'DELTA_BINARY_PACKED', 'mask.list.element': 'DELTA_BINARY_PACKED', 'text': 'DELTA_BYTE_ARRAY', 'label': 'DELTA_BINARY_PACKED'}}",
      delta_length_v2: "{'use_dictionary': False, 'data_page_size': 4096, 'data_page_version': '2.0', 'compression': 'zstd', 'column_encoding': {'text': 'DELTA_LENGTH_BYTE_ARRAY'}}",
    };
    for (const [name, kwargs] of Object.entries(variants)) {
      const dir = join(root, `pa-${name}`);
      mkdirSync(dir);
      const file = join(dir, 'part.parquet');
      execFileSync('python3', ['-c', `import pyarrow.parquet as pq\npq.write_table(pq.read_table(${JSON.stringify(src)}), ${JSON.stringify(file)}, **${kwargs})`]);
      await indexFolder(dir);
      const want = await expected(conn, file);
      await assertInPlace(dir, `pyarrow ${name}`);
      await checkLoader(dir, want, 2, `pyarrow ${name}`);
    }
  });

  /** Reads 10 batches of 64 random rows of a 1Mi-row single-row-group file, checking values and the cache's bound. */
  async function readBig(dir: string, budget: number): Promise<RowGroupCache> {
    const loader = await Loader.open(dir, { batchSize: 64, workers: 2, shuffle: 'naive', seed: 1, varRowBytes: 64, columns: ['ids', 'text'], decodeCacheBytes: budget, epochs: 1 });
    try {
      const layout = loader.manifest.shards[0]!.layout;
      assert.equal(layout.kind === 'parquet' && layout.rowGroups.length, 1);
      const cache = new RowGroupCache(loader.rowGroupCache!);
      assert.ok(cache.capacityBytes <= budget);
      let n = 0;
      for await (const b of loader) {
        const ids = b.columns.ids as { offsets: Int32Array; values: BigInt64Array };
        const text = b.columns.text as { offsets: Int32Array; values: Uint8Array };
        b.ids.forEach((id, i) => {
          assert.deepEqual(Array.from(ids.values.subarray(ids.offsets[i], ids.offsets[i + 1])), Array.from({ length: id % 5 }, (_, x) => BigInt(id * 5 + x)), `row ${id}`);
          assert.equal(dec.decode(text.values.subarray(text.offsets[i], text.offsets[i + 1])), `r${id}`);
        });
        assert.ok(cache.usedBytes <= budget);
        if (++n === 10) break;
      }
      assert.equal(n, 10);
      return cache;
    } finally {
      await loader.close();
    }
  }
  const BIG = 1 << 20;
  const BIG_SQL = `SELECT list_transform(range(i % 5), x -> (i * 5 + x)::BIGINT) AS ids, 'r' || i AS text FROM range(${BIG}) t(i)`;

  it('reads a single 1Mi-row row group (DuckDB: one page per chunk) within a small decodeCacheBytes', async () => {
    const dir = join(root, 'big');
    mkdirSync(dir);
    await conn.run(`COPY (${BIG_SQL}) TO '${join(dir, 'part.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE ${BIG})`);
    await indexFolder(dir);
    // Pages larger than the arena: each worker keeps the one it decoded last.
    const cache = await readBig(dir, 4 << 20);
    assert.equal(cache.usedBytes <= 4 << 20, true);
  });

  it('reads a single 1Mi-row row group of 1 MiB pages (pyarrow) page by page within a small decodeCacheBytes', { skip: !hasPyarrow && 'pyarrow is not installed' }, async () => {
    const dir = join(root, 'big-pa');
    mkdirSync(dir);
    const src = join(root, 'big-src.parquet');
    await conn.run(`COPY (${BIG_SQL}) TO '${src}' (FORMAT parquet)`);
    execFileSync('python3', ['-c', `import pyarrow.parquet as pq\npq.write_table(pq.read_table(${JSON.stringify(src)}), ${JSON.stringify(join(dir, 'part.parquet'))}, row_group_size=${BIG})`]);
    await indexFolder(dir);
    const cache = await readBig(dir, 4 << 20);
    assert.ok(cache.decodes > 0 && cache.evictions > 0, `pages decoded (${cache.decodes}) and evicted (${cache.evictions}) within 4 MiB`);
  });
});

describe('damaged variable-length Parquet pages', () => {
  it('raise named errors (or fall back), never crash, for bytes flipped anywhere in the column data', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gpufeed-var-bad-'));
    const db = await DuckDBInstance.create(':memory:', { threads: '1' });
    const conn = await db.connect();
    try {
      const src = join(root, 'src.parquet');
      await conn.run(`COPY (${SOURCE}) TO '${src}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 1000)`);
      const good = readFileSync(src);
      // The footer stays intact (the manifest is made from it); page headers and data are damaged.
      const footer = good.readUInt32LE(good.length - 8) + 8;
      let seed = 7;
      let named = 0;
      const next = (): number => (seed = (seed * 1103515245 + 12345) >>> 0);
      for (let trial = 0; trial < 40; trial++) {
        const dir = join(root, `t${trial}`);
        mkdirSync(dir);
        const bad = Buffer.from(good);
        for (let k = 0; k < 1 + (trial % 4); k++) {
          const at = 4 + (next() % (bad.length - footer - 4));
          bad[at] = bad[at]! ^ (1 + (next() % 255));
        }
        writeFileSync(join(dir, 'part.parquet'), bad);
        await indexFolder(dir);
        try {
          await assertInPlace(dir, `trial ${trial}`);
        } catch (err) {
          // A fallback is an assertion failure of assertInPlace; damage must be a named error.
          if (err instanceof assert.AssertionError) continue;
          assert.ok(err instanceof GpufeedError, `trial ${trial}: ${(err as Error).stack}`);
          assert.match((err as GpufeedError).code, /^GPUFEED_(SHARD_CORRUPT|UNSUPPORTED_TYPE)$/, `trial ${trial}: ${(err as Error).message}`);
          assert.match((err as Error).message, /part\.parquet/);
          named++;
        }
      }
      assert.ok(named >= 10, `${named} of 40 damaged files raised a named error`);
    } finally {
      conn.closeSync();
      db.closeSync();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
