// Driver for profiling Parquet loads outside `npm run bench`: writes (once) the bench datasets
// under DIR (gpufeed snappy Parquet, DuckDB-default Parquet, DuckDB zstd, the HF-style file) and
// runs the named cells, printing samples/s and the shared cache's decode/eviction counters.
// Usage: node dist/benchmarks/parquet-cells.js DIR FORMAT SHUFFLE COLUMNS BATCH [SECONDS]
//   FORMAT: snappy | duckdb-default | zstd | hf | hf-prepared | arrow ; SHUFFLE: none | window:N | naive,
//   or duckdb (DuckDB scanning the same files instead) ; COLUMNS: one | all
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Loader, type LoaderOptions } from '../src/pipeline/loader.js';
import { measureLoader } from '../src/pipeline/throughput.js';
import { RowGroupCache } from '../src/formats/parquet/row-group-cache.js';
import { usableCpus } from '../src/pipeline/cpus.js';
import { duckdbCopy, loadDataset, makeDatasets, warm } from './datasets.js';
import { HF_DUCKDB_SQL, makeHfDatasets } from './hf-dataset.js';
import { duckdbScan } from './duckdb-scan.js';
import { DuckDBInstance } from '@duckdb/node-api';

async function duckdbRowsOnce(sql: string, repeats: number): Promise<void> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(process.env.GPUFEED_BENCH_WORKERS ?? usableCpus()) });
  const conn = await db.connect();
  try {
    for (let r = 0; r < repeats; r++) await conn.runAndReadAll(sql);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

const [root, format, shuffle, columns, batch, seconds] = process.argv.slice(2);
if (!root || !format) throw new Error('usage: parquet-cells DIR FORMAT SHUFFLE COLUMNS BATCH [SECONDS]');
const rows = Number(process.env.GPUFEED_BENCH_ROWS ?? 16384);
if (!existsSync(join(root, 'parquet-snappy'))) await makeDatasets(root, rows);
if (!existsSync(join(root, 'parquet-duckdb-default'))) await duckdbCopy(join(root, 'parquet-snappy'), join(root, 'parquet-duckdb-default'), 'snappy', 122_880);
if (format === 'hf' && !existsSync(join(root, 'hf-indexed'))) await makeHfDatasets(root, Number(process.env.GPUFEED_BENCH_HF_ROWS ?? 12000));
const dirs: Record<string, string> = { snappy: 'parquet-snappy', 'duckdb-default': 'parquet-duckdb-default', zstd: 'parquet-zstd', hf: 'hf-indexed', 'hf-prepared': 'hf-prepared', arrow: 'arrow' };
const dir = join(root, dirs[format]!);
const manifest = await loadDataset(dir);
warm(dir, manifest);
if (shuffle === 'duckdb') {
  // DuckDB scanning the same files (every value decoded), same threads, per CPU second too.
  const files = manifest.shards.map((s) => join(dir, s.path));
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const repeats = 3;
  if (format === 'hf') await duckdbRowsOnce(HF_DUCKDB_SQL(files[0]!), repeats);
  else await duckdbScan(files, Number(process.env.GPUFEED_BENCH_WORKERS ?? usableCpus()), 0, repeats);
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1e6;
  process.stdout.write(`${(repeats * manifest.rows / cpu).toFixed(0)} samples per CPU second (${cpu.toFixed(2)} CPU s)\n${format} duckdb: ${(repeats * manifest.rows / ((performance.now() - t0) / 1e3)).toFixed(0)} samples/s\n`);
  process.exit(0);
}
const order: Partial<LoaderOptions> = shuffle === 'none' ? { shuffle: 'none' } : shuffle === 'naive' ? { shuffle: 'naive' } : { shuffle: 'window', shuffleWindow: Number((shuffle ?? 'window:4096').split(':')[1]) };
const cols = columns === 'all' ? undefined : format.startsWith('hf') ? undefined : ['input_ids'];
const loader = await Loader.open(dir, { batchSize: Number(batch ?? 64), workers: Number(process.env.GPUFEED_BENCH_WORKERS ?? usableCpus()), epochs: Infinity, ...order, columns: cols });
try {
  // A warm-up phase (first decodes), then the measured one, with the process's CPU time: on a
  // shared, loaded host samples per CPU second says more than samples per second.
  const warmSeconds = Number(process.env.GPUFEED_CELLS_WARM_SECONDS ?? 0);
  if (warmSeconds > 0) await measureLoader(loader, { maxSeconds: warmSeconds });
  const c0 = process.cpuUsage();
  const r = await measureLoader(loader, { maxSeconds: Number(seconds ?? 3) });
  const cu = process.cpuUsage(c0);
  process.stdout.write(`${(r.samples / ((cu.user + cu.system) / 1e6)).toFixed(0)} samples per CPU second (${((cu.user + cu.system) / 1e6).toFixed(2)} CPU s)\n`);
  const rgc = loader.rowGroupCache ? new RowGroupCache(loader.rowGroupCache) : undefined;
  process.stdout.write(`${format} ${shuffle} ${columns} batch ${batch}: ${r.samples_per_s.toFixed(0)} samples/s, ${(r.bytes_per_s / 1e9).toFixed(2)} GB/s, first batch ${r.first_batch_seconds.toFixed(2)} s\n`);
  if (rgc) process.stdout.write(`shared cache: ${rgc.entries} entries, ${(rgc.capacityBytes / 2 ** 20).toFixed(0)} MiB, ${rgc.decodes} decodes, ${rgc.evictions} evictions; ${r.batches} batches, read ${r.stage_seconds.read.toFixed(2)} s decode ${r.stage_seconds.decode.toFixed(2)} s\n`);
} finally {
  await loader.close();
}
