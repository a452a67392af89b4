// Scale of planning: one rank's whole epoch of 100 million samples in 100,000 shards for 1,024
// ranks, per shuffle algorithm; and (mixturePlanScale) one rank's epoch of a 3-stream mixture of
// 100 million documents, for several partition counts. Target: under 2 s and 500 MB per rank (no
// per-rank copy of the whole permutation). Run: npx tsx benchmarks/plan-scale.ts [--samples N]
// [--shards S] [--world W] [--mixture-only]
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { planMixtureRankEpoch, planRankEpoch, resolveOrderOptions, type MixtureStream, type RankEpochPlan, type ShardSize, type ShuffleAlgo, type World } from '../src/plan/index.js';
import { numberArg, syntheticShards } from './args.js';

const arg = numberArg;

const SAMPLES = arg('samples', 100_000_000);
const SHARDS = arg('shards', 100_000);
const WORLD = arg('world', 1024);
const BATCH = arg('batch', 32);

function makeShards(): ShardSize[] {
  return syntheticShards(SAMPLES, SHARDS, 1024);
}

const MB = 1024 * 1024;

/**
 * Plans every step of one rank's epoch; time (wall, and the process's CPU: on a loaded host the wall
 * time counts other processes' turns), and peak heap + buffers above the start.
 */
function measure(plan: () => RankEpochPlan): { ms: number; cpuMs: number; peakMB: number; rssMB: number; steps: number; checksum: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage();
  let peak = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const p = plan();
  let checksum = 0;
  for (let step = 0; step < p.steps; step++) {
    const ids = p.batchIds(step);
    for (const id of ids) checksum = (checksum + id) % 1_000_000_007;
    if ((step & 255) === 0) {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - before.heapUsed - before.arrayBuffers);
    }
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1e3;
  const after = process.memoryUsage();
  peak = Math.max(peak, after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers);
  return { ms, cpuMs, peakMB: peak / MB, rssMB: after.rss / MB, steps: p.steps, checksum };
}

function worldOf(rank: number): World {
  return { rank, worldSize: WORLD, localRank: rank % 8, localWorldSize: WORLD % 8 === 0 ? 8 : 1 };
}

export function singleDatasetPlanScale(): void {
  const shards = makeShards();
  console.log(`plan-scale: ${SAMPLES.toLocaleString()} samples, ${SHARDS.toLocaleString()} shards, world ${WORLD}, batch ${BATCH}/rank, node ${process.version}`);
  console.log('algo    window   partitions  rank  steps  samples/rank  plan ms  rss MB  heap+buffers MB (delta)');
  const cases: Array<{ shuffle: ShuffleAlgo; shuffleWindow: number; partitions: number; rank: number }> = [
    { shuffle: 'none', shuffleWindow: 1, partitions: WORLD, rank: 0 },
    { shuffle: 'window', shuffleWindow: 1 << 16, partitions: WORLD, rank: 0 },
    { shuffle: 'window', shuffleWindow: 1 << 18, partitions: WORLD, rank: WORLD - 1 },
    { shuffle: 'window', shuffleWindow: 1 << 16, partitions: WORLD * 4, rank: 517 % WORLD },
    { shuffle: 'window', shuffleWindow: 1 << 16, partitions: Math.max(1, WORLD / 8), rank: 3 % WORLD },
    { shuffle: 'naive', shuffleWindow: 1, partitions: WORLD, rank: 0 },
  ];
  for (const c of cases) {
    const world = worldOf(c.rank);
    const options = resolveOrderOptions({ batchSize: BATCH, seed: 17, shuffle: c.shuffle, shuffleWindow: c.shuffleWindow, partitions: c.partitions, epochs: Infinity }, world);
    const r = measure(() => planRankEpoch(shards, world, options, 3));
    console.log(
      `${c.shuffle.padEnd(7)} ${String(c.shuffle === 'window' ? c.shuffleWindow : '-').padStart(7)}  ${String(c.partitions).padStart(10)}  ${String(c.rank).padStart(4)}  ${String(r.steps).padStart(5)}  ${String(r.steps * BATCH).padStart(12)}  ${r.ms.toFixed(0).padStart(7)}  ${r.rssMB.toFixed(0).padStart(6)}  ${r.peakMB.toFixed(1).padStart(8)}   (checksum ${r.checksum})`,
    );
  }
}

/**
 * One rank's epoch of a 3-stream mixture of 100 M documents (60 M, 30 M, 10 M in 1,000-row-ish
 * shards) with weights 0.5/0.3/0.2 (so the small stream repeats and the large one is subsampled),
 * for 1,024 ranks, window shuffle, partition counts from 1 (every rank shares one partition per
 * stream, so each plans from every key of it) to 4W. Returns the slowest case and every case.
 */
export interface MixturePlanCase {
  partitions: number;
  rank: number;
  ms: number;
  /** CPU ms of the process while it planned (one thread plans; the GC helps a little). */
  cpuMs: number;
  peakMB: number;
}

export function mixturePlanScale(): { worstMs: number; worstPeakMB: number; cases: MixturePlanCase[] } {
  const total = SAMPLES;
  const sizes = [0.6, 0.3, 0.1].map((f) => Math.round(total * f));
  const streams: MixtureStream[] = sizes.map((n, k) => ({ shards: syntheticShards(n, Math.max(1, Math.round((SHARDS * n) / total)), 1024), weight: [0.5, 0.3, 0.2][k]! }));
  console.log(`plan-scale mixture: 3 streams of ${sizes.map((n) => n.toLocaleString()).join(' + ')} documents, weights 0.5/0.3/0.2, world ${WORLD}, batch ${BATCH}/rank`);
  console.log('algo    window   partitions  rank  steps  samples/rank  plan ms  cpu ms  rss MB  heap+buffers MB (delta)');
  let worstMs = 0;
  let worstPeakMB = 0;
  const cases: MixturePlanCase[] = [];
  const partitionCounts = [1, 2, 8, WORLD / 8, WORLD, WORLD * 4].filter((p, i, all) => Number.isInteger(p) && p >= 1 && all.indexOf(p) === i);
  for (const partitions of partitionCounts) {
    const rank = (partitions * 7 + 3) % WORLD;
    const world = worldOf(rank);
    const options = resolveOrderOptions({ batchSize: BATCH, seed: 17, shuffle: 'window', shuffleWindow: 1 << 16, partitions, epochs: Infinity }, world);
    const r = measure(() => planMixtureRankEpoch(streams, world, options, 3));
    worstMs = Math.max(worstMs, r.ms);
    worstPeakMB = Math.max(worstPeakMB, r.peakMB);
    cases.push({ partitions, rank, ms: r.ms, cpuMs: r.cpuMs, peakMB: r.peakMB });
    console.log(
      `window  ${String(1 << 16).padStart(7)}  ${String(partitions).padStart(10)}  ${String(rank).padStart(4)}  ${String(r.steps).padStart(5)}  ${String(r.steps * BATCH).padStart(12)}  ${r.ms.toFixed(0).padStart(7)}  ${r.cpuMs.toFixed(0).padStart(6)}  ${r.rssMB.toFixed(0).padStart(6)}  ${r.peakMB.toFixed(1).padStart(8)}   (checksum ${r.checksum})`,
    );
  }
  return { worstMs, worstPeakMB, cases };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (!process.argv.includes('--mixture-only')) singleDatasetPlanScale();
  mixturePlanScale();
}
