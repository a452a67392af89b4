// Scale of planning: one rank's whole epoch of 100 million samples in 100,000 shards for 1,024
// ranks, per shuffle algorithm. Target: well under 2 s and 500 MB per rank (no per-rank copy of the
// whole permutation). Run: npx tsx benchmarks/plan-scale.ts [--samples N] [--shards S] [--world W]
import { performance } from 'node:perf_hooks';
import { planRankEpoch, resolveOrderOptions, type ShardSize, type ShuffleAlgo, type World } from '../src/plan/index.js';
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
  const world: World = { rank: c.rank, worldSize: WORLD, localRank: c.rank % 8, localWorldSize: WORLD % 8 === 0 ? 8 : 1 };
  const options = resolveOrderOptions({ batchSize: BATCH, seed: 17, shuffle: c.shuffle, shuffleWindow: c.shuffleWindow, partitions: c.partitions, epochs: Infinity }, world);
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage();
  let peak = 0;
  const t0 = performance.now();
  const plan = planRankEpoch(shards, world, options, 3);
  let checksum = 0;
  for (let step = 0; step < plan.steps; step++) {
    const ids = plan.batchIds(step);
    for (const id of ids) checksum = (checksum + id) % 1_000_000_007;
    if ((step & 255) === 0) {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - before.heapUsed - before.arrayBuffers);
    }
  }
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  peak = Math.max(peak, after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers);
  console.log(
    `${c.shuffle.padEnd(7)} ${String(c.shuffle === 'window' ? c.shuffleWindow : '-').padStart(7)}  ${String(c.partitions).padStart(10)}  ${String(c.rank).padStart(4)}  ${String(plan.steps).padStart(5)}  ${String(plan.steps * BATCH).padStart(12)}  ${ms.toFixed(0).padStart(7)}  ${(after.rss / MB).toFixed(0).padStart(6)}  ${(peak / MB).toFixed(1).padStart(8)}   (checksum ${checksum})`,
  );
}
