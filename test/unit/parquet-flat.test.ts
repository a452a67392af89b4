// The flat Parquet decode path (src/formats/parquet/flat-column.ts) against hyparquet's generic row
// assembly: identical values for gpufeed's writer and DuckDB's (every codec, data pages v1 and v2,
// plain and dictionary encodings), and a clean fallback where a column is not fixed-shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DuckDBInstance } from '@duckdb/node-api';
import { makeDemoDataset, loadManifest } from '../../src/dataset/index.js';
import { openStore } from '../../src/storage/index.js';
import { computeBatchLayout } from '../../src/pipeline/batch-layout.js';
import { decodeFlatColumn } from '../../src/formats/parquet/flat-column.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';

const SEQ = 16;

async function check(file: string, expectFlat: boolean): Promise<void> {
  const buf = readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const metadata = parquetMetadata(ab);
  const rows = await parquetReadObjects({ file: ab, columns: ['input_ids'], compressors });
  const schema = [{ name: 'input_ids', dtype: 'int32' as const, kind: 'fixed' as const, shape: [SEQ], nullable: false }];
  const layout = computeBatchLayout({ shards: [] } as never, schema, 1);
  const region = layout.columns[0]!;
  const fd = openSync(file, 'r');
  try {
    const ref: ShardRef = { index: 0, name: file, file, format: 'parquet', bytes: buf.length };
    let row = 0;
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const flat = decodeFlatColumn(fd, ref, metadata, g, region);
      if (!expectFlat) {
        assert.equal(flat, undefined, 'ragged column must fall back');
        return;
      }
      assert.ok(flat, `row group ${g} of ${file} should decode flat`);
      const values = new Int32Array(flat.bytes.buffer, flat.bytes.byteOffset, flat.bytes.byteLength / 4);
      const n = Number(metadata.row_groups[g]!.num_rows);
      for (let r = 0; r < n; r++, row++) {
        assert.deepEqual(Array.from(values.subarray(r * SEQ, (r + 1) * SEQ)), Array.from(rows[row]!.input_ids as ArrayLike<number>), `row ${row}`);
      }
    }
    assert.equal(row, rows.length);
  } finally {
    closeSync(fd);
  }
}

test('flat Parquet decode matches hyparquet for gpufeed and DuckDB writers, every codec, pages v1/v2, plain and dictionary', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-flat-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // gpufeed's own writer (plain pages v1, snappy), several row groups.
  await makeDemoDataset(join(dir, 'g'), { rows: 3000, seqLen: SEQ, format: 'parquet', shardSize: 64 << 10, vocab: 0x7fffffff });
  const store = await openStore(join(dir, 'g'));
  const manifest = await loadManifest(store);
  await store.close();
  for (const s of manifest.shards) await check(join(dir, 'g', s.path), true);

  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  t.after(() => { conn.closeSync(); db.closeSync(); });
  // Random values (plain) and few distinct values (DuckDB picks dictionary encoding).
  const sources = {
    random: `SELECT list_transform(range(${SEQ}), x -> (hash(i * 1000 + x) % 2147483647)::INTEGER) AS input_ids FROM range(2500) t(i)`,
    dict: `SELECT list_transform(range(${SEQ}), x -> ((i * 7 + x) % 50)::INTEGER) AS input_ids FROM range(2500) t(i)`,
    ragged: `SELECT list_transform(range(1 + i % 5), x -> x::INTEGER) AS input_ids FROM range(100) t(i)`,
    // As many values and rows as the shape gives, the rows starting in the wrong places (15 + 17).
    shifted: `SELECT list_transform(range(${SEQ} - 1 + 2 * (i % 2)), x -> x::INTEGER) AS input_ids FROM range(100) t(i)`,
  };
  for (const [name, sql] of Object.entries(sources)) {
    for (const codec of ['uncompressed', 'snappy', 'gzip', 'zstd', 'brotli', 'lz4_raw']) {
      for (const version of ['V1', 'V2']) {
        const file = join(dir, `${name}-${codec}-${version}.parquet`);
        await conn.run(`COPY (${sql}) TO '${file}' (FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${version}, ROW_GROUP_SIZE 1000)`);
        await check(file, name !== 'ragged' && name !== 'shifted');
      }
    }
  }
});
