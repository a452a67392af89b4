// `npm run bench`: gpufeed against its ceiling and its peers, each ratio measured side by side in
// this one run on the same data (rows of 2048 random int32 tokens, window shuffle). Prints a table
// and writes benchmarks/results/bench.json. Every loop is bounded by time or count.
import { execFile } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Loader, type LoaderOptions } from '../src/pipeline/loader.js';
import { prepDataset } from '../src/dataset/index.js';
import { measureLoader, type MeasureOptions, type ThroughputResult } from '../src/pipeline/throughput.js';
import { usableCpus } from '../src/pipeline/cpus.js';
import { duckdbCopy, loadDataset, makeArrow, makeDatasets, SEQ_LEN, shardFiles, warm } from './datasets.js';
import { preadCeiling } from './pread-ceiling.js';
import { duckdbScan } from './duckdb-scan.js';
import { naiveArrowLoader } from './naive-loader.js';
import { HF_DUCKDB_SQL, makeHfDatasets } from './hf-dataset.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { measureCli, measureNode, measureStartup, median } from './startup.js';
import { metricsOverhead } from './metrics-overhead.js';
import { imageBench } from './images.js';
import { mixturePlanScale } from './plan-scale.js';
import { packingBench, PACK_LENGTH } from './packing.js';
import { varlenGatherBench } from './varlen-gather.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROWS = Number(process.env.GPUFEED_BENCH_ROWS ?? 16384);
const WORKERS = Number(process.env.GPUFEED_BENCH_WORKERS ?? usableCpus());
const BATCH = 64;
/** Window shuffle over 4096 samples: a few work units live at a time, as in real training. */
const WINDOW = 4096;
const SECONDS = Number(process.env.GPUFEED_BENCH_SECONDS ?? 2);
const ROUNDS = 2;
/** Rows of the HF-style single-row-group Parquet file (section 6). */
const HF_ROWS = Number(process.env.GPUFEED_BENCH_HF_ROWS ?? 12000);
/** Comma list of sections to run (1-11, metrics, varlen); all by default. */
const ONLY = new Set((process.env.GPUFEED_BENCH_ONLY ?? '1,2,3,4,5,6,7,8,9,10,11,metrics,varlen').split(','));
/** Fresh processes per side of the start-up section (8). */
const STARTUP_RUNS = Number(process.env.GPUFEED_BENCH_STARTUP_RUNS ?? 5);
/** Start-up goals (issue 11): JS first batch after Loader.open; the Python client's, over the JS one; --version. */
const JS_FIRST_BATCH_GOAL_S = 0.2;
const PY_OVER_JS_GOAL_S = 0.3;
const VERSION_GOAL_S = 0.25;
/** Seconds per cell of the configuration matrix (section 7). */
const MATRIX_SECONDS = Number(process.env.GPUFEED_BENCH_MATRIX_SECONDS ?? 2);

interface Row { name: string; gpufeed: string; reference: string; ratio: number | null; goal: string; pass: boolean | null; note?: string }

const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB/s`;
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;

function loaderOptions(extra: Partial<LoaderOptions> = {}): LoaderOptions {
  return { batchSize: BATCH, workers: WORKERS, shuffle: 'window', shuffleWindow: WINDOW, columns: ['input_ids'], epochs: Infinity, ...extra };
}

async function gpufeed(dir: string, extra: Partial<LoaderOptions> = {}, measure: MeasureOptions = {}): Promise<ThroughputResult> {
  const loader = await Loader.open(dir, loaderOptions(extra));
  try {
    return await measureLoader(loader, { maxSeconds: SECONDS, ...measure });
  } finally {
    await loader.close();
  }
}

/** gpufeed after a 1 s warm-up on the same loader: the steady rate, without the loader's one-time costs. */
async function gpufeedWarm(dir: string, extra: Partial<LoaderOptions> = {}): Promise<ThroughputResult> {
  const loader = await Loader.open(dir, loaderOptions(extra));
  try {
    await measureLoader(loader, { maxSeconds: 1 });
    return await measureLoader(loader, { maxSeconds: SECONDS });
  } finally {
    await loader.close();
  }
}

/** Runs a and b alternately, `rounds` times each, and keeps the best of each (noisy shared host). */
async function sideBySide<A extends { bytes_per_s: number }, B extends { bytes_per_s: number }>(a: () => Promise<A>, b: () => Promise<B>, rounds = ROUNDS): Promise<[A, B]> {
  let ba: A | undefined;
  let bb: B | undefined;
  for (let r = 0; r < rounds; r++) {
    const x = await a();
    if (!ba || x.bytes_per_s > ba.bytes_per_s) ba = x;
    const y = await b();
    if (!bb || y.bytes_per_s > bb.bytes_per_s) bb = y;
  }
  return [ba!, bb!];
}

interface ChildResult { peak_rss_bytes: number; batches: number; samples: number; samples_per_s: number; bytes_per_s: number }

async function childRss(dir: string, epochs: number | 'inf', columns = 'input_ids', window = WINDOW, seconds = 60): Promise<ChildResult> {
  const args = [join(here, 'rss-child.js'), dir, String(epochs), String(WORKERS), String(BATCH), String(window), columns, String(seconds)];
  const { stdout } = await promisify(execFile)(process.execPath, args, { timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as ChildResult;
}

interface EpochRss { epoch: number; rows: number; rss: number; RssAnon?: number; RssFile?: number; RssShmem?: number }

/** Epochs of the flat-memory rows (section 5). */
const RSS_EPOCHS = 100;

/** The flat-memory dataset of test/integration/loader-rss.test.ts: 2,000 rows, 63 batches of 32 an epoch. */
async function makeEpochRssDataset(root: string): Promise<string> {
  const input = join(root, 'rss-epochs.jsonl');
  await writeFile(input, Array.from({ length: 2000 }, (_, i) => JSON.stringify({ tokens: Array.from({ length: 64 }, (_, k) => i + k), text: `t${i}`.repeat(i % 13) })).join('\n'));
  const dir = join(root, 'rss-epochs');
  await prepDataset([input], { out: dir, format: 'arrow', shapes: { tokens: [64] }, shardSize: '48KiB', workers: 0, progress: false });
  return dir;
}

/** RSS after each epoch: the JS Loader in a child (rss-epochs-child.ts) or the Python client's server (server-rss-epochs.py). */
async function epochRss(kind: 'js' | 'python', dir: string): Promise<EpochRss[]> {
  const [cmd, args] = kind === 'js'
    ? [process.execPath, [join(here, 'rss-epochs-child.js'), dir, String(RSS_EPOCHS), String(WORKERS), '32', 'window']]
    : ['python3', [join(here, '..', '..', 'benchmarks', 'server-rss-epochs.py'), dir, String(RSS_EPOCHS), '32', String(WORKERS)]];
  const { stdout } = await promisify(execFile)(cmd, args, { timeout: 300_000, maxBuffer: 16 << 20 });
  return stdout.trim().split('\n').map((l) => JSON.parse(l) as EpochRss);
}

/** Max RSS from epoch 2 on over RSS at epoch 2, and the same from epoch 40 (after V8's heaps settled). */
function epochRssRatios(epochs: EpochRss[]): { at2: number; max: number; maxEpoch: number; ratio: number; at40: number; max40: number; ratio40: number } {
  const from = (e: number) => epochs.slice(e).reduce((a, x) => (x.rss > a.rss ? x : a));
  const worst = from(2);
  const late = from(40);
  return { at2: epochs[2]!.rss, max: worst.rss, maxEpoch: worst.epoch, ratio: worst.rss / epochs[2]!.rss, at40: epochs[40]!.rss, max40: late.rss, ratio40: late.rss / epochs[40]!.rss };
}

/** DuckDB scanning a file with WORKERS threads, best of `repeats`, in samples/s. */
async function duckdbRows(sql: string, rows: number, repeats: number): Promise<{ seconds: number; samples_per_s: number; checksum: string }> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(WORKERS) });
  const conn = await db.connect();
  try {
    let best = Infinity;
    let checksum = '';
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      checksum = String((await conn.runAndReadAll(sql)).getRows()[0]?.[0]);
      best = Math.min(best, (performance.now() - t0) / 1e3);
    }
    return { seconds: best, samples_per_s: rows / best, checksum };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/**
 * 9. Planning one rank's epoch of a 3-stream, 100 M-document mixture for 1,024 ranks, over
 * partition counts (benchmarks/plan-scale.ts): the slowest case's time and peak heap + buffers.
 */
function mixturePlanRows(rows: Row[], details: Record<string, unknown>): void {
  log('10 planning a 3-stream mixture of 100 M documents, 1,024 ranks, partitions 1 to 4,096');
  const r = mixturePlanScale();
  // The few-partition cases on their own rows: every rank of a shared partition hashes all its keys.
  for (const c of r.cases.filter((x) => x.partitions === 1 || x.partitions === 8)) {
    rows.push({ name: `mixture plan, ${c.partitions} partition${c.partitions === 1 ? '' : 's'}: rank epoch (s), peak ${c.peakMB.toFixed(0)} MB`, gpufeed: `${(c.ms / 1e3).toFixed(2)} s`, reference: '2 s', ratio: c.ms / 2000, goal: '<= 1', pass: c.ms <= 2000 && c.peakMB <= 500, note: `${(c.cpuMs / 1e3).toFixed(2)} CPU s` });
  }
  rows.push({ name: 'mixture plan, 3 streams, 100 M docs, 1,024 ranks: slowest rank epoch (s)', gpufeed: `${(r.worstMs / 1e3).toFixed(2)} s`, reference: '2 s', ratio: r.worstMs / 2000, goal: '<= 1', pass: r.worstMs <= 2000 });
  rows.push({ name: 'mixture plan: peak heap + buffers (MB)', gpufeed: `${r.worstPeakMB.toFixed(0)} MB`, reference: '500 MB', ratio: r.worstPeakMB / 500, goal: '<= 1', pass: r.worstPeakMB <= 500 });
  details.mixture_plan = r;
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/**
 * Rows of the first-epoch checksum dataset (8 x the bench rows, 1.07 GB): the row is about the cost
 * per byte of hashing every piece once, and each run is a fresh loader, whose one-time costs with
 * checksums on (the piece checks' code compiled in every worker, about 0.1 CPU s a run) would
 * otherwise weigh as much as the hashing on a dataset that lasts half a second.
 */
const FIRST_EPOCH_ROWS = Number(process.env.GPUFEED_BENCH_FIRST_EPOCH_ROWS ?? 8 * ROWS);

/** CPU seconds (every thread) per GB delivered after the first batch: what a ratio would be with the cores to ourselves. */
const cpuPerGb = (r: ThroughputResult): number => r.cpu_seconds / Math.max(1e-9, (r.bytes * (r.batches - 1)) / Math.max(1, r.batches) / 1e9);

/**
 * Piece checksums (on by default) against none: steady, on the bench data (a fresh loader per run,
 * measured for 2 s after a 1 s warm-up in which it hashes every piece and compiles its checks: a
 * training run's rate), and over the first epoch of a dataset FIRST_EPOCH_ROWS long, where every
 * piece is hashed (the first pass, start-up costs included in the whole-run ratio). Each side's rate is its best run; its CPU per GB the median of its runs
 * (CPU time moves less than wall time with the host's load).
 */
async function checksumRows(root: string, steadyDir: string, rows: Row[]): Promise<Record<string, unknown>> {
  const offRuns: ThroughputResult[] = [];
  const onRuns: ThroughputResult[] = [];
  const [unchecked, checked] = await sideBySide(
    async () => { const r = await gpufeedWarm(steadyDir, { verifyPieces: false }); offRuns.push(r); return r; },
    async () => { const r = await gpufeedWarm(steadyDir); onRuns.push(r); return r; },
    2 * ROUNDS + 1,
  );
  const rv = checked.bytes_per_s / unchecked.bytes_per_s;
  const cpuSteady = median(onRuns.map(cpuPerGb)) / median(offRuns.map(cpuPerGb));
  rows.push({ name: 'Arrow: piece checksums on / off (verifyPieces), steady (after 1 s)', gpufeed: gb(checked.bytes_per_s), reference: gb(unchecked.bytes_per_s), ratio: rv, goal: '>= 0.95', pass: rv >= 0.95 });
  rows.push({ name: 'Arrow: piece checksums off / on, steady, CPU seconds per GB (median)', gpufeed: `${median(onRuns.map(cpuPerGb)).toFixed(3)} s/GB`, reference: `${median(offRuns.map(cpuPerGb)).toFixed(3)} s/GB`, ratio: 1 / cpuSteady, goal: 'report', pass: null });
  const bigDir = join(root, 'arrow-first-epoch');
  await makeArrow(bigDir, FIRST_EPOCH_ROWS);
  warm(bigDir, await loadDataset(bigDir));
  const offEpochs: ThroughputResult[] = [];
  const onEpochs: ThroughputResult[] = [];
  const firstEpoch = async (verifyPieces: boolean, into: ThroughputResult[]) => {
    const r = await gpufeed(bigDir, { verifyPieces, epochs: 1 }, { maxSeconds: 60 });
    into.push(r);
    return r;
  };
  const [offEpoch, onEpoch] = await sideBySide(() => firstEpoch(false, offEpochs), () => firstEpoch(true, onEpochs), 2 * ROUNDS + 1);
  const re = onEpoch.bytes_per_s / offEpoch.bytes_per_s;
  const reWhole = onEpoch.whole_bytes_per_s / offEpoch.whole_bytes_per_s;
  const cpuEpoch = median(onEpochs.map(cpuPerGb)) / median(offEpochs.map(cpuPerGb));
  rows.push({ name: `Arrow: first epoch (${FIRST_EPOCH_ROWS} rows), piece checksums on / off`, gpufeed: gb(onEpoch.bytes_per_s), reference: gb(offEpoch.bytes_per_s), ratio: re, goal: '>= 0.95', pass: re >= 0.95 });
  rows.push({ name: 'Arrow: first epoch, checksums off / on, CPU seconds per GB (median)', gpufeed: `${median(onEpochs.map(cpuPerGb)).toFixed(3)} s/GB`, reference: `${median(offEpochs.map(cpuPerGb)).toFixed(3)} s/GB`, ratio: 1 / cpuEpoch, goal: 'report', pass: null });
  const extraCpu = median(onEpochs.map((r) => r.cpu_seconds)) - median(offEpochs.map((r) => r.cpu_seconds));
  log(`first epoch, piece checksums on / off: ${re.toFixed(3)} from the first batch, ${reWhole.toFixed(3)} for the whole run (start-up included); checksums added ${extraCpu.toFixed(2)} CPU s a run (median)`);
  await rm(bigDir, { recursive: true, force: true });
  return { on: checked, off: unchecked, cpu_per_gb: { on: onRuns.map(cpuPerGb), off: offRuns.map(cpuPerGb) }, first_epoch: { rows: FIRST_EPOCH_ROWS, on: onEpoch, off: offEpoch, whole_ratio: reWhole, cpu_per_gb: { on: onEpochs.map(cpuPerGb), off: offEpochs.map(cpuPerGb) } } };
}

/** Metrics and stall watch on (scraped every 100 ms) over off: the steady rate should not move. */
async function metricsSection(root: string, rows: Row[], details: Record<string, unknown>): Promise<void> {
  log('metrics: loader with a scraped metrics endpoint and the stall watch vs without');
  const m = await metricsOverhead(root, { rows: 4096, seconds: SECONDS, rounds: ROUNDS, loader: loaderOptions({ epochs: Infinity }) });
  const sps = (x: number): string => `${x.toFixed(0)} samples/s`;
  rows.push({ name: `Metrics: scraped every 100 ms (${m.scrapes} scrapes) + stall watch, over neither`, gpufeed: sps(m.with.samples_per_s), reference: sps(m.without.samples_per_s), ratio: m.ratio, goal: '>= 0.95', pass: m.ratio >= 0.95 });
  details.metrics = m;
}

/** 11. Packing to 2,048 tokens on the fly against the same tokens pre-packed (benchmarks/packing.ts). */
async function packingSection(rows: Row[], details: Record<string, unknown>): Promise<void> {
  log('11 packing: documents of 1 to 10,240 tokens packed to 2,048 (one dataset, and as a 3-stream mixture) against the same tokens pre-packed in Arrow');
  const r = await packingBench({ seconds: SECONDS, rounds: ROUNDS, workers: WORKERS });
  const rps = (x: number): string => `${x.toFixed(0)} rows/s`;
  rows.push({ name: `Packing to ${PACK_LENGTH} tokens (one dataset) / pre-packed Arrow, rows/s`, gpufeed: rps(r.packed.samples_per_s), reference: rps(r.prepacked.samples_per_s), ratio: r.ratio, goal: '>= 0.7', pass: r.ratio >= 0.7, note: `CPU/row ${r.cpuPerRow.packed.toFixed(1)} us vs ${r.cpuPerRow.prepacked.toFixed(1)} us` });
  rows.push({ name: `Packing a 3-stream mixture to ${PACK_LENGTH} tokens / pre-packed Arrow, rows/s`, gpufeed: rps(r.mixture.samples_per_s), reference: rps(r.prepacked.samples_per_s), ratio: r.mixtureRatio, goal: '>= 0.7', pass: r.mixtureRatio >= 0.7, note: `CPU/row ${r.cpuPerRow.mixture.toFixed(1)} us vs ${r.cpuPerRow.prepacked.toFixed(1)} us` });
  details.packing = {
    tokens: r.tokens, documents: r.documents, dropped_tokens_per_epoch: r.droppedTokens, packed: r.packed, prepacked: r.prepacked,
    mixture: r.mixture, mixture_expected_dropped_tokens_per_epoch: r.mixtureDroppedTokens, cpu_us_per_row: r.cpuPerRow, warmup_seconds: r.warmupSeconds,
  };
}

/** The decode gather of variable-length rows against fixed-shape rows, per CPU second, one thread (benchmarks/varlen-gather.ts). */
async function varlenSection(rows: Row[], details: Record<string, unknown>): Promise<void> {
  log('varlen: gathering shuffled list<int32> rows against fixed [2048] int32 rows into a slot, one thread');
  const r = await varlenGatherBench({ seconds: Math.min(SECONDS, 1), rounds: 3 });
  const mbs = (x: number): string => `${(x / 1e6).toFixed(0)} MB/CPU-s`;
  const rowsRatio = r.list.rows_per_cpu_s / r.fixed.rows_per_cpu_s;
  rows.push({ name: `Gather (${r.read}), list<int32> documents / fixed [2048] rows, value bytes per CPU-s`, gpufeed: mbs(r.list.bytes_per_cpu_s), reference: mbs(r.fixed.bytes_per_cpu_s), ratio: r.ratio, goal: 'report', pass: null, note: `rows per CPU-s ratio ${rowsRatio.toFixed(3)}` });
  details.varlen_gather = r;
}

async function main(): Promise<void> {
  const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, usable_cpus: usableCpus(), node: process.version, platform: `${process.platform} ${process.arch}` };
  const root = await mkdtemp(join(tmpdir(), 'gpufeed-bench-'));
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  const matrixLines: string[] = [];
  const started = performance.now();
  try {
    if (ONLY.has('1') || ONLY.has('2') || ONLY.has('3') || ONLY.has('4') || ONLY.has('7') || ONLY.has('8')) {
    log(`writing ${ROWS} rows x ${SEQ_LEN} int32 as Arrow, Parquet snappy (gpufeed), Parquet zstd (DuckDB) in ${root}`);
    const ds = await makeDatasets(root, ROWS);
    const arrow = await loadDataset(ds.arrow);
    const snappy = await loadDataset(ds.parquetSnappy);
    const zstd = await loadDataset(ds.parquetZstd);
    for (const [d, m] of [[ds.arrow, arrow], [ds.parquetSnappy, snappy], [ds.parquetZstd, zstd]] as const) warm(d, m);
    const payload = ROWS * SEQ_LEN * 4;

    // 8. Start-up: fresh processes, JS and Python alternately, before the long sections heat the host.
    if (ONLY.has('8')) {
      log(`8/8 start-up (${STARTUP_RUNS} fresh processes each: JS loader, Python client, gpufeed --version)`);
      const su = await measureStartup({ dir: ds.arrow, workers: WORKERS, batchSize: BATCH, runs: STARTUP_RUNS, python: true });
      const version = await measureCli(['--version'], STARTUP_RUNS);
      const bare = await measureNode(['-e', '0'], STARTUP_RUNS);
      const js = median(su.js_first_batch_s);
      const py = median(su.python_first_batch_s);
      const v = median(version);
      const s2 = (x: number): string => `${x.toFixed(3)} s`;
      rows.push({ name: `Start-up: first batch after Loader.open, local Arrow (JS, median of ${STARTUP_RUNS} processes)`, gpufeed: `${s2(js)} (${s2(median(su.js_cpu_s))} CPU)`, reference: `goal ${s2(JS_FIRST_BATCH_GOAL_S)}`, ratio: js / JS_FIRST_BATCH_GOAL_S, goal: '<= 1', pass: js <= JS_FIRST_BATCH_GOAL_S });
      rows.push({ name: 'Start-up: Python client first batch after Loader(), over the JS one', gpufeed: s2(py), reference: `JS ${s2(js)} + goal ${s2(PY_OVER_JS_GOAL_S)}`, ratio: (py - js) / PY_OVER_JS_GOAL_S, goal: '<= 1', pass: py - js <= PY_OVER_JS_GOAL_S });
      rows.push({ name: 'Start-up: gpufeed --version', gpufeed: s2(v), reference: `goal ${s2(VERSION_GOAL_S)}`, ratio: v / VERSION_GOAL_S, goal: '<= 1', pass: v <= VERSION_GOAL_S });
      // Not a goal: how slow this host's load makes any process start, to read the three rows above by.
      rows.push({ name: 'Start-up: node -e 0 (this host now, for reference)', gpufeed: s2(median(bare)), reference: '-', ratio: null, goal: 'report', pass: null });
      details.startup = { ...su, version_s: version, node_e0_s: bare };
    }

    // 7. Configuration matrix: format x shuffle x columns x batch, each cell as a ratio to the best
    // cell of its format (a slow corner shows as a small ratio). One short run per cell, a fresh
    // loader each: a cell's rate includes decoding its working set the first time.
    if (ONLY.has('7')) {
      log('7/7 configuration matrix');
      const duckDefault = join(root, 'parquet-duckdb-default');
      await duckdbCopy(ds.parquetSnappy, duckDefault, 'snappy', 122_880);
      warm(duckDefault, await loadDataset(duckDefault));
      const formats: [string, string][] = [['Arrow', ds.arrow], ['gpufeed Parquet', ds.parquetSnappy], ['DuckDB-default Parquet', duckDefault]];
      const shuffles: [string, Partial<LoaderOptions>][] = [
        ['none', { shuffle: 'none' }], ['window 65536', { shuffle: 'window', shuffleWindow: 65_536 }],
        ['window 1024', { shuffle: 'window', shuffleWindow: 1024 }], ['naive', { shuffle: 'naive' }],
      ];
      const columnSets: [string, string[] | undefined][] = [['one', ['input_ids']], ['all', undefined]];
      const cells: { format: string; shuffle: string; columns: string; batch: number; samples_per_s: number; first_batch_seconds: number; ratio?: number }[] = [];
      for (const [format, dir] of formats) {
        for (const [shuffle, so] of shuffles) {
          for (const [columns, cols] of columnSets) {
            for (const batch of [64, 512]) {
              const r = await gpufeed(dir, { ...so, columns: cols, batchSize: batch }, { maxSeconds: MATRIX_SECONDS });
              cells.push({ format, shuffle, columns, batch, samples_per_s: r.samples_per_s, first_batch_seconds: r.first_batch_seconds });
            }
          }
        }
      }
      for (const [format] of formats) {
        const mine = cells.filter((c) => c.format === format);
        const best = Math.max(...mine.map((c) => c.samples_per_s));
        for (const c of mine) c.ratio = best > 0 ? c.samples_per_s / best : 0;
        const worst = mine.reduce((a, c) => (c.ratio! < a.ratio! ? c : a));
        matrixLines.push(`${format}: best ${best.toFixed(0)} samples/s; worst cell ${worst.shuffle}, ${worst.columns} column(s), batch ${worst.batch}: ${worst.ratio!.toFixed(3)}`);
        for (const c of mine) matrixLines.push(`  ${c.shuffle.padEnd(12)} ${c.columns.padEnd(4)} batch ${String(c.batch).padEnd(4)} ${c.samples_per_s.toFixed(0).padStart(8)} samples/s  ${c.ratio!.toFixed(3)}  (first batch ${c.first_batch_seconds.toFixed(2)} s)`);
      }
      details.matrix = { seconds_per_cell: MATRIX_SECONDS, cells };
    }

    if (ONLY.has('1')) {
    // 1. Arrow vs the pread ceiling.
    log('1/5 Arrow: gpufeed vs pread ceiling');
    const chunks: [string, number, number][] = [];
    for (const s of arrow.shards) {
      if (s.layout.kind !== 'arrow') continue;
      for (const b of s.layout.batches) chunks.push([join(ds.arrow, s.path), b.offset, b.metadataLength + b.bodyLength]);
    }
    const passes = Math.max(1, Math.round((4 * 2 ** 30) / arrow.bytes));
    // The ceiling lands every byte in a destination as large as gpufeed's ring (its slots x slot
    // bytes, read from a loader opened with the same options), one slot per read; the old ceiling,
    // one cache-hot buffer per thread, is printed beside it.
    const probe = await Loader.open(ds.arrow, loaderOptions());
    const ring = { kind: 'ring' as const, ringBytes: probe.ring.slots.length * probe.layout.slotBytes, slotBytes: probe.layout.slotBytes };
    await probe.close();
    const [[ceiling, hotCeiling], gArrow] = await sideBySide(
      async () => {
        const a = await preadCeiling(chunks, WORKERS, passes, ring);
        return Object.assign([a, await preadCeiling(chunks, WORKERS, passes, { kind: 'hot' })] as const, { bytes_per_s: a.bytes_per_s });
      },
      () => gpufeed(ds.arrow),
    );
    const r1 = gArrow.bytes_per_s / ceiling.bytes_per_s;
    const r1hot = gArrow.bytes_per_s / hotCeiling.bytes_per_s;
    rows.push({ name: `Arrow, warm cache: gpufeed / pread ceiling (into a ${mib(ring.ringBytes)} ring)`, gpufeed: gb(gArrow.bytes_per_s), reference: gb(ceiling.bytes_per_s), ratio: r1, goal: '>= 0.5', pass: r1 >= 0.5 });
    rows.push({ name: 'Arrow, warm cache: gpufeed / old ceiling (one cache-hot buffer)', gpufeed: gb(gArrow.bytes_per_s), reference: gb(hotCeiling.bytes_per_s), ratio: r1hot, goal: 'report', pass: null });
    // Bytes per CPU second (all threads): what the ratio would be with the cores to ourselves.
    const eff = (bytes: number, cpu: number): string => `${(bytes / cpu / 1e9).toFixed(2)} GB/CPU-s`;
    const gSteadyBytes = gArrow.bytes_per_s * (gArrow.seconds - gArrow.first_batch_seconds);
    rows.push({ name: 'Arrow: bytes per CPU second, gpufeed / ring ceiling', gpufeed: eff(gSteadyBytes, gArrow.cpu_seconds), reference: eff(ceiling.bytes, ceiling.cpu_seconds), ratio: (gSteadyBytes / gArrow.cpu_seconds) / (ceiling.bytes / ceiling.cpu_seconds), goal: 'report', pass: null });
    details.arrow = { gpufeed: gArrow, ceiling, hot_ceiling: hotCeiling };
    details.verify_pieces = await checksumRows(root, ds.arrow, rows);

    }

    // 2. Parquet vs DuckDB.
    for (const [name, dir, m] of ONLY.has('2') ? [['snappy', ds.parquetSnappy, snappy], ['zstd', ds.parquetZstd, zstd]] as const : []) {
      log(`2/5 Parquet ${name}: gpufeed vs DuckDB`);
      const files = shardFiles(dir, m);
      const [duck, gq] = await sideBySide(() => duckdbScan(files, WORKERS, payload, 1), () => gpufeed(dir));
      const r = gq.bytes_per_s / duck.bytes_per_s;
      rows.push({ name: `Parquet ${name} (${m.createdBy?.startsWith('duckdb') ? 'DuckDB-written' : 'gpufeed-written'}): gpufeed / DuckDB`, gpufeed: gb(gq.bytes_per_s), reference: gb(duck.bytes_per_s), ratio: r, goal: '>= 0.5', pass: r >= 0.5 });
      details[`parquet_${name}`] = { gpufeed: gq, duckdb: duck };
    }

    if (ONLY.has('3')) {
    // 3. Naive loader.
    log('3/5 Arrow: gpufeed vs naive main-thread loader');
    const order = { batchSize: BATCH, shuffle: 'window' as const, shuffleWindow: WINDOW };
    const [naive, gNaive] = await sideBySide(async () => naiveArrowLoader(ds.arrow, arrow, order, SEQ_LEN, SECONDS), () => gpufeed(ds.arrow));
    const r3 = gNaive.bytes_per_s / naive.bytes_per_s;
    rows.push({ name: 'Arrow: gpufeed / naive loader (apache-arrow, main thread)', gpufeed: gb(gNaive.bytes_per_s), reference: gb(naive.bytes_per_s), ratio: r3, goal: 'report', pass: null });
    details.naive = { gpufeed: gNaive, naive };

    }

    if (ONLY.has('4')) {
    // 4. Data-wait under a consumer at 80% of capacity (capacity measured just before, same setup).
    log('4/5 data-wait at 80% of capacity');
    const dwBatch = 256;
    const cap = await gpufeed(ds.arrow, { batchSize: dwBatch });
    const consumerMs = (dwBatch / cap.samples_per_s) * 1e3 / 0.8;
    const dw = await gpufeed(ds.arrow, { batchSize: dwBatch }, { consumerMs, consumerWait: 'sleep', maxSeconds: SECONDS * 1.5 });
    const w = dw.wait_ms;
    const waits = `p50 ${w.p50.toFixed(3)} ms, p99 ${w.p99.toFixed(2)} ms, max ${w.max.toFixed(1)} ms`;
    rows.push({ name: `Data-wait, consumer ${consumerMs.toFixed(2)} ms/batch of ${dwBatch} (80% of capacity), first batch included`, gpufeed: `${(dw.data_wait_fraction_with_startup * 100).toFixed(2)}% (${waits})`, reference: `${gb(cap.bytes_per_s)} capacity`, ratio: dw.data_wait_fraction_with_startup, goal: '<= 0.01', pass: dw.data_wait_fraction_with_startup <= 0.01 });
    rows.push({ name: 'Data-wait, the same run after its first batch', gpufeed: `${(dw.data_wait_fraction * 100).toFixed(2)}% (first batch ${(dw.first_batch_seconds * 1e3).toFixed(0)} ms)`, reference: `${dw.batches} batches`, ratio: dw.data_wait_fraction, goal: 'report', pass: null });
    details.data_wait = { capacity: cap, consumer_ms: consumerMs, run: dw };
    }

    }

    // 5. Memory: peak RSS with a 10x larger dataset, and with 10 epochs, each in its own process.
    if (ONLY.has('5')) {
    log('5/6 peak RSS: 1x vs 10x dataset, 1 vs 10 epochs');
    const small = join(root, 'rss-1x');
    const large = join(root, 'rss-10x');
    const base = 2048;
    await makeArrow(small, base, '8MiB');
    await makeArrow(large, base * 10, '8MiB');
    const rss1 = await childRss(small, 1);
    const rss10 = await childRss(large, 1);
    const rssEpochs = await childRss(small, 10);
    const r5 = rss10.peak_rss_bytes / rss1.peak_rss_bytes;
    const r5e = rssEpochs.peak_rss_bytes / rss1.peak_rss_bytes;
    rows.push({ name: `Peak RSS, Arrow ${base * 10} vs ${base} rows`, gpufeed: mib(rss10.peak_rss_bytes), reference: mib(rss1.peak_rss_bytes), ratio: r5, goal: '<= 1.1', pass: r5 <= 1.1 });
    rows.push({ name: `Peak RSS, Arrow ${base} rows: 10 epochs vs 1`, gpufeed: mib(rssEpochs.peak_rss_bytes), reference: mib(rss1.peak_rss_bytes), ratio: r5e, goal: '<= 1.1', pass: r5e <= 1.1 });
    details.memory = { x1: rss1, x10: rss10, epochs10: rssEpochs };
    // Flat memory over many short epochs (63 batches each), the JS Loader and the Python client's
    // server (`gpufeed serve`), each in its own process; RSS after each epoch.
    const rssDir = await makeEpochRssDataset(root);
    const flat: Record<string, unknown> = {};
    for (const [kind, label] of [['js', 'JS Loader'], ['python', 'Python client server']] as const) {
      let epochs: EpochRss[];
      try {
        epochs = await epochRss(kind, rssDir);
      } catch (err) {
        rows.push({ name: `RSS over ${RSS_EPOCHS} epochs after epoch 2, ${label}: max / epoch 2`, gpufeed: '-', reference: '-', ratio: null, goal: '<= 1.1', pass: null, note: `did not run: ${(err as Error).message.split('\n')[0]}` });
        continue;
      }
      const r = epochRssRatios(epochs);
      rows.push({ name: `RSS over ${RSS_EPOCHS} epochs after epoch 2, ${label}: max / epoch 2`, gpufeed: `${mib(r.max)} (epoch ${r.maxEpoch})`, reference: mib(r.at2), ratio: r.ratio, goal: '<= 1.1', pass: r.ratio <= 1.1 });
      rows.push({ name: `RSS over ${RSS_EPOCHS} epochs after epoch 40, ${label}: max / epoch 40`, gpufeed: mib(r.max40), reference: mib(r.at40), ratio: r.ratio40, goal: 'report', pass: null });
      flat[kind] = { ...r, epochs };
    }
    details.flat_memory = flat;
    }

    // 6. HF-style Parquet, one row group, variable-length columns: read in place (index route) vs
    // the same rows prepared as Arrow vs DuckDB scanning the file; each loader in its own process
    // (peak RSS), window shuffle at its default (65,536: the whole file), every column.
    if (ONLY.has('6')) {
      log(`6/6 HF-style Parquet (${HF_ROWS} rows, one row group): index route vs prepared Arrow vs DuckDB`);
      const hf = await makeHfDatasets(root, HF_ROWS);
      const hfWindow = 65_536;
      let indexed: ChildResult | undefined;
      let prepared: ChildResult | undefined;
      for (let r = 0; r < ROUNDS; r++) {
        const a = await childRss(hf.indexed, 'inf', 'all', hfWindow, SECONDS * 2);
        if (!indexed || a.samples_per_s > indexed.samples_per_s) indexed = { ...a, peak_rss_bytes: Math.max(a.peak_rss_bytes, indexed?.peak_rss_bytes ?? 0) };
        const b = await childRss(hf.prepared, 'inf', 'all', hfWindow, SECONDS * 2);
        if (!prepared || b.samples_per_s > prepared.samples_per_s) prepared = { ...b, peak_rss_bytes: Math.max(b.peak_rss_bytes, prepared?.peak_rss_bytes ?? 0) };
      }
      const duck = await duckdbRows(HF_DUCKDB_SQL(hf.file), HF_ROWS, 3);
      const sps = (x: number): string => `${x.toFixed(0)} samples/s`;
      const r6a = indexed!.samples_per_s / prepared!.samples_per_s;
      const r6b = indexed!.samples_per_s / duck.samples_per_s;
      const r6c = indexed!.peak_rss_bytes / prepared!.peak_rss_bytes;
      rows.push({ name: 'HF Parquet, one row group: index route / prepared Arrow', gpufeed: sps(indexed!.samples_per_s), reference: sps(prepared!.samples_per_s), ratio: r6a, goal: '>= 0.5', pass: r6a >= 0.5 });
      rows.push({ name: `HF Parquet, one row group: index route / DuckDB (${WORKERS} threads)`, gpufeed: sps(indexed!.samples_per_s), reference: sps(duck.samples_per_s), ratio: r6b, goal: '>= 0.5', pass: r6b >= 0.5 });
      rows.push({ name: 'HF Parquet, one row group: peak RSS, index route / prepared Arrow', gpufeed: mib(indexed!.peak_rss_bytes), reference: mib(prepared!.peak_rss_bytes), ratio: r6c, goal: '<= 1.5', pass: r6c <= 1.5 });
      details.hf = { rows: HF_ROWS, indexed, prepared, duckdb: duck };
    }
    if (ONLY.has('metrics')) await metricsSection(root, rows, details);
    // 9. Images: the train transform in the decode pool vs Pillow in a torch DataLoader (images.ts).
    if (ONLY.has('9')) {
      try {
        rows.push(...(await imageBench(WORKERS, log)));
      } catch (err) {
        // The baseline needs python3 with Pillow (and torch for its DataLoader).
        rows.push({ name: 'Images: train transform vs Pillow + DataLoader', gpufeed: '-', reference: '-', ratio: null, goal: '>= 2', pass: null, note: `did not run: ${(err as Error).message.split('\n')[0]}` });
      }
    }
    // 10. Planning a 3-stream mixture of 100M documents for 1,024 ranks (plan-scale.ts).
    if (ONLY.has('10')) mixturePlanRows(rows, details);
    // 11. Packing on the fly against pre-packed rows (packing.ts).
    if (ONLY.has('11')) await packingSection(rows, details);
    // Variable-length gather against fixed-shape gather (varlen-gather.ts).
    if (ONLY.has('varlen')) await varlenSection(rows, details);
  } finally {
    await rm(root, { recursive: true, force: true });
  }

  const config = { rows: ROWS, seq_len: SEQ_LEN, batch_size: BATCH, workers: WORKERS, shuffle: 'window', shuffle_window: WINDOW, seconds_per_run: SECONDS, rounds_best_of: ROUNDS };
  const head = ['benchmark', 'gpufeed', 'reference', 'ratio', 'goal', 'result'];
  const table = rows.map((r) => [r.name, r.gpufeed, r.reference, r.ratio === null ? '-' : r.ratio.toFixed(3), r.goal, r.pass === null ? 'info' : r.pass ? 'PASS' : 'FAIL']);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  const out = [
    `machine: ${machine.cpu}, ${machine.cores} cores (${machine.usable_cpus} usable), Node ${machine.node}, ${machine.platform}`,
    `config: ${ROWS} rows x ${SEQ_LEN} int32 (random), batch ${BATCH}, ${WORKERS} workers, shuffle window ${WINDOW}, best of ${ROUNDS} alternating runs of ${SECONDS}s`,
    line(head),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...table.map(line),
    ...(matrixLines.length ? ['configuration matrix (samples/s, ratio to the best cell of the format):', ...matrixLines] : []),
    `total ${((performance.now() - started) / 1e3).toFixed(0)} s`,
  ].join('\n');
  process.stdout.write(`${out}\n`);
  const resultsDir = join(here, '..', '..', 'benchmarks', 'results');
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, 'bench.json'), `${JSON.stringify({ machine, config, date: new Date().toISOString(), rows, details }, null, 2)}\n`);
}

await main();
