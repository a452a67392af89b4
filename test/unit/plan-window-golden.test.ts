// The window shuffle's order is a resume contract: the same seed, epoch and options must give the
// same sample ids in the same batches in every release. These fingerprints were taken from the
// implementation before the single-pass scan (plan/window-scan.ts); a change of any id, batch or
// stream moves them. Windows: powers of two (the default 2^16 among them), odd, and larger than a
// partition; 1, 2, 8 partitions shared by many ranks, and one or more per rank.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planMixtureRankEpoch, planRankEpoch, resolveOrderOptions, type MixtureStream, type ShardSize, type World } from '../../src/plan/index.js';

const world = (rank: number, worldSize: number): World => ({ rank, worldSize, localRank: rank % 8, localWorldSize: 8 });

/** Shards of 0 to 1,500 rows from a fixed linear congruence: the same layout everywhere. */
function shards(total: number, salt: number): ShardSize[] {
  const out: ShardSize[] = [];
  let state = salt >>> 0;
  for (let left = total; left > 0; ) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const rows = Math.min(left, state % 1501);
    out.push({ rows, bytes: 1 });
    left -= rows;
  }
  return out;
}

/** FNV-1a over (step, row, id[, stream]) of the given ranks' whole epoch. */
function fingerprint(batches: (rank: number, step: number) => { ids: number[]; streams?: number[] }, steps: number, ranks: readonly number[]): string {
  let h = 0x811c9dc5;
  const add = (x: number): void => {
    h = Math.imul(h ^ (x & 0xffff), 0x01000193);
    h = Math.imul(h ^ Math.floor(x / 65536), 0x01000193);
  };
  for (const rank of ranks) {
    for (let step = 0; step < steps; step++) {
      const b = batches(rank, step);
      add(step);
      add(b.ids.length);
      b.ids.forEach((id, row) => {
        add(id);
        add(b.streams ? (b.streams[row] as number) : 0);
      });
    }
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

interface GoldenCase {
  window: number;
  partitions: number;
  worldSize: number;
  batchSize: number;
  seed: number;
  epoch: number;
  dropLast?: boolean;
  pad?: boolean;
}

const SINGLE: Array<GoldenCase & { expected: string }> = [
  { window: 1 << 16, partitions: 1, worldSize: 64, batchSize: 16, seed: 17, epoch: 3, expected: '79c0b53b' },
  { window: 1 << 12, partitions: 2, worldSize: 64, batchSize: 8, seed: 1, epoch: 0, expected: '034b504e' },
  { window: 1000, partitions: 8, worldSize: 32, batchSize: 7, seed: 99, epoch: 2, pad: true, expected: '0cd41f4a' },
  { window: 4097, partitions: 32, worldSize: 32, batchSize: 5, seed: 5, epoch: 1, dropLast: true, expected: 'efade869' },
  { window: 333, partitions: 64, worldSize: 16, batchSize: 9, seed: 123456, epoch: 0, expected: 'b6dc76c9' },
  { window: 1 << 20, partitions: 1, worldSize: 16, batchSize: 32, seed: 8, epoch: 1, expected: '9d5fa5b0' },
  { window: 1, partitions: 4, worldSize: 8, batchSize: 3, seed: 2, epoch: 0, expected: '2b9fab4f' },
];

const MIXED: Array<GoldenCase & { expected: string }> = [
  { window: 1 << 16, partitions: 1, worldSize: 128, batchSize: 8, seed: 17, epoch: 3, expected: 'c8b7e42b' },
  { window: 1 << 14, partitions: 2, worldSize: 64, batchSize: 4, seed: 3, epoch: 0, expected: 'cc716b87' },
  { window: 5000, partitions: 8, worldSize: 64, batchSize: 6, seed: 77, epoch: 1, pad: true, expected: '61bf6822' },
  { window: 2048, partitions: 128, worldSize: 64, batchSize: 4, seed: 4, epoch: 2, dropLast: true, expected: '69c0a535' },
];

const ranksOf = (worldSize: number): number[] => [0, 1, Math.floor(worldSize / 2) + 3, worldSize - 1];

function options(c: GoldenCase) {
  return { batchSize: c.batchSize, seed: c.seed, shuffle: 'window' as const, shuffleWindow: c.window, partitions: c.partitions, dropLast: c.dropLast ?? false, pad: c.pad ?? false, epochs: 8 };
}

function singleFingerprint(c: GoldenCase): string {
  const data = shards(400_000, 7);
  const plans = new Map(ranksOf(c.worldSize).map((rank) => [rank, planRankEpoch(data, world(rank, c.worldSize), resolveOrderOptions(options(c), world(rank, c.worldSize)), c.epoch)]));
  const steps = plans.get(0)!.steps;
  return fingerprint((rank, step) => ({ ids: plans.get(rank)!.batchIds(step) }), steps, ranksOf(c.worldSize));
}

function mixedFingerprint(c: GoldenCase): string {
  const streams: MixtureStream[] = [
    { shards: shards(240_000, 11), weight: 0.5 },
    { shards: shards(120_000, 12), weight: 0.3 },
    { shards: shards(40_000, 13), weight: 0.2 },
  ];
  const plans = new Map(ranksOf(c.worldSize).map((rank) => [rank, planMixtureRankEpoch(streams, world(rank, c.worldSize), resolveOrderOptions(options(c), world(rank, c.worldSize)), c.epoch)]));
  const steps = plans.get(0)!.steps;
  return fingerprint((rank, step) => plans.get(rank)!.batch(step), steps, ranksOf(c.worldSize));
}

describe('window shuffle golden orders (the resume contract)', () => {
  it('single datasets give the recorded order', () => {
    assert.deepEqual(SINGLE.map((c) => singleFingerprint(c)), SINGLE.map((c) => c.expected));
  });
  it('mixtures give the recorded order', () => {
    assert.deepEqual(MIXED.map((c) => mixedFingerprint(c)), MIXED.map((c) => c.expected));
  });
});
