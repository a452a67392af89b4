// A rank sharing its partition with many others reads only a few deliveries of each window chunk,
// so only the buckets holding them are sorted (plan/window-chunk.ts). These tests hold that fast
// path to the order the full walk gives: every rank's batches, planned on their own, are exactly
// its slice of the global batches that one process planning all positions (every delivery of
// every chunk) computes, for single datasets and mixtures, 1 to 8 and more partitions, many ranks,
// windows below and above a partition's share per step; and the window order is exactly an
// independent sort of the keys the design defines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planMixtureRankEpoch, planRankEpoch, resolveOrderOptions, type MixtureStream, type ShardSize, type World } from '../../src/plan/index.js';
import { deriveKey, hashUnit, ROOT_KEY } from '../../src/plan/prng.js';
import { SampleLocator } from '../../src/plan/samples.js';
import { WindowOrder } from '../../src/plan/shuffle.js';
import { hashUnitSmall } from '../../src/plan/window-chunk.js';
import { mulberry32 } from '../helpers/seeded-random.js';

const world = (rank: number, worldSize: number): World => ({ rank, worldSize, localRank: 0, localWorldSize: 1 });
const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

function randomShards(r: () => number, total: number): ShardSize[] {
  const shards: ShardSize[] = [];
  let left = total;
  for (let guard = 0; left > 0 && guard < 10_000; guard++) {
    const rows = Math.min(left, int(r, 0, 400));
    shards.push({ rows, bytes: 1 });
    left -= rows;
  }
  return shards;
}

interface Case {
  label: string;
  worldSize: number;
  batchSize: number;
  options: { seed: number; shuffle: 'window'; shuffleWindow: number; partitions: number; dropLast: boolean; pad: boolean; epochs: number };
  epoch: number;
}

function randomCase(r: () => number, c: number): Case {
  const worldSize = pick(r, [8, 16, 32, 64]);
  const batchSize = int(r, 1, 4);
  const G = worldSize * batchSize;
  // Few partitions (many ranks each) most of the time; sometimes one per rank or more.
  const partitions = pick(r, [1, 1, 2, 8, 8, 4, worldSize, worldSize * 2].filter((p) => p <= G && (p % worldSize === 0 || worldSize % p === 0)));
  const share = G / partitions;
  // Windows from well below a partition's share per step to many steps' worth.
  const shuffleWindow = Math.max(1, Math.round(share * pick(r, [0.3, 1, 3, 10, 40])) + int(r, -1, 1));
  const end = pick(r, [{ dropLast: false, pad: false }, { dropLast: false, pad: true }, { dropLast: true, pad: false }]);
  const options = { seed: int(r, 0, 1e6), shuffle: 'window' as const, shuffleWindow, partitions, ...end, epochs: 4 };
  const epoch = int(r, 0, 3);
  return { label: `case ${c}: W=${worldSize} B=${batchSize} P=${partitions} w=${shuffleWindow} ${JSON.stringify(end)} seed=${options.seed} epoch=${epoch}`, worldSize, batchSize, options, epoch };
}

/** Rank r's batches as its slice of the full plan's global batches (pad: slice; else concatenation). */
function checkSlices(c: Case, steps: number, full: (step: number) => unknown[], rankBatch: (rank: number, step: number) => unknown[], stepOrder: (rank: number) => number[]): void {
  const perRank: unknown[][][] = [];
  for (let rank = 0; rank < c.worldSize; rank++) {
    const batches: unknown[][] = new Array(steps);
    for (const step of stepOrder(rank)) batches[step] = rankBatch(rank, step);
    perRank.push(batches);
  }
  for (let step = 0; step < steps; step++) {
    const global = full(step);
    if (c.options.pad || c.options.dropLast) {
      for (let rank = 0; rank < c.worldSize; rank++) {
        assert.deepEqual(perRank[rank]![step], global.slice(rank * c.batchSize, (rank + 1) * c.batchSize), `${c.label} rank ${rank} step ${step}`);
      }
    } else {
      assert.deepEqual(perRank.flatMap((b) => b[step]!), global, `${c.label} step ${step}`);
    }
  }
}

/** Steps in order for most ranks; for some, a random order (a resumed rank plans a later step first). */
function stepOrderFor(r: () => number, steps: number): (rank: number) => number[] {
  return (rank) => {
    const order = Array.from({ length: steps }, (_, s) => s);
    if (rank % 5 === 3) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
    }
    return order;
  };
}

describe('one rank of a shared partition plans exactly its slice of the full walk', () => {
  it('single datasets: every rank of 8-64, 1-8 and more partitions, windows around the share per step', () => {
    const r = mulberry32(20261202);
    for (let c = 0; c < 24; c++) {
      const k = randomCase(r, c);
      const shards = randomShards(r, int(r, 1, 12_000));
      const fullWorld = world(0, 1);
      const fullOptions = resolveOrderOptions({ ...k.options, batchSize: k.batchSize * k.worldSize }, fullWorld);
      const full = planRankEpoch(shards, fullWorld, fullOptions, k.epoch);
      const plans = Array.from({ length: k.worldSize }, (_, rank) => planRankEpoch(shards, world(rank, k.worldSize), resolveOrderOptions({ ...k.options, batchSize: k.batchSize }, world(rank, k.worldSize)), k.epoch));
      assert.equal(plans[0]!.steps, full.steps, k.label);
      checkSlices(k, full.steps, (s) => full.batchIds(s), (rank, s) => plans[rank]!.batchIds(s), stepOrderFor(r, full.steps));
    }
  });

  it('mixtures: 1-3 streams, every rank, 1-8 and more partitions', () => {
    const r = mulberry32(77);
    for (let c = 0; c < 16; c++) {
      const k = randomCase(r, c);
      const weighted = r() < 0.5;
      const streams: MixtureStream[] = Array.from({ length: int(r, 1, 3) }, () => {
        const shards = randomShards(r, int(r, 1, 6_000));
        return weighted ? { shards, weight: 0.1 + r() } : { shards, samples: int(r, 1, 8_000) };
      });
      const fullWorld = world(0, 1);
      const full = planMixtureRankEpoch(streams, fullWorld, resolveOrderOptions({ ...k.options, batchSize: k.batchSize * k.worldSize }, fullWorld), k.epoch);
      const plans = Array.from({ length: k.worldSize }, (_, rank) =>
        planMixtureRankEpoch(streams, world(rank, k.worldSize), resolveOrderOptions({ ...k.options, batchSize: k.batchSize }, world(rank, k.worldSize)), k.epoch),
      );
      assert.equal(plans[0]!.steps, full.steps, k.label);
      const rows = (b: { ids: number[]; streams: number[] }): string[] => b.ids.map((id, i) => `${id}/${b.streams[i]}`);
      checkSlices(k, full.steps, (s) => rows(full.batch(s)), (rank, s) => rows(plans[rank]!.batch(s)), stepOrderFor(r, full.steps));
    }
  });

  it('mixtures whose global batch is a multiple of 1,024 deliver every sample once (the last partition included)', () => {
    // The interleave's per-stream counts at position G read a checkpoint the constructor only
    // wrote for G not a multiple of 1,024: one partition delivered nothing, two delivered half.
    const streams: MixtureStream[] = [
      { shards: [{ rows: 3000, bytes: 1 }], samples: 3000 },
      { shards: [{ rows: 2000, bytes: 1 }, { rows: 500, bytes: 1 }], samples: 2000 },
    ];
    for (const partitions of [1, 2, 32]) {
      for (const shuffle of ['none', 'window'] as const) {
        const seen = new Map<number, number>();
        for (let rank = 0; rank < 32; rank++) {
          const w = world(rank, 32);
          const plan = planMixtureRankEpoch(streams, w, resolveOrderOptions({ batchSize: 32, seed: 5, shuffle, shuffleWindow: 100, partitions, epochs: 2 }, w), 0);
          for (let s = 0; s < plan.steps; s++) for (const id of plan.batchIds(s)) seen.set(id, (seen.get(id) ?? 0) + 1);
        }
        assert.equal(seen.size, 5000, `P=${partitions} ${shuffle}: distinct samples`);
        assert.ok([...seen.values()].every((n) => n === 1), `P=${partitions} ${shuffle}: each once`);
      }
    }
  });
});

/** The window order by definition: keys i + (u_i - 1/2) w, sorted per chunk by (fixed-point key, position). */
function referenceOrder(order: WindowOrder, size: number, window: number, key: ReturnType<typeof deriveKey>): number[] {
  const jitter = deriveKey(key, 2);
  let bits = 0;
  while (2 ** bits <= window) bits++;
  let indexBits = 0;
  while (2 ** indexBits <= 2 * window + 8) indexBits++;
  const fractionScale = 2 ** (52 - bits - indexBits);
  const entries = Array.from({ length: size }, (_, i) => {
    const k = i + (hashUnit(jitter, i) - 0.5) * window;
    let j = Math.floor(k / window);
    while (k < j * window) j--;
    while (k >= (j + 1) * window) j++;
    return { i, j, high: Math.floor((k - j * window) * fractionScale) };
  });
  entries.sort((a, b) => a.j - b.j || a.high - b.high || a.i - b.i);
  const cum = order.pieceCumulative;
  return entries.map(({ i }) => {
    let q = 0;
    while ((cum[q + 1] as number) <= i) q++;
    return (order.pieceStart[q] as number) + (i - (cum[q] as number));
  });
}

describe('window order against its definition', () => {
  it('sparse, strided and dense reads give the independently sorted order', () => {
    const r = mulberry32(9);
    for (let c = 0; c < 30; c++) {
      const shards = randomShards(r, int(r, 1, 20_000));
      const locator = new SampleLocator(shards);
      const start = int(r, 0, Math.floor(locator.totalRows / 3));
      const size = int(r, 1, locator.totalRows - start);
      const window = pick(r, [1, 2, 7, 64, 300, 1000, 4096, 30_000]);
      const key = deriveKey(ROOT_KEY, 1000 + c);
      const order = new WindowOrder({ start, size }, locator, key, window);
      const expected = referenceOrder(order, size, window, key);
      // A rank's pattern: runs of `run` deliveries every `period`.
      const period = int(r, 1, 600);
      const run = int(r, 1, period);
      const offset = int(r, 0, period - 1);
      for (let t0 = offset; t0 < size; t0 += period) {
        for (let t = t0; t < Math.min(size, t0 + run); t++) assert.equal(order.at(t), expected[t], `case ${c} t ${t} window ${window} period ${period}`);
      }
      const dense = new WindowOrder({ start, size }, locator, key, window);
      for (let t = 0; t < size; t++) if (dense.at(t) !== expected[t]) assert.fail(`dense case ${c} t ${t} window ${window}`);
    }
  });

  it('the hash written out for indices below 2^32 is hashUnit', () => {
    const r = mulberry32(3);
    for (let c = 0; c < 20; c++) {
      const key = deriveKey(ROOT_KEY, c, 17);
      const indices = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, ...Array.from({ length: 500 }, () => Math.floor(r() * 2 ** 32))];
      for (const i of indices) assert.equal(hashUnitSmall(key.lo, key.hi, i), hashUnit(key, i), `key ${c} index ${i}`);
    }
  });
});
