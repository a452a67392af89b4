// The building blocks of the order: id -> shard lookup, the Feistel permutation, the window
// shuffle, and the partition layout arithmetic.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { epochLayout, partitionOfPosition, partitionSize, partitionStart, shareSize, shareStart } from '../../src/plan/partition.js';
import { FeistelPermutation } from '../../src/plan/permutation.js';
import { deriveKey, ROOT_KEY } from '../../src/plan/prng.js';
import { datasetFingerprint, locateSample, samplesToShards } from '../../src/plan/index.js';
import { WindowOrder } from '../../src/plan/shuffle.js';

const isPermutation = (values: number[], n: number): boolean =>
  values.length === n && new Set(values).size === n && values.every((v) => Number.isInteger(v) && v >= 0 && v < n);

describe('samplesToShards', () => {
  const shards = [{ rows: 3, bytes: 1 }, { rows: 0, bytes: 1 }, { rows: 2, bytes: 1 }, { rows: 0, bytes: 1 }, { rows: 4, bytes: 1 }];

  it('maps global ids to (shard, row), skipping empty shards', () => {
    const expected = [[0, 0], [0, 1], [0, 2], [2, 0], [2, 1], [4, 0], [4, 1], [4, 2], [4, 3]];
    const locator = samplesToShards(shards);
    assert.equal(locator.totalRows, 9);
    expected.forEach(([shard, row], id) => assert.deepEqual(locateSample(shards, id), { shard, row }));
    assert.equal(locator.shardStart(4), 5);
    assert.equal(locator.shardStart(5), 9);
    assert.throws(() => locator.shardOf(9));
    assert.throws(() => locator.shardOf(-1));
  });

  it('fingerprints row counts, content hashes and their order', () => {
    const f = datasetFingerprint(shards);
    assert.equal(datasetFingerprint(shards.map((s) => ({ ...s, bytes: 99 }))), f);
    assert.notEqual(datasetFingerprint([...shards].reverse()), f);
    assert.notEqual(datasetFingerprint([...shards, { rows: 0, bytes: 0 }]), f);
    // Content hashes count too: same row counts, another file.
    const hashed = shards.map((s, i) => ({ ...s, hash: `sha256:${String(i).repeat(64).slice(0, 64)}` }));
    const other = hashed.map((s, i) => (i === 2 ? { ...s, hash: `sha256:${'f'.repeat(64)}` } : s));
    assert.notEqual(datasetFingerprint(hashed), f);
    assert.notEqual(datasetFingerprint(other), datasetFingerprint(hashed));
  });
});

describe('FeistelPermutation', () => {
  it('is a bijection on [0, n) for every size, and differs by key', () => {
    for (const n of [0, 1, 2, 3, 5, 16, 17, 100, 1000, 4097]) {
      const p = new FeistelPermutation(n, deriveKey(ROOT_KEY, n));
      assert.ok(isPermutation(Array.from({ length: n }, (_, i) => p.at(i)), n), `n=${n}`);
    }
    const a = new FeistelPermutation(1000, deriveKey(ROOT_KEY, 1));
    const b = new FeistelPermutation(1000, deriveKey(ROOT_KEY, 2));
    assert.notDeepEqual(Array.from({ length: 20 }, (_, i) => a.at(i)), Array.from({ length: 20 }, (_, i) => b.at(i)));
  });

  it('handles huge sizes without materializing them', () => {
    const p = new FeistelPermutation(2 ** 40 + 7, deriveKey(ROOT_KEY, 3));
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = p.at(2 ** 40 - i);
      assert.ok(v >= 0 && v < 2 ** 40 + 7);
      seen.add(v);
    }
    assert.equal(seen.size, 1000);
  });
});

describe('WindowOrder', () => {
  function shardsOf(sizes: number[]) {
    return sizes.map((rows) => ({ rows, bytes: rows }));
  }

  it('is a permutation of the partition for any window, shard layout and offset', () => {
    const layouts = [[1], [5, 0, 7], [100], [3, 3, 3, 3, 3, 3, 3, 3], [50, 1, 1, 1, 80, 2, 0, 33], Array.from({ length: 40 }, (_, i) => (i * 13) % 17)];
    for (const sizes of layouts) {
      const shards = shardsOf(sizes);
      const n = sizes.reduce((a, b) => a + b, 0);
      for (const window of [1, 2, 7, 64, 1000]) {
        for (const [start, size] of [[0, n], [Math.floor(n / 3), n - Math.floor(n / 3)], [0, Math.floor(n / 2)]] as const) {
          const order = new WindowOrder({ start, size }, samplesToShards(shards), deriveKey(ROOT_KEY, window, start), window);
          const values = Array.from({ length: size }, (_, t) => order.at(t));
          assert.ok(isPermutation(values, size), `sizes=${sizes} window=${window} range=${start}+${size}`);
          // Random access agrees with sequential access.
          for (let t = size - 1; t >= 0; t -= 7) assert.equal(order.at(t), values[t]);
        }
      }
    }
  });

  it('keeps each delivery within the window of the shard-shuffled sequence (bounded cache)', () => {
    // One-row shards: the shard shuffle alone is a full permutation, so measure on one shard.
    const shards = shardsOf([5000]);
    for (const window of [16, 256]) {
      const order = new WindowOrder({ start: 0, size: 5000 }, samplesToShards(shards), deriveKey(ROOT_KEY, 9), window);
      let moved = 0;
      for (let t = 0; t < 5000; t++) {
        const d = Math.abs(order.at(t) - t);
        assert.ok(d <= window + 2, `window ${window}: sample delivered ${d} away`);
        moved += d;
      }
      assert.ok(moved / 5000 > window / 8, `window ${window}: samples actually move (mean ${moved / 5000})`);
    }
  });

  it('shuffles shard order within the partition', () => {
    const shards = shardsOf(Array.from({ length: 50 }, () => 10));
    const order = new WindowOrder({ start: 0, size: 500 }, samplesToShards(shards), deriveKey(ROOT_KEY, 4), 1);
    const shardSequence = Array.from({ length: 50 }, (_, k) => Math.floor(order.at(k * 10 + 5) / 10));
    assert.notDeepEqual(shardSequence, Array.from({ length: 50 }, (_, k) => k));
  });
});

describe('epoch layout', () => {
  it('shares positions and samples among partitions with no gaps or overlaps', () => {
    for (const [n, g, p, dropLast] of [[1000, 64, 8, false], [1000, 64, 8, true], [7, 12, 12, false], [5, 12, 5, true], [99, 10, 3, false], [0, 4, 2, false]] as const) {
      const layout = epochLayout(n, g, p, dropLast);
      assert.equal(shareStart(layout, 0), 0);
      assert.equal(shareStart(layout, p), g);
      assert.equal(partitionStart(layout, 0), 0);
      assert.equal(partitionStart(layout, p), n);
      for (let q = 0; q < p; q++) {
        assert.ok(shareSize(layout, q) >= 1);
        assert.ok(partitionSize(layout, q) >= 0);
        for (let j = shareStart(layout, q); j < shareStart(layout, q + 1); j++) assert.equal(partitionOfPosition(layout, j), q);
        // No partition pads or drops more than its share of one step.
        assert.ok(Math.abs(partitionSize(layout, q) - layout.steps * shareSize(layout, q)) <= shareSize(layout, q), `${n} ${g} ${p} ${dropLast}`);
      }
    }
  });
});
