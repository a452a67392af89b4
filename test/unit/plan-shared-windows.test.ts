// Window-shuffle chunks shared between the threads of one loader (plan/shared-windows.ts) and the
// linear sort of a chunk's packed keys (plan/bucket-sort.ts): the order must be exactly the one a
// thread computes alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRankEpoch, SharedWindows, sharedWindowsFor, createSharedWindows } from '../../src/plan/index.js';
import { sortPackedKeys } from '../../src/plan/bucket-sort.js';
import { Sfc32, ROOT_KEY } from '../../src/plan/prng.js';

const world = (rank: number, worldSize: number) => ({ rank, worldSize, localRank: 0, localWorldSize: 1 });

describe('SharedWindows', () => {
  it('gives every plan sharing a store the same ids as a plan alone, and serves later plans from it', () => {
    for (const [rows, perShard, window, worldSize, batchSize, partitions] of [[5000, 400, 512, 1, 32, 1], [7001, 97, 256, 2, 16, 4], [3000, 3000, 65536, 1, 64, 1]] as const) {
      const shards = Array.from({ length: Math.ceil(rows / perShard) }, (_, i) => ({ rows: Math.min(perShard, rows - i * perShard), bytes: 1 }));
      for (let rank = 0; rank < worldSize; rank++) {
        const options = { batchSize, shuffle: 'window' as const, shuffleWindow: window, seed: 11, partitions, epochs: 4, dropLast: false, pad: false };
        const buffers = sharedWindowsFor(options, worldSize, rows);
        assert.ok(buffers, 'a store for a window shuffle');
        const store = new SharedWindows(buffers);
        const alone = planRankEpoch(shards, world(rank, worldSize), options, 2);
        const first = planRankEpoch(shards, world(rank, worldSize), options, 2, store);
        const second = planRankEpoch(shards, world(rank, worldSize), options, 2, store);
        // Interleaved, as two workers claiming alternate steps.
        for (let s = 0; s < alone.steps; s++) assert.deepEqual((s % 2 ? first : second).batchIds(s), alone.batchIds(s), `rows ${rows} rank ${rank} step ${s}`);
        for (let s = 0; s < alone.steps; s++) assert.deepEqual((s % 2 ? second : first).batchIds(s), alone.batchIds(s));
      }
    }
  });

  it('hands a chunk to one writer, makes the others wait for it or compute their own, and copies it out once written', () => {
    const buffers = createSharedWindows(8, 100, 4);
    assert.ok(buffers);
    const a = new SharedWindows(buffers);
    const b = new SharedWindows(buffers);
    const mine = a.claim(0, 0, 5);
    assert.equal(mine.kind, 'mine');
    assert.equal(a.peek(0, 0, 5), undefined, 'not visible while written');
    // Being written by another thread: b waits (bounded), then computes its own.
    assert.equal(b.claim(0, 0, 5).kind, 'none');
    if (mine.kind !== 'mine') return;
    a.complete(mine, 40, Uint32Array.of(3, 1, 2));
    assert.deepEqual(b.peek(0, 0, 5), { start: 40, length: 3 });
    const hit = b.claim(0, 0, 5);
    assert.equal(hit.kind, 'hit');
    if (hit.kind === 'hit') assert.deepEqual([hit.chunk.start, ...hit.chunk.offsets], [40, 3, 1, 2]);
    // Another epoch's chunk in the same entry is not ours; chunk 9 maps to the same entry and takes it over.
    assert.equal(b.peek(1, 0, 5), undefined);
    const other = b.claim(0, 0, 9);
    assert.equal(other.kind, 'mine');
    if (other.kind === 'mine') b.abandon(other);
    assert.equal(a.peek(0, 0, 9), undefined, 'an abandoned entry is empty');
    assert.equal(a.peek(0, 0, 5), undefined, 'overwritten');
    assert.equal(a.claim(0, 0, -1).kind, 'none');
  });

  it('is not made for shuffles other than window, or windows past its byte cap', () => {
    assert.equal(sharedWindowsFor({ shuffle: 'none', shuffleWindow: 64 }, 1, 1000), undefined);
    assert.equal(sharedWindowsFor({ shuffle: 'window', shuffleWindow: 2 ** 24 }, 1, 2 ** 30), undefined);
  });
});

describe('sortPackedKeys', () => {
  it('sorts exactly as Float64Array.prototype.sort', () => {
    const rng = new Sfc32(ROOT_KEY);
    for (const [n, indexBits, highRange] of [[1, 4, 8], [2, 4, 8], [1000, 12, 2 ** 20], [4099, 14, 2 ** 30], [500, 10, 3]] as const) {
      // Distinct keys; a tiny highRange piles most keys into few buckets.
      const seen = new Set<number>();
      const values = new Float64Array(n);
      for (let q = 0; q < n; q++) {
        let v: number;
        do v = rng.below(highRange) * 2 ** indexBits + rng.below(2 ** indexBits); while (seen.has(v));
        seen.add(v);
        values[q] = v;
      }
      const expected = Float64Array.from(values).sort();
      sortPackedKeys(values, indexBits, highRange);
      assert.deepEqual(values, expected, `n ${n}`);
    }
  });
});
