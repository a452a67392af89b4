// Shuffle quality against cache need, per algorithm and window size, so a user can choose a window.
// Run: npx tsx benchmarks/plan-quality.ts [--samples N] [--shards S] [--world W] [--batch B] [--partitions P]
//
// Quality (1.00 = as mixed as a full permutation, `naive`):
//   spread    mean |a - b| over pairs of samples in one rank's batch, in original (manifest) order,
//             divided by the same for naive; median likewise (sampled pairs). A rank's batch in a
//             partitioned plan comes from its own slice, so the ceiling there is ~1/partitions-per-rank.
//   local     spread / (uniform spread over the rank's own slice, N / min(P, W) / 3): 1.00 = a full
//             shuffle of what the rank owns.
//   gspread   the same over a whole global batch (what an all-reduced gradient sees).
//   shards/b  distinct shards in one rank's batch (naive: ~batch size; none: 1 or 2).
// Cache (rank 0, one epoch):
//   live      most distinct shards touched within any run of K consecutive steps (K = --live-steps):
//             what the node cache must hold to read each shard once while it is in use.
//   shards/100 distinct shards per 100 steps (mean), re-reads if the cache holds less than `live`.
//   touched   distinct shards of the epoch; bytes/share = their bytes / (dataset bytes / world).
import { performance } from 'node:perf_hooks';
import { planRankEpoch, resolveOrderOptions, samplesToShards, type ShardSize, type ShuffleAlgo, type World } from '../src/plan/index.js';
import { numberArg, syntheticShards } from './args.js';

const arg = numberArg;

const SAMPLES = arg('samples', 2_000_000);
const SHARDS = arg('shards', 2_000);
const WORLD = arg('world', 8);
const BATCH = arg('batch', 64);
const PARTITIONS = arg('partitions', WORLD);
const LIVE_STEPS = arg('live-steps', 16);
const QUALITY_STEPS = 100;

function makeShards(): ShardSize[] {
  return syntheticShards(SAMPLES, SHARDS, 4096);
}

/** Exact mean of |a - b| over all pairs, via the sorted-order identity. */
function meanPairDistance(ids: readonly number[]): number {
  const x = Float64Array.from(ids).sort();
  const n = x.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (2 * i - n + 1) * (x[i] as number);
  return n > 1 ? sum / ((n * (n - 1)) / 2) : 0;
}

/** Median of |a - b| over up to 4,000 deterministic pseudo-random pairs. */
function medianPairDistance(ids: readonly number[]): number {
  const n = ids.length;
  const d: number[] = [];
  let s = 12345;
  for (let k = 0; k < 4000 && n > 1; k++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const a = s % n;
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const b = s % n;
    if (a !== b) d.push(Math.abs((ids[a] as number) - (ids[b] as number)));
  }
  d.sort((p, q) => p - q);
  return d[Math.floor(d.length / 2)] ?? 0;
}

interface Row {
  name: string;
  spread: number;
  median: number;
  gspread: number;
  shardsPerBatch: number;
  live: number;
  per100: number;
  touched: number;
  bytesShare: number;
  ms: number;
}

const shards = makeShards();
const locator = samplesToShards(shards);
const totalBytes = shards.reduce((a, s) => a + s.bytes, 0);

function measure(shuffle: ShuffleAlgo, shuffleWindow: number): Row {
  const t0 = performance.now();
  const worlds: World[] = Array.from({ length: WORLD }, (_, rank) => ({ rank, worldSize: WORLD, localRank: 0, localWorldSize: 1 }));
  const options = resolveOrderOptions({ batchSize: BATCH, seed: 7, shuffle, shuffleWindow, partitions: PARTITIONS }, worlds[0] as World);
  const plans = worlds.map((w) => planRankEpoch(shards, w, options, 0));
  const rank0 = plans[0]!;
  const steps = rank0.steps;
  const stride = Math.max(1, Math.floor(steps / QUALITY_STEPS));

  let spread = 0, median = 0, gspread = 0, shardsPerBatch = 0, samples = 0;
  for (let step = 0; step < steps && samples < QUALITY_STEPS; step += stride, samples++) {
    const ids = rank0.batchIds(step);
    spread += meanPairDistance(ids);
    median += medianPairDistance(ids);
    shardsPerBatch += new Set(ids.map((id) => locator.shardOf(id))).size;
    gspread += meanPairDistance(plans.flatMap((p) => p.batchIds(step)));
  }

  // Cache need of rank 0 over the whole epoch: sliding count of shards in the last LIVE_STEPS steps.
  const inWindow = new Map<number, number>();
  const history: number[][] = [];
  const touched = new Set<number>();
  let live = 0, per100 = 0, blocks = 0;
  let block = new Set<number>();
  for (let step = 0; step < steps; step++) {
    const stepShards = [...new Set(rank0.batchIds(step).map((id) => locator.shardOf(id)))];
    history.push(stepShards);
    for (const s of stepShards) {
      inWindow.set(s, (inWindow.get(s) ?? 0) + 1);
      touched.add(s);
      block.add(s);
    }
    if (history.length > LIVE_STEPS) {
      for (const s of history.shift() ?? []) {
        const c = (inWindow.get(s) ?? 1) - 1;
        if (c === 0) inWindow.delete(s);
        else inWindow.set(s, c);
      }
    }
    live = Math.max(live, inWindow.size);
    if ((step + 1) % 100 === 0) {
      per100 += block.size;
      blocks++;
      block = new Set();
    }
  }
  let bytes = 0;
  for (const s of touched) bytes += (shards[s] as ShardSize).bytes;
  return {
    name: shuffle === 'window' ? `window ${shuffleWindow}` : shuffle,
    spread: spread / samples,
    median: median / samples,
    gspread: gspread / samples,
    shardsPerBatch: shardsPerBatch / samples,
    live,
    per100: blocks ? per100 / blocks : block.size,
    touched: touched.size,
    bytesShare: bytes / (totalBytes / WORLD),
    ms: performance.now() - t0,
  };
}

const rows: Row[] = [measure('naive', 1), measure('none', 1)];
for (const w of [1_000, 4_000, 16_000, 65_536, 262_144]) rows.push(measure('window', w));
const ref = rows[0]!;

console.log(
  `plan-quality: ${SAMPLES.toLocaleString()} samples in ${SHARDS.toLocaleString()} shards (~${Math.round(SAMPLES / SHARDS)} rows each), world ${WORLD}, batch ${BATCH}/rank, partitions ${PARTITIONS}, live window ${LIVE_STEPS} steps`,
);
const localIdeal = SAMPLES / Math.min(PARTITIONS, WORLD) / 3;
console.log('algorithm        spread  median   local  gspread  shards/b   live  shards/100  touched  bytes/share      ms');
for (const r of rows) {
  console.log(
    `${r.name.padEnd(15)} ${(r.spread / ref.spread).toFixed(3).padStart(7)} ${(r.median / ref.median).toFixed(3).padStart(7)} ${(r.spread / localIdeal).toFixed(3).padStart(7)} ${(r.gspread / ref.gspread).toFixed(3).padStart(8)} ${r.shardsPerBatch.toFixed(1).padStart(9)} ${String(r.live).padStart(6)} ${r.per100.toFixed(1).padStart(11)} ${String(r.touched).padStart(8)} ${r.bytesShare.toFixed(2).padStart(12)} ${r.ms.toFixed(0).padStart(7)}`,
  );
}
