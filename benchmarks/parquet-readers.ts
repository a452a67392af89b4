// Parquet reader throughput: hyparquet (+ hyparquet-compressors) vs parquetjs-lite, on files with
// the project's columns, each written twice: by gpufeed's own Parquet shard writer
// (src/formats/parquet/writer.ts, FileMetaData version 2) and by parquetjs-lite's writer (version 1, the only one its reader takes):
//  - "tokens": input_ids int32[2048] (a Parquet LIST, as gpufeed writes fixed columns), label
//    int64, text string;
//  - "scalars": 11 scalar columns (ints, floats, bool, strings) and many more rows.
// apache-arrow is listed too: Arrow JS has no Parquet reader, so it cannot take part.
//
// Run: npx tsx benchmarks/parquet-readers.ts [--rows-tokens N] [--rows-scalars N] [--codec snappy|gzip|none]
// Prints a table and writes benchmarks/results/parquet-readers.json.
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ColumnBuilder } from '../src/dataset/column-builder.js';
import { encodeShard } from '../src/dataset/encode-shard.js';
import type { ColumnSpec } from '../src/dataset/types.js';

interface ParquetjsCursor { next(): Promise<Record<string, unknown> | null> }
interface ParquetjsReader { getCursor(): ParquetjsCursor; close(): Promise<void> }
interface ParquetjsWriter { appendRow(row: Record<string, unknown>): Promise<void>; close(): Promise<void> }
const parquetjs = createRequire(import.meta.url)('parquetjs-lite') as {
  ParquetReader: { openFile(path: string): Promise<ParquetjsReader> };
  ParquetWriter: { openFile(schema: unknown, path: string, opts?: { rowGroupSize?: number }): Promise<ParquetjsWriter> };
  ParquetSchema: new (fields: Record<string, unknown>) => unknown;
};

const args = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const ROWS_TOKENS = Number(arg('--rows-tokens', '4000'));
const ROWS_SCALARS = Number(arg('--rows-scalars', '200000'));
const CODEC = arg('--codec', 'snappy');
const SEQ = 2048;

const tokenSchema: ColumnSpec[] = [
  { name: 'input_ids', dtype: 'int32', kind: 'fixed', shape: [SEQ], nullable: false },
  { name: 'label', dtype: 'int64', kind: 'scalar', nullable: false },
  { name: 'text', dtype: 'string', kind: 'bytes', nullable: false },
];

const scalarSchema: ColumnSpec[] = [
  { name: 'id', dtype: 'int64', kind: 'scalar', nullable: false },
  { name: 'a_i32', dtype: 'int32', kind: 'scalar', nullable: false },
  { name: 'b_i32', dtype: 'int32', kind: 'scalar', nullable: false },
  { name: 'c_i64', dtype: 'int64', kind: 'scalar', nullable: false },
  { name: 'd_f32', dtype: 'float32', kind: 'scalar', nullable: false },
  { name: 'e_f64', dtype: 'float64', kind: 'scalar', nullable: false },
  { name: 'f_f64', dtype: 'float64', kind: 'scalar', nullable: true },
  { name: 'g_bool', dtype: 'bool', kind: 'scalar', nullable: false },
  { name: 'h_u8', dtype: 'uint8', kind: 'scalar', nullable: false },
  { name: 'name', dtype: 'string', kind: 'bytes', nullable: false },
  { name: 'tag', dtype: 'string', kind: 'bytes', nullable: true },
];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** Writes a file with gpufeed's Parquet shard writer. */
async function writeFileOf(path: string, schema: readonly ColumnSpec[], rows: number, row: (i: number, next: () => number) => Record<string, unknown>): Promise<number> {
  const next = rng(42);
  const builders = schema.map((c) => new ColumnBuilder(c));
  for (let i = 0; i < rows; i++) {
    const r = row(i, next);
    for (const b of builders) b.append(r[b.col.name], { file: path, row: i + 1, unit: 'row' });
  }
  const shard = { rows, columns: builders.map((b) => b.finish()) };
  const { bytes } = encodeShard({ schema: schema.slice(), shard, format: 'parquet', compression: CODEC });
  await writeFile(path, bytes);
  return bytes.length;
}

/**
 * The same rows written by parquetjs-lite (FileMetaData version 1, data page v1), which is all its
 * reader accepts. Lists are its legacy REPEATED primitive; int64 travels as a JS number.
 */
async function writeParquetjsFile(path: string, schema: readonly ColumnSpec[], rows: number, row: (i: number, next: () => number) => Record<string, unknown>): Promise<number> {
  const compression = CODEC === 'none' ? 'UNCOMPRESSED' : CODEC.toUpperCase();
  const types: Record<string, string> = { int32: 'INT32', int64: 'INT64', float32: 'FLOAT', float64: 'DOUBLE', bool: 'BOOLEAN', uint8: 'UINT_8', string: 'UTF8' };
  const fields = Object.fromEntries(schema.map((c) => [c.name, {
    type: types[c.dtype], compression, ...(c.nullable ? { optional: true } : {}), ...(c.kind === 'fixed' || c.kind === 'list' ? { repeated: true } : {}),
  }]));
  const next = rng(42);
  const perRow = schema.some((c) => c.kind === 'fixed') ? SEQ * 4 : 64;
  const writer = await parquetjs.ParquetWriter.openFile(new parquetjs.ParquetSchema(fields), path, { rowGroupSize: Math.max(1, Math.floor((8 << 20) / perRow)) });
  for (let i = 0; i < rows; i++) {
    const r = row(i, next);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) out[k] = typeof v === 'bigint' ? Number(v) : ArrayBuffer.isView(v) ? Array.from(v as Int32Array) : v;
    await writer.appendRow(out);
  }
  await writer.close();
  return (await stat(path)).size;
}

interface Measure { reader: string; file: string; rows: number; seconds: number; rowsPerSec: number; mbPerSec: number; note?: string }

async function time(fn: () => Promise<number>): Promise<{ rows: number; seconds: number }> {
  const t = process.hrtime.bigint();
  const rows = await fn();
  return { rows, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

async function best(reader: string, file: string, bytes: number, runs: number, fn: () => Promise<number>): Promise<Measure> {
  let bestRun = { rows: 0, seconds: Infinity };
  for (let i = 0; i < runs; i++) {
    const r = await time(fn);
    if (r.seconds < bestRun.seconds) bestRun = r;
  }
  return {
    reader, file, rows: bestRun.rows, seconds: round(bestRun.seconds, 3),
    rowsPerSec: Math.round(bestRun.rows / bestRun.seconds), mbPerSec: round(bytes / 1e6 / bestRun.seconds, 1),
  };
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

async function readHyparquetObjects(path: string): Promise<number> {
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  let n = 0;
  // Row group by row group, as gpufeed prep reads inputs.
  let start = 0;
  for (const rg of metadata.row_groups) {
    const end = start + Number(rg.num_rows);
    n += (await parquetReadObjects({ file, metadata, rowStart: start, rowEnd: end, compressors, utf8: false })).length;
    start = end;
  }
  return n;
}

async function readHyparquetColumns(path: string): Promise<number> {
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  let n = 0;
  await parquetRead({ file, metadata, compressors, onChunk: (c) => { if (c.columnName === metadata.schema[1]!.name) n += c.rowEnd - c.rowStart; } });
  return n;
}

async function readParquetjs(path: string): Promise<number> {
  const reader = await parquetjs.ParquetReader.openFile(path);
  const cursor = reader.getCursor();
  let n = 0;
  while (await cursor.next()) n++;
  await reader.close();
  return n;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-pqbench-'));
  try {
    process.stderr.write(`writing ${ROWS_TOKENS} x int32[${SEQ}] rows and ${ROWS_SCALARS} x 11-column rows (${CODEC}), with gpufeed's writer and with parquetjs-lite's...\n`);
    const tokenRow = (i: number, next: () => number): Record<string, unknown> => {
      const ids = new Int32Array(SEQ);
      for (let k = 0; k < SEQ; k++) ids[k] = next() % 50_257;
      return { input_ids: ids, label: BigInt(i % 10), text: `sample ${i}` };
    };
    const scalarRow = (i: number, next: () => number): Record<string, unknown> => ({
      id: BigInt(i), a_i32: next() | 0, b_i32: i % 1000, c_i64: BigInt(next()), d_f32: (next() % 1000) / 8, e_f64: next() / 3,
      f_f64: i % 10 === 0 ? null : i * 0.5, g_bool: i % 3 === 0, h_u8: i % 256, name: `name-${next() % 100000}`, tag: i % 4 === 0 ? null : ['a', 'bb', 'ccc'][i % 3],
    });
    const files: { name: string; path: string; bytes: number; rows: number }[] = [];
    for (const [name, schema, rows, row] of [['tokens', tokenSchema, ROWS_TOKENS, tokenRow], ['scalars', scalarSchema, ROWS_SCALARS, scalarRow]] as const) {
      const gf = join(dir, `${name}.gpufeed.parquet`);
      files.push({ name: `${name} (gpufeed writer, v2)`, path: gf, bytes: await writeFileOf(gf, schema, rows, row), rows });
      const pj = join(dir, `${name}.parquetjs.parquet`);
      files.push({ name: `${name} (parquetjs-lite writer, v1)`, path: pj, bytes: await writeParquetjsFile(pj, schema, rows, row), rows });
    }
    const results: Measure[] = [];
    for (const f of files) {
      process.stderr.write(`reading ${f.name} (${(f.bytes / 1e6).toFixed(1)} MB)...\n`);
      results.push(await best('hyparquet objects (prep path)', f.name, f.bytes, 3, () => readHyparquetObjects(f.path)));
      results.push(await best('hyparquet columns (onChunk)', f.name, f.bytes, 3, () => readHyparquetColumns(f.path)));
      try {
        results.push(await best('parquetjs-lite cursor', f.name, f.bytes, 1, () => readParquetjs(f.path)));
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        results.push({ reader: 'parquetjs-lite cursor', file: f.name, rows: 0, seconds: 0, rowsPerSec: 0, mbPerSec: 0, note: `cannot read it: ${why}` });
      }
      results.push({ reader: 'apache-arrow', file: f.name, rows: 0, seconds: 0, rowsPerSec: 0, mbPerSec: 0, note: 'cannot read Parquet (Arrow JS reads IPC only)' });
      for (const r of results.filter((x) => x.file === f.name && x.rows > 0)) {
        if (r.rows !== f.rows) throw new Error(`${r.reader} read ${r.rows} rows of ${f.name}, expected ${f.rows}`);
      }
    }
    const header = ['file', 'reader', 'rows', 'seconds', 'rows/s', 'MB/s (file)', 'note'];
    const table = results.map((r) => [r.file, r.reader, r.rows ? String(r.rows) : '-', r.rows ? r.seconds.toFixed(3) : '-', r.rows ? String(r.rowsPerSec) : '-', r.rows ? String(r.mbPerSec) : '-', r.note ?? '']);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
    process.stdout.write(`${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${table.map(line).join('\n')}\n`);
    const outDir = join(dirname(fileURLToPath(import.meta.url)), 'results');
    await mkdir(outDir, { recursive: true });
    const report = {
      benchmark: 'parquet-readers', date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cpus: cpus().length,
      codec: CODEC, files: files.map(({ name, bytes, rows }) => ({ name, bytes, rows })), results,
    };
    await writeFile(join(outDir, 'parquet-readers.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`wrote ${join(outDir, 'parquet-readers.json')}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
