// Benchmark datasets: the same rows (2048 random int32 tokens each, incompressible) as Arrow IPC,
// Parquet snappy (gpufeed's own writer) and Parquet zstd (DuckDB's writer: Node 20 has no zstd
// compressor), each a gpufeed dataset with a manifest.
import { readFileSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { hashFile, loadManifest, makeDemoDataset, writeManifest, type ColumnSpec, type ManifestV1, type ShardEntry } from '../src/dataset/index.js';
import { readParquetLayout } from '../src/formats/parquet/file.js';
import { openStore } from '../src/storage/index.js';

export const SEQ_LEN = 2048;
/** Token ids over the whole int32 range: as incompressible as real data gets. */
const VOCAB = 0x7fffffff;

export interface BenchDatasets {
  arrow: string;
  parquetSnappy: string;
  parquetZstd: string;
}

export async function loadDataset(dir: string): Promise<ManifestV1> {
  const store = await openStore(dir);
  try {
    return await loadManifest(store);
  } finally {
    await store.close();
  }
}

export function shardFiles(dir: string, manifest: ManifestV1): string[] {
  return manifest.shards.map((s) => join(dir, s.path));
}

/** Reads every shard once so later runs start with a warm page cache. */
export function warm(dir: string, manifest: ManifestV1): void {
  for (const f of shardFiles(dir, manifest)) readFileSync(f);
}

export async function makeArrow(dir: string, rows: number, shardSize = '32MiB'): Promise<void> {
  await makeDemoDataset(dir, { rows, seqLen: SEQ_LEN, format: 'arrow', vocab: VOCAB, shardSize, overwrite: true });
}

/**
 * Rewrites a gpufeed Parquet dataset with DuckDB (codec, row group size), keeping gpufeed's schema
 * in the manifest: a foreign writer's files as gpufeed would index them.
 */
export async function duckdbCopy(src: string, dst: string, codec: string, rowGroupRows: number): Promise<void> {
  const manifest = await loadDataset(src);
  await rm(dst, { recursive: true, force: true });
  await mkdir(join(dst, 'shards'), { recursive: true });
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const conn = await db.connect();
  const shards: ShardEntry[] = [];
  let fileColumns: ColumnSpec[] = [];
  try {
    for (const [i, s] of manifest.shards.entries()) {
      const rel = `shards/part-${String(i).padStart(5, '0')}.parquet`;
      const out = join(dst, rel);
      await conn.run(`COPY (SELECT * FROM read_parquet('${join(src, s.path)}')) TO '${out}' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE ${rowGroupRows})`);
      const bytes = statSync(out).size;
      const file = readFileSync(out);
      const info = await readParquetLayout(async (offset, length) => file.subarray(offset, offset + length), bytes, out);
      shards.push({ path: rel, format: 'parquet', rows: info.rows, bytes, hash: await hashFile(out), layout: info.layout });
      fileColumns = info.columns;
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  const store = await openStore(dst);
  try {
    // DuckDB writes every column OPTIONAL: the manifest must say nullable where the file may hold
    // nulls (the loader checks it against the file). Fixed shapes stay, as `index --shape` gives.
    const schema = manifest.schema.map((c) => (c.kind !== 'fixed' && fileColumns.find((f) => f.name === c.name)?.nullable ? { ...c, nullable: true } : c));
    await writeManifest(store, {
      ...manifest,
      schema,
      shards,
      rows: shards.reduce((a, s) => a + s.rows, 0),
      bytes: shards.reduce((a, s) => a + s.bytes, 0),
      createdBy: `duckdb copy (${codec})`,
    });
  } finally {
    await store.close();
  }
}

export async function makeDatasets(root: string, rows: number): Promise<BenchDatasets> {
  const d: BenchDatasets = { arrow: join(root, 'arrow'), parquetSnappy: join(root, 'parquet-snappy'), parquetZstd: join(root, 'parquet-zstd') };
  await makeArrow(d.arrow, rows);
  // Same seed, same rows: only the container differs.
  await makeDemoDataset(d.parquetSnappy, { rows, seqLen: SEQ_LEN, format: 'parquet', vocab: VOCAB, shardSize: '32MiB', overwrite: true });
  const snappy = await loadDataset(d.parquetSnappy);
  const groupRows = snappy.shards[0]?.layout.kind === 'parquet' ? snappy.shards[0].layout.rowGroups[0]?.rows ?? 1024 : 1024;
  await duckdbCopy(d.parquetSnappy, d.parquetZstd, 'zstd', groupRows);
  return d;
}
