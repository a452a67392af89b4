// Differential harness: datasets whose every value is a function of its row's id (`rid`), written
// by the writers people use (pyarrow Parquet and IPC, Polars, DuckDB, read in place by `gpufeed
// index`; gpufeed's own prep to Arrow and Parquet), loaded under random loader configurations
// (seeded): column subsets in random order, batch sizes, workers, shuffles, epochs, a small decode
// cache, mmap / pread, one-off slots, two-stream mixtures, several ranks, resume mid-epoch. Every
// delivered row's every column is compared with the value its id implies, and every id must come
// exactly once per epoch (or as pad / dropLast say). A wrong value with exit 0 is the worst bug a
// loader can have; this looks for that class, not for one case.
//   GPUFEED_DIFF_CASES=N   configurations (default 10)       GPUFEED_DIFF_SEED=S  first seed
//   GPUFEED_DIFF_SEEDS=a,b,c  these seeds only      GPUFEED_DIFF_VERBOSE=1  a line per configuration
//   GPUFEED_DIFF_CASE='{...}'  rerun one configuration as printed by a failure
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Loader, isVarColumn, toArrowRecordBatch, type PackOptions, type Batch, type LoaderOptions, type MixtureInput, type ColumnSpec, type ResumeState } from '../../src/index.js';
import { prepDataset } from '../../src/dataset/index.js';
import { indexDataset, type IndexOptions } from '../../src/cli/index-cmd.js';
import { writeManifest } from '../../src/dataset/manifest.js';
import { openStore } from '../../src/storage/index.js';
import { numberToHalf } from '../../src/dataset/float16.js';
import { workerEntry } from '../../src/package-root.js';
import { ROOT } from '../fixtures/run-cli.js';
import { pythonHas } from '../helpers/python-modules.js';
import { mulberry32 } from '../helpers/seeded-random.js';
import { startS3Server, S3RVER_CREDENTIALS, type TestS3Server } from '../helpers/s3-server.js';

const SCRIPT = join(ROOT, 'test/fixtures/differential.py');
const CASES = Number(process.env.GPUFEED_DIFF_CASES ?? 10);
const SEED = Number(process.env.GPUFEED_DIFF_SEED ?? 1);
/** Rows per file of every dataset (several shards, several row groups / record batches each). */
const FILE_ROWS = [150, 1, 97, 120, 62];

// ---- the ground truth: every column as a function of rid (same as test/fixtures/differential.py)
type Scalar = number | bigint;
type Value = null | Scalar | Scalar[];
const CATS = ['alpha', 'beta', '', 'gamma', '\u03b4elta'];
const M32 = 1n << 32n;
const M64 = 1n << 64n;
const utf8 = new TextEncoder();
const bytes = (s: string): number[] => Array.from(utf8.encode(s));
const sVal = (i: number): string => (i % 211 === 0 ? 'G'.repeat(70000 + (i % 1000)) : i % 53 === 0 ? 'L'.repeat(1500 + (i % 500)) : i % 7 === 0 ? '' : `s${i}` + '\u00e9'.repeat(i % 3) + 'x'.repeat(i % 11));

export function expectedValue(column: string, i: number): Value {
  const b = BigInt(i);
  switch (column) {
    case 'rid': return b;
    case 'i8': return ((i * 37) % 256) - 128;
    case 'i16': return ((i * 7919) % 65536) - 32768;
    case 'i32': return Number((b * 2654435761n) % M32) - 2 ** 31;
    case 'i64': return b * 1000000007n - (1n << 50n);
    case 'u8': return (i * 13 + 5) % 256;
    case 'u16': return (i * 40503) % 65536;
    case 'u32': return Number((b * 2246822519n) % M32);
    case 'u64': return ((1n << 63n) + b * 6364136223846793005n) % M64;
    case 'f16': return numberToHalf(((i % 1000) - 500) / 2);
    case 'f32': return Math.fround(i * 0.25 - 100.5);
    case 'f64': return i / 7;
    case 'bo': return i % 3 === 0 ? 1 : 0;
    case 's': return bytes(sVal(i));
    case 'sn': return i % 4 === 1 ? null : bytes(i % 8 === 3 ? '' : `n${i}`);
    case 'dc': return i % 11 === 10 ? null : bytes(CATS[i % 5]!);
    case 'bn': return i % 6 === 5 ? null : Array.from({ length: i % 9 }, (_, k) => (i + k) % 256);
    case 'l': return Array.from({ length: i % 61 === 0 ? 300 : i % 6 }, (_, k) => i * 10 + k - 50);
    case 'dh': return bytes(`k${i % 300}`);
    case 'tn': return Array.from({ length: 6 }, (_, k) => ((i + 2 * (k >> 1) + (k & 1)) % 50) - 25);
    case 'ln': return i % 5 === 3 ? null : Array.from({ length: i % 4 }, (_, k) => BigInt(i + k));
    case 'fs': return [i, 0 - i, i * 0.5].map(Math.fround);
    case 't': return [i % 100, 0 - (i % 100), i % 7, 3];
    case 'ni': return i % 3 === 2 ? null : i - 1000;
    case 'nf': return i % 5 === 0 ? null : i * 1.5;
    case 'nb': return i % 7 === 6 ? null : i % 2 === 0 ? 1 : 0;
    default: throw new Error(`no ground truth for column ${column}`);
  }
}

/** Row j of a batch's column, layout-independent: null, a scalar, or the row's elements. */
function deliveredValue(b: Batch, name: string, j: number): Value {
  const valid = b.valid[name];
  if (valid && valid[j] === 0) return null;
  const data = b.columns[name]!;
  const region = b.layout.columns.find((r) => r.name === name)!;
  if (isVarColumn(data)) return Array.from(data.values.subarray(data.offsets[j]!, data.offsets[j + 1]!) as ArrayLike<Scalar>);
  if (region.kind === 'fixed') {
    const per = region.rowBytes / region.elementBytes;
    return Array.from(data.subarray(j * per, (j + 1) * per) as ArrayLike<Scalar>);
  }
  return data[j] as Scalar;
}

/** Row j of an Arrow view's column (toArrowRecordBatch), in deliveredValue's terms. */
function arrowValue(vec: { isValid(j: number): boolean; get(j: number): unknown }, dtype: string, j: number): Value {
  if (!vec.isValid(j)) return null;
  const v = vec.get(j);
  if (typeof v === 'string') return bytes(v);
  if (v instanceof Uint8Array) return Array.from(v);
  if (v !== null && typeof v === 'object' && typeof (v as { toArray?: unknown }).toArray === 'function') {
    return Array.from((v as { toArray(): ArrayLike<Scalar> }).toArray());
  }
  if (dtype === 'float16') return numberToHalf(v as number);
  return v as Scalar;
}

/** Same value; an integer the dataset's dtype carries as int64 (JSON Lines infers it) equals its number. */
function sameScalar(got: Scalar | undefined, want: Scalar): boolean {
  if (typeof got === 'bigint' && typeof want === 'number') return Number.isInteger(want) && got === BigInt(want);
  if (typeof got === 'number' && typeof want === 'bigint') return Number.isInteger(got) && BigInt(got) === want;
  return Object.is(got, want);
}

function sameValue(got: Value, want: Value): boolean {
  if (want === null || got === null) return want === got;
  if (Array.isArray(want)) return Array.isArray(got) && got.length === want.length && want.every((w, k) => sameScalar(got[k], w));
  return !Array.isArray(got) && sameScalar(got, want);
}

const show = (v: Value): string => {
  const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
  return text.length > 160 ? `${text.slice(0, 160)}... (${Array.isArray(v) ? v.length : 1} values)` : text;
};

// ---- datasets
interface Dataset {
  name: string;
  dir: string;
  /** rid of the dataset's first row: rid = base + (row within the dataset). */
  base: number;
  rows: number;
  columns: readonly ColumnSpec[];
  /** The same files on the test S3 server, when it runs. */
  s3?: string;
}

/** Every dataset's files uploaded to the test S3 server, so configurations can read them remotely. */
async function uploadAll(server: TestS3Server, datasets: Dataset[]): Promise<void> {
  for (const [k, d] of datasets.entries()) {
    const prefix = `d${k}`;
    for (const e of readdirSync(d.dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const rel = relative(d.dir, join(e.parentPath, e.name));
      await server.putObject('diff', `${prefix}/${rel}`, readFileSync(join(d.dir, rel)));
    }
    d.s3 = `s3://diff/${prefix}`;
  }
}

const totalRows = FILE_ROWS.reduce((a, b) => a + b, 0);

async function indexInPlace(dir: string, options: IndexOptions = {}): Promise<readonly ColumnSpec[]> {
  const store = await openStore(dir);
  try {
    const m = await indexDataset(store, 4, options);
    await writeManifest(store, m);
    return m.schema;
  } finally {
    await store.close();
  }
}

async function buildDatasets(root: string, diag: (m: string) => void): Promise<Dataset[]> {
  const out: Dataset[] = [];
  const write = (writer: string, dir: string, base: number): void => {
    execFileSync('python3', [SCRIPT, dir, writer, String(base), FILE_ROWS.join(',')], { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const inPlace: [string, number, string[]][] = [
    ['pa-parquet', 0, ['pyarrow']], ['pa-arrow', 100_000, ['pyarrow']], ['polars', 200_000, ['pyarrow', 'polars']], ['duckdb', 300_000, ['pyarrow', 'duckdb']],
    ['pa-stream', 700_000, ['pyarrow']], ['polars-arrow', 800_000, ['pyarrow', 'polars']],
  ];
  for (const [writer, base, modules] of inPlace) {
    if (!pythonHas(...modules)) {
      diag(`skip writer ${writer}: python3 lacks ${modules.join(', ')}`);
      continue;
    }
    const dir = join(root, writer);
    write(writer, dir, base);
    // Polars' IPC categoricals (dictionaries of string views) are not read in place: left out, as the refusal says.
    const options: IndexOptions = writer === 'polars-arrow' ? { select: { drop: ['dc', 'dh'] } } : {};
    out.push({ name: `${writer} (index)`, dir, base, rows: totalRows, columns: await indexInPlace(dir, options) });
    if (writer === 'duckdb') {
      // DuckDB writes fixed-size lists as lists: `index --shape` reads them as tensors, checked per row.
      const shaped = join(root, 'duckdb-shape');
      write(writer, shaped, 600_000);
      out.push({ name: 'duckdb (index --shape)', dir: shaped, base: 600_000, rows: totalRows, columns: await indexInPlace(shaped, { shapes: { fs: [3], t: [4] } }) });
    }
  }
  // gpufeed's own writers: prep of pyarrow Feather files (with a nested [3, 2] tensor) and of JSON
  // Lines (types and shapes given as a user would) to Arrow and Parquet, small shards and pieces.
  const sources: [string, number][] = [['pa-arrow-nested', 400_000], ['jsonl', 500_000]];
  for (const [writer, base] of sources) {
    const src = join(root, `src-${writer}`);
    write(writer, src, base);
    const inputs = readdirSync(src).sort().map((f) => join(src, f));
    const json = writer === 'jsonl';
    const typed: Partial<Parameters<typeof prepDataset>[1]> = json
      ? { types: { i8: 'int8', i16: 'int16', i32: 'int32', u8: 'uint8', u16: 'uint16', u32: 'uint32', f16: 'float16', f32: 'float32', l: 'int32', fs: 'float32', t: 'int16' }, shapes: { fs: [3], t: [4] } }
      : {};
    const preps: [string, Parameters<typeof prepDataset>[1]][] = [
      [`prep-arrow (${writer})`, { out: '', format: 'arrow', shardSize: 9000, maxBatchRows: 23 }],
      [`prep-parquet-snappy (${writer})`, { out: '', format: 'parquet', shardSize: 12000, maxBatchRows: 31, compression: 'snappy' }],
      [`prep-parquet-none (${writer})`, { out: '', format: 'parquet', shardSize: 30000, maxBatchRows: 64, compression: 'none' }],
    ];
    for (const [name, options] of preps) {
      if (json && name.startsWith('prep-parquet-none')) continue;
      const dir = join(root, name.replace(/[^a-z0-9-]+/g, '_'));
      const m = await prepDataset(inputs, { ...options, ...typed, out: dir, workers: 0, progress: false });
      out.push({ name, dir, base, rows: totalRows, columns: m.schema });
    }
  }
  return out;
}

// ---- configurations
interface Config {
  seed: number;
  /** Indices into the datasets: one, or two for a mixture. */
  streams: number[];
  /** Mixture weights (absent: each stream's rows once). */
  weights?: number[];
  columns?: string[];
  batchSize: number;
  workers: number;
  shuffle: 'none' | 'window' | 'naive';
  shuffleWindow?: number;
  loaderSeed: number;
  epochs: number;
  decodeCacheBytes?: number;
  read: 'mmap' | 'pread';
  verifyPieces: boolean;
  varRowBytes?: number;
  slots?: number;
  worldSize: number;
  ending: 'default' | 'dropLast' | 'pad';
  /** Resume: batches the first loader delivers before its state is taken (world size 1 only). */
  resumeAfter?: number;
  /** Elastic resume: the world size the rest of the run takes (same global batch). */
  resumeWorld?: number;
  partitions?: number;
  /** Read the datasets from the test S3 server through a node-local cache of this many bytes. */
  remote?: number;
  /** Also check every batch through its Arrow view (toArrowRecordBatch). */
  arrowView?: boolean;
  /** Packing: rows of this many tokens of column l (prepared datasets: they record pieceValues). */
  pack?: number;
}

/** Columns every chosen stream has with one dtype, kind and shape (a mixture needs that). */
function commonColumns(datasets: Dataset[], streams: number[]): string[] {
  const key = (c: ColumnSpec): string => `${c.dtype}/${c.kind}/${JSON.stringify(c.shape ?? [])}`;
  const first = datasets[streams[0]!]!.columns;
  return first.filter((c) => streams.every((s) => datasets[s]!.columns.some((d) => d.name === c.name && key(d) === key(c)))).map((c) => c.name);
}

function randomConfig(seed: number, datasets: Dataset[]): Config {
  const r = mulberry32(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const streams = [int(0, datasets.length - 1)];
  if (r() < 0.3) streams.push(int(0, datasets.length - 1));
  const common = commonColumns(datasets, streams);
  let columns: string[] | undefined;
  if (r() < 0.8 || streams.length > 1) {
    const shuffled = common.slice().sort(() => r() - 0.5);
    columns = shuffled.slice(0, int(1, Math.min(common.length, 8)));
  }
  const worldSize = r() < 0.2 ? int(2, 3) : 1;
  const cfg: Config = {
    seed, streams, batchSize: pick([1, 2, 3, 5, 8, 16, 31, 64, 100]), workers: int(1, 3),
    shuffle: pick(['none', 'window', 'window', 'naive'] as const), loaderSeed: int(0, 1000), epochs: int(1, 2),
    read: pick(['mmap', 'pread'] as const), verifyPieces: r() < 0.7, worldSize,
    ending: pick(['default', 'default', 'default', 'dropLast', 'pad'] as const),
  };
  if (columns) cfg.columns = columns;
  if (streams.length > 1 && r() < 0.3) cfg.weights = [int(1, 4), int(1, 4)];
  if (cfg.shuffle === 'window') cfg.shuffleWindow = pick([1, 7, 40, 100, 333, 5000]);
  if (r() < 0.5) cfg.decodeCacheBytes = pick([1, 4096, 65536, 1 << 20]);
  if (r() < 0.25) cfg.varRowBytes = pick([1, 8, 64]);
  if (r() < 0.2) cfg.slots = cfg.workers + 1;
  if (r() < 0.3) cfg.arrowView = true;
  if (datasets.every((d) => d.s3) && r() < 0.2) cfg.remote = pick([600_000, 1 << 20, 2 << 20, 64 << 20]);
  if (streams.every((k) => datasets[k]!.name.startsWith('prep-')) && r() < 0.25) {
    cfg.pack = pick([3, 16, 50]);
    delete cfg.columns;
    delete cfg.weights;
    if (cfg.ending === 'dropLast') cfg.ending = 'default';
  }
  if (worldSize > 1 && r() < 0.3 && cfg.batchSize * worldSize >= 2 * worldSize) cfg.partitions = 2 * worldSize;
  if (worldSize === 1 && r() < 0.3) {
    cfg.resumeAfter = int(1, 12);
    if (cfg.batchSize % 2 === 0 && r() < 0.4) cfg.resumeWorld = 2;
  }
  return cfg;
}

function loaderOptions(cfg: Config, rank: number): LoaderOptions & { pack?: PackOptions } {
  const o: LoaderOptions & { pack?: PackOptions } = {
    batchSize: cfg.batchSize, workers: cfg.workers, shuffle: cfg.shuffle, seed: cfg.loaderSeed, epochs: cfg.epochs,
    read: cfg.read, verifyPieces: cfg.verifyPieces, rank, worldSize: cfg.worldSize, pin: false,
  };
  if (cfg.columns) o.columns = cfg.columns;
  if (cfg.shuffleWindow !== undefined) o.shuffleWindow = cfg.shuffleWindow;
  if (cfg.decodeCacheBytes !== undefined) o.decodeCacheBytes = cfg.decodeCacheBytes;
  if (cfg.varRowBytes !== undefined) o.varRowBytes = cfg.varRowBytes;
  if (cfg.slots !== undefined) o.slots = cfg.slots;
  if (cfg.partitions !== undefined) o.partitions = cfg.partitions;
  if (cfg.pack !== undefined) o.pack = { column: 'l', length: cfg.pack };
  if (cfg.ending === 'dropLast') o.dropLast = true;
  if (cfg.ending === 'pad') o.pad = true;
  return o;
}

// ---- running one configuration
/** Ids delivered per epoch, and every wrong value found (bounded). */
interface Seen {
  perEpoch: Map<number, number[]>;
  wrong: string[];
}

function checkBatch(b: Batch, cfg: Config, datasets: Dataset[], seen: Seen): void {
  const streams = cfg.streams.map((s) => datasets[s]!);
  const names = cfg.columns ?? streams[0]!.columns.map((c) => c.name);
  assert.deepEqual(b.layout.columns.map((c) => c.name).sort(), names.slice().sort(), 'batch columns');
  const ids = (seen.perEpoch.get(b.epoch) ?? seen.perEpoch.set(b.epoch, []).get(b.epoch))!;
  const view = cfg.arrowView ? toArrowRecordBatch(b) : undefined;
  for (let j = 0; j < b.size; j++) {
    const id = b.ids[j]!;
    ids.push(id);
    let k = 0;
    let start = 0;
    while (k < streams.length - 1 && id >= start + streams[k]!.rows) start += streams[k++]!.rows;
    if (streams.length > 1 && b.stream?.[j] !== k) seen.wrong.push(`id ${id}: batch.stream ${b.stream?.[j]}, expected ${k}`);
    const rid = streams[k]!.base + (id - start);
    if (id - start < 0 || id - start >= streams[k]!.rows) seen.wrong.push(`id ${id} outside the dataset`);
    for (const name of names) {
      const got = deliveredValue(b, name, j);
      const want = expectedValue(name, rid);
      if (!sameValue(got, want) && seen.wrong.length < 20) {
        seen.wrong.push(`epoch ${b.epoch} step ${b.step} row ${j} id ${id} (${streams[k]!.name} rid ${rid}) column ${name}: got ${show(got)}, expected ${show(want)}`);
      }
      if (view) {
        const region = b.layout.columns.find((c) => c.name === name)!;
        const viewed = arrowValue(view.getChild(name)!, region.dtype, j);
        if (!sameValue(viewed, want) && seen.wrong.length < 20) {
          seen.wrong.push(`Arrow view: epoch ${b.epoch} step ${b.step} row ${j} id ${id} (${streams[k]!.name} rid ${rid}) column ${name}: got ${show(viewed)}, expected ${show(want)}`);
        }
      }
    }
  }
}

/** A packed batch: each row's segments name documents and offsets, its tokens must be theirs. */
function checkPackedBatch(b: Batch, cfg: Config, datasets: Dataset[], seen: Seen): void {
  const streams = cfg.streams.map((s) => datasets[s]!);
  const L = cfg.pack!;
  const ids = b.columns.l as Int32Array;
  const pos = b.columns.position_ids as Int32Array;
  const lens = b.columns.seq_lens as { offsets: Int32Array; values: Int32Array };
  const tokens = (seen.perEpoch.get(b.epoch) ?? seen.perEpoch.set(b.epoch, []).get(b.epoch))!;
  const docs = new Map<number, Value>();
  for (let r = 0; r < b.size && seen.wrong.length < 20; r++) {
    const segs = b.pack!.segments[r]!;
    const rowLens = Array.from(lens.values.subarray(lens.offsets[r]!, lens.offsets[r + 1]!));
    const segLens = segs.filter((_, i) => i % 3 === 2);
    if (rowLens.join() !== segLens.join()) seen.wrong.push(`epoch ${b.epoch} step ${b.step} row ${r}: seq_lens ${rowLens.join()} but segments ${segLens.join()}`);
    let at = r * L;
    for (let k = 0; k < segs.length; k += 3) {
      const [doc, offset, count] = [segs[k]!, segs[k + 1]!, segs[k + 2]!];
      let start = 0;
      let s = 0;
      while (doc >= 0 && s < streams.length - 1 && doc >= start + streams[s]!.rows) start += streams[s++]!.rows;
      const rid = streams[s]!.base + (doc - start);
      let want = docs.get(doc);
      if (doc >= 0 && want === undefined) docs.set(doc, (want = expectedValue('l', rid)));
      for (let i = 0; i < count; i++, at++) {
        const got = ids[at]!;
        const expect = doc < 0 ? 0 : (want as number[])[offset + i];
        if (pos[at] !== i || got !== expect) {
          seen.wrong.push(`epoch ${b.epoch} step ${b.step} row ${r} token ${at - r * L}: document ${doc} (rid ${rid}) offset ${offset + i}: got ${got} at position ${pos[at]}, expected ${expect} at ${i}`);
          break;
        }
        if (doc >= 0) tokens.push(doc * 1000 + offset + i);
      }
    }
    if (at !== (r + 1) * L) seen.wrong.push(`epoch ${b.epoch} step ${b.step} row ${r}: segments cover ${at - r * L} tokens, not ${L}`);
  }
}

async function consume(inputs: MixtureInput[] | string, options: LoaderOptions, cfg: Config, datasets: Dataset[], seen: Seen, stopAfter?: number): Promise<ResumeState | undefined> {
  const loader = await Loader.open(inputs as MixtureInput[], options);
  let n = 0;
  try {
    for await (const b of loader) {
      if (cfg.pack !== undefined) checkPackedBatch(b, cfg, datasets, seen);
      else checkBatch(b, cfg, datasets, seen);
      if (stopAfter !== undefined && ++n >= stopAfter) {
        const state = JSON.parse(JSON.stringify(loader.state())) as ResumeState & { epoch: number; stepsDone: number; stepsPerEpoch: number };
        // Taken after the run's last batch: nothing is left to resume (a resume there is refused, by design).
        const done = state.epoch >= cfg.epochs || (state.epoch === cfg.epochs - 1 && state.stepsDone >= state.stepsPerEpoch);
        return done ? undefined : state;
      }
    }
    return undefined;
  } finally {
    await loader.close();
  }
}

/** The problems one configuration shows (empty: every value right, every id as often as it should be). */
export async function runConfig(cfg: Config, datasets: Dataset[]): Promise<string[]> {
  const streams = cfg.streams.map((s) => datasets[s]!);
  const uri = (d: Dataset): string => (cfg.remote ? d.s3! : d.dir);
  const inputs: MixtureInput[] | string = streams.length === 1 ? uri(streams[0]!) : streams.map((d, k) => (cfg.weights ? { uri: uri(d), weight: cfg.weights[k]! } : { uri: uri(d) }));
  const seen: Seen = { perEpoch: new Map(), wrong: [] };
  // Remote: every rank's loader shares one fresh cache folder (as the ranks of a node do).
  const cacheDir = cfg.remote ? mkdtempSync(join(remoteRoot!, 'cache-')) : undefined;
  for (let rank = 0; rank < cfg.worldSize; rank++) {
    const options = loaderOptions(cfg, rank);
    if (cfg.remote) Object.assign(options, { s3Endpoint: s3Endpoint!, cacheDir: cacheDir!, cacheBytes: cfg.remote, minFreeBytes: 0 });
    if (cfg.resumeAfter !== undefined) {
      const state = await consume(inputs, options, cfg, datasets, seen, cfg.resumeAfter);
      const world = cfg.resumeWorld ?? 1;
      // The rest on `world` ranks with the same global batch: the state alone says where each starts.
      for (let r = 0; state && r < world; r++) {
        await consume(inputs, { ...options, resume: state, rank: r, worldSize: world, batchSize: cfg.batchSize / world }, cfg, datasets, seen);
      }
    } else {
      await consume(inputs, options, cfg, datasets, seen);
    }
  }
  const problems = seen.wrong.slice();
  // How often each id comes per epoch.
  const n = streams.reduce((a, d) => a + d.rows, 0);
  const global = cfg.batchSize * cfg.worldSize;
  for (let e = 0; e < cfg.epochs; e++) {
    const ids = seen.perEpoch.get(e) ?? [];
    if (cfg.pack !== undefined) {
      // Tokens (document x 1000 + offset): at most once per epoch; with pad, every one.
      const set = new Set(ids);
      if (set.size !== ids.length) problems.push(`epoch ${e}: ${ids.length - set.size} tokens delivered twice`);
      if (cfg.ending === 'pad') {
        let all = 0;
        for (const d of streams) for (let j = 0; j < d.rows; j++) all += (expectedValue('l', d.base + j) as number[]).length;
        if (set.size !== all) problems.push(`epoch ${e}: pad delivered ${set.size} of ${all} tokens`);
      }
      continue;
    }
    if (cfg.weights) {
      if (cfg.ending === 'default' && ids.length !== n) problems.push(`epoch ${e}: ${ids.length} rows, expected ${n}`);
      continue;
    }
    const counts = new Map<number, number>();
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    const expectRows = cfg.ending === 'dropLast' ? Math.floor(n / global) * global : cfg.ending === 'pad' ? Math.ceil(n / global) * global : n;
    if (ids.length !== expectRows) problems.push(`epoch ${e}: ${ids.length} rows delivered, expected ${expectRows}`);
    if (cfg.ending !== 'pad') {
      const twice = [...counts].filter(([, c]) => c > 1).map(([id]) => id);
      if (twice.length) problems.push(`epoch ${e}: ids delivered more than once: ${twice.slice(0, 10).join(', ')}`);
    }
    if (cfg.ending !== 'dropLast') {
      const missing: number[] = [];
      for (let id = 0; id < n && missing.length < 10; id++) if (!counts.has(id)) missing.push(id);
      if (missing.length) problems.push(`epoch ${e}: ids never delivered: ${missing.join(', ')}`);
    }
  }
  return problems;
}

const built = existsSync(workerEntry('decode'));
/** Set while the test S3 server runs. */
let s3Endpoint: string | undefined;
let remoteRoot: string | undefined;

test('differential: every delivered value is the one its id implies', { skip: (!pythonHas('pyarrow', 'numpy') && 'python3 with pyarrow and numpy is not installed') || (!built && 'run npm run build first (decode workers run from dist/)') }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-diff-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const datasets = await buildDatasets(root, (m) => t.diagnostic(m));
  try {
    const server = await startS3Server(['diff']);
    const saved = { AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY, AWS_REGION: process.env.AWS_REGION };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
    t.after(async () => {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
      s3Endpoint = undefined;
      await server.close();
    });
    await uploadAll(server, datasets);
    s3Endpoint = server.endpoint;
    remoteRoot = root;
  } catch (err) {
    t.diagnostic(`no remote configurations: the test S3 server did not start (${(err as Error).message})`);
  }
  const only = process.env.GPUFEED_DIFF_CASE;
  const seeds = process.env.GPUFEED_DIFF_SEEDS?.split(',').map(Number) ?? Array.from({ length: CASES }, (_, k) => SEED + k);
  const configs = only ? [JSON.parse(only) as Config] : seeds.map((seed) => randomConfig(seed, datasets));
  const failures: string[] = [];
  let skipped = 0;
  const verbose = process.env.GPUFEED_DIFF_VERBOSE === '1';
  for (const cfg of configs) {
    let problems: string[];
    try {
      problems = await runConfig(cfg, datasets);
    } catch (err) {
      const code = (err as Error & { code?: string }).code;
      // A cache budget below what the plan leases at once is refused up front, by design.
      if (cfg.remote && code === 'GPUFEED_CACHE_BUDGET') {
        skipped++;
        continue;
      }
      problems = [`threw ${code ?? ''} ${(err as Error).stack ?? String(err)}`];
    }
    if (problems.length) failures.push(`config ${JSON.stringify(cfg)} [${cfg.streams.map((s) => datasets[s]!.name).join(' + ')}]\n  ${problems.slice(0, 8).join('\n  ')}`);
    if (verbose) process.stderr.write(`diff case seed ${cfg.seed}: ${problems.length ? `FAIL ${failures.at(-1)}` : `ok ${JSON.stringify(cfg)}`}\n`);
  }
  t.diagnostic(`${configs.length} configurations over ${datasets.map((d) => d.name).join(', ')}; ${failures.length} failed, ${skipped} refused a remote cache budget too small`);
  assert.equal(failures.length, 0, failures.join('\n'));
});
