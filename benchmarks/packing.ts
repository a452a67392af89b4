// Packing's cost (`npm run bench`, section 11; alone: `npx tsx benchmarks/packing.ts`): documents
// of random lengths (1 to 5 x 2048 tokens) packed to rows of 2,048 tokens on the fly, against the
// same tokens written as one pre-packed Arrow dataset of fixed [2048] rows, read with the same
// loader settings. Two packed variants: one dataset, and the same documents as a three-stream
// mixture (50/30/20% of the documents in three datasets, weights 0.5/0.3/0.2: each document
// chosen about once per epoch). Reports packed rows/s over pre-packed rows/s (goal >= 0.7).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeShard } from '../src/dataset/encode-shard.js';
import { writeManifest } from '../src/dataset/manifest.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry } from '../src/dataset/types.js';
import type { ShardColumns } from '../src/formats/column-data.js';
import { openStore } from '../src/storage/index.js';
import { Loader } from '../src/pipeline/loader.js';
import type { PackedLoader } from '../src/pipeline/packed-loader.js';
import { measureLoader, type ThroughputResult } from '../src/pipeline/throughput.js';
import { usableCpus } from '../src/pipeline/cpus.js';

export const PACK_LENGTH = 2048;

export interface PackingBench {
  tokens: number;
  documents: number;
  packed: ThroughputResult;
  prepacked: ThroughputResult;
  ratio: number;
  droppedTokens: number;
  /** The three-stream mixture packed to the same length. */
  mixture: ThroughputResult;
  mixtureRatio: number;
  /** Expected per epoch (a mixture chooses its documents per epoch). */
  mixtureDroppedTokens: number;
  /** Median over the rounds of each side's CPU microseconds per row (whole process), the measured runs only. */
  cpuPerRow: { packed: number; mixture: number; prepacked: number };
  /** Median over the rounds of each side's warm-up (warmUp), seconds. */
  warmupSeconds: { packed: number; mixture: number; prepacked: number };
}

/** The mixture's streams: shares of the documents, in document order. */
export const MIXTURE_SHARES = [0.5, 0.3, 0.2];

/** Document lengths: mostly short, a long tail up to 5 x the row length (a web-text-like mix). */
function documentLengths(tokens: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const out: number[] = [];
  let total = 0;
  while (total < tokens) {
    const n = next() < 0.85 ? 1 + Math.floor(next() * 1024) : 1 + Math.floor(next() * 5 * PACK_LENGTH);
    out.push(n);
    total += n;
  }
  return out;
}

async function writeDataset(dir: string, schema: ColumnSpec[], shards: ShardColumns[]): Promise<void> {
  await mkdir(join(dir, 'shards'), { recursive: true });
  const store = await openStore(dir);
  try {
    const entries: ShardEntry[] = [];
    for (let i = 0; i < shards.length; i++) {
      const r = encodeShard({ schema, shard: shards[i]!, format: 'arrow' });
      const path = `shards/bench-${String(i).padStart(5, '0')}.arrow`;
      await store.put(path, r.bytes);
      const e: ShardEntry = { path, format: 'arrow', rows: r.rows, bytes: r.bytes.byteLength, hash: r.hash, layout: r.layout };
      if (r.maxRowBytes) e.maxRowBytes = r.maxRowBytes;
      if (r.pieceValues) e.pieceValues = r.pieceValues;
      entries.push(e);
    }
    const manifest: ManifestV1 = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema, shards: entries,
      rows: entries.reduce((a, s) => a + s.rows, 0), bytes: entries.reduce((a, s) => a + s.bytes, 0), createdBy: 'gpufeed bench',
    };
    await writeManifest(store, manifest);
  } finally {
    await store.close();
  }
}

/** The two datasets: documents (list<int32>) and the same token stream as fixed [2048] rows. */
export async function makeDatasets(root: string, tokens: number, shards: number): Promise<{ docs: string; prepacked: string; streams: string[]; documents: number }> {
  const lengths = documentLengths(tokens, 77);
  const total = lengths.reduce((a, b) => a + b, 0);
  const values = new Int32Array(total);
  for (let i = 0; i < total; i++) values[i] = (i * 2654435761) % 50257;
  const docs = join(root, 'docs');
  const perShard = Math.ceil(lengths.length / shards);
  const docShards: ShardColumns[] = [];
  let at = 0;
  for (let d = 0; d < lengths.length; d += perShard) {
    const n = Math.min(perShard, lengths.length - d);
    const offsets = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + lengths[d + i]!;
    docShards.push({ rows: n, columns: [{ values: values.slice(at, at + offsets[n]!), offsets, nullCount: 0 }] });
    at += offsets[n]!;
  }
  const docSchema: ColumnSpec[] = [{ name: 'input_ids', dtype: 'int32', kind: 'list', nullable: false }];
  await writeDataset(docs, docSchema, docShards);
  // The same documents as three streams: contiguous shares of them, each its own dataset.
  const streams: string[] = [];
  let first = 0;
  let tokenAt = 0;
  for (let k = 0; k < MIXTURE_SHARES.length; k++) {
    const end = k === MIXTURE_SHARES.length - 1 ? lengths.length : first + Math.round(MIXTURE_SHARES[k]! * lengths.length);
    const per = Math.ceil((end - first) / Math.max(1, Math.round(shards * MIXTURE_SHARES[k]!)));
    const streamShards: ShardColumns[] = [];
    for (let d = first; d < end; d += per) {
      const n = Math.min(per, end - d);
      const offsets = new Int32Array(n + 1);
      for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i]! + lengths[d + i]!;
      streamShards.push({ rows: n, columns: [{ values: values.slice(tokenAt, tokenAt + offsets[n]!), offsets, nullCount: 0 }] });
      tokenAt += offsets[n]!;
    }
    const dir = join(root, `stream-${k}`);
    await writeDataset(dir, docSchema, streamShards);
    streams.push(dir);
    first = end;
  }
  const prepacked = join(root, 'prepacked');
  const rows = Math.floor(total / PACK_LENGTH);
  const rowsPerShard = Math.ceil(rows / shards);
  const fixed: ShardColumns[] = [];
  for (let r = 0; r < rows; r += rowsPerShard) {
    const n = Math.min(rowsPerShard, rows - r);
    fixed.push({ rows: n, columns: [{ values: values.slice(r * PACK_LENGTH, (r + n) * PACK_LENGTH), nullCount: 0 }] });
  }
  await writeDataset(prepacked, [{ name: 'input_ids', dtype: 'int32', kind: 'fixed', shape: [PACK_LENGTH], nullable: false }], fixed);
  return { docs, prepacked, streams, documents: lengths.length };
}

/** Warm-up: at least this long on each loader before its measured run (JIT, first shards). */
export const WARMUP_SECONDS = 1;
/** Warm-up steps past WARMUP_SECONDS, while the CPU per row still falls, at most WARMUP_MAX_SECONDS in all. */
const WARMUP_STEP_SECONDS = 0.25;
const WARMUP_MAX_SECONDS = 3;

/** CPU microseconds (whole process: consumer, decode workers, V8's compiler and GC threads) per row of a run. */
export function cpuPerRow(r: ThroughputResult): number {
  return r.samples > 0 ? (r.cpu_seconds * 1e6) / r.samples : 0;
}

/**
 * Runs `loader` until it is in steady state, in one iteration (a loop broken off keeps its last
 * batch: one warm-up call per loader, as before): WARMUP_SECONDS, then on in steps of
 * WARMUP_STEP_SECONDS while a step's CPU per row is still 15% below the step's before (V8
 * compiles the hot paths in the first seconds, longer on a loaded host: a fixed 8 batches measured
 * the packed side mid-compilation), WARMUP_MAX_SECONDS at most. Returns the seconds spent.
 */
export async function warmUp(loader: Loader | PackedLoader): Promise<number> {
  let start = 0;
  let stepAt = 0;
  let stepCpu = 0;
  let stepSamples = 0;
  let last = Infinity;
  const cpuNow = (): number => {
    const c = process.cpuUsage();
    return c.user + c.system;
  };
  let spent = 0;
  await measureLoader(loader, {
    maxSeconds: WARMUP_MAX_SECONDS,
    stopWhen: (now, _batches, samples) => {
      if (start === 0) start = now;
      spent = (now - start) / 1e3;
      if (spent < WARMUP_SECONDS || (stepAt !== 0 && (now - stepAt) / 1e3 < WARMUP_STEP_SECONDS)) return false;
      const cpu = cpuNow();
      const perRow = stepAt !== 0 && samples > stepSamples ? (cpu - stepCpu) / (samples - stepSamples) : Infinity;
      if (perRow > 0.85 * last) return true;
      last = perRow;
      stepAt = now;
      stepCpu = cpu;
      stepSamples = samples;
      return false;
    },
  });
  return spent;
}

type Side = 'packed' | 'mixture' | 'prepacked';

/**
 * Packed, mixture and pre-packed measured alternately, the same number of rounds each, best of
 * `rounds` runs of `seconds` each after a warm-up by time (warmUp). Every other round runs them
 * in reverse order (ABBA): neither side always runs first, or right after the same one.
 */
export async function packingBench(opts: { tokens?: number; seconds?: number; rounds?: number; workers?: number; batchSize?: number } = {}): Promise<PackingBench> {
  const tokens = opts.tokens ?? 24 << 20;
  const seconds = opts.seconds ?? 2;
  const rounds = opts.rounds ?? 2;
  const workers = opts.workers ?? usableCpus();
  const batchSize = opts.batchSize ?? 8;
  const root = await mkdtemp(join(tmpdir(), 'gpufeed-bench-pack-'));
  try {
    const ds = await makeDatasets(root, tokens, 8);
    const common = { batchSize, workers, shuffle: 'window' as const, shuffleWindow: 4096, epochs: Infinity };
    const pack = { pack: { column: 'input_ids', length: PACK_LENGTH } };
    const best: Partial<Record<Side, ThroughputResult>> = {};
    const cpu: Record<Side, number[]> = { packed: [], mixture: [], prepacked: [] };
    const warm: Record<Side, number[]> = { packed: [], mixture: [], prepacked: [] };
    let droppedTokens = 0;
    let mixtureDroppedTokens = 0;
    const sides: Side[] = ['packed', 'mixture', 'prepacked'];
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        const l = side === 'packed'
          ? await Loader.open(ds.docs, { ...common, ...pack })
          : side === 'mixture'
            ? await Loader.open(ds.streams.map((uri, k) => ({ uri, weight: MIXTURE_SHARES[k]! })), { ...common, ...pack })
            : await Loader.open(ds.prepacked, common);
        try {
          // The warm-up and then the measured run on the same loader.
          warm[side].push(await warmUp(l));
          const x = await measureLoader(l, { maxSeconds: seconds });
          cpu[side].push(cpuPerRow(x));
          if (!best[side] || x.samples_per_s > best[side].samples_per_s) best[side] = x;
          if (side === 'packed') droppedTokens = (l as PackedLoader).packLayout.droppedTokens;
          if (side === 'mixture') mixtureDroppedTokens = (l as PackedLoader).packLayout.droppedTokens;
        } finally {
          await l.close();
        }
      }
    }
    const packed = best.packed!;
    const prepacked = best.prepacked!;
    const mixture = best.mixture!;
    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length === 0 ? 0 : s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    return {
      tokens, documents: ds.documents, packed, prepacked, ratio: packed.samples_per_s / prepacked.samples_per_s, droppedTokens,
      mixture, mixtureRatio: mixture.samples_per_s / prepacked.samples_per_s, mixtureDroppedTokens,
      cpuPerRow: { packed: median(cpu.packed), mixture: median(cpu.mixture), prepacked: median(cpu.prepacked) },
      warmupSeconds: { packed: median(warm.packed), mixture: median(warm.mixture), prepacked: median(warm.prepacked) },
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await packingBench({ seconds: Number(process.env.GPUFEED_BENCH_SECONDS ?? 2) });
  process.stdout.write(`packing ${r.documents} documents (${r.tokens} tokens) to ${PACK_LENGTH}: ${r.packed.samples_per_s.toFixed(0)} rows/s; pre-packed Arrow: ${r.prepacked.samples_per_s.toFixed(0)} rows/s; ratio ${r.ratio.toFixed(3)} (goal >= 0.7); ${r.droppedTokens} tokens dropped per epoch\n`);
  process.stdout.write(`packing the same documents as a 3-stream mixture (${MIXTURE_SHARES.join('/')}): ${r.mixture.samples_per_s.toFixed(0)} rows/s; ratio ${r.mixtureRatio.toFixed(3)} (goal >= 0.7); ~${r.mixtureDroppedTokens} tokens dropped per epoch (expected)\n`);
  process.stdout.write(`CPU per row (whole process, median of rounds): packed ${r.cpuPerRow.packed.toFixed(2)} us, mixture ${r.cpuPerRow.mixture.toFixed(2)} us, pre-packed ${r.cpuPerRow.prepacked.toFixed(2)} us; warm-up ${r.warmupSeconds.packed.toFixed(2)} / ${r.warmupSeconds.mixture.toFixed(2)} / ${r.warmupSeconds.prepacked.toFixed(2)} s\n`);
}
