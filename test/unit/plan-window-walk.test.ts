// The window shuffle walked forward (each chunk carrying the keys past its end into the next, and
// giving the next chunk's start) delivers exactly the order it gives when every index is asked of a
// fresh order (no carry, starts counted from the keys): random partitions, windows and strides.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveKey, ROOT_KEY } from '../../src/plan/prng.js';
import { SampleLocator } from '../../src/plan/samples.js';
import { WindowOrder } from '../../src/plan/shuffle.js';
import { mulberry32 } from '../helpers/seeded-random.js';

describe('window shuffle forward walk', () => {
  it('gives the same order as random access, and a permutation of the partition', () => {
    const r = mulberry32(41);
    for (let c = 0; c < 60; c++) {
      const shards = Array.from({ length: 1 + Math.floor(r() * 25) }, () => ({ rows: Math.floor(r() * 150), bytes: 1 }));
      const locator = new SampleLocator(shards);
      if (locator.totalRows < 2) continue;
      const start = Math.floor((r() * locator.totalRows) / 2);
      const size = 1 + Math.floor(r() * (locator.totalRows - start - 1));
      const window = 1 + Math.floor(r() * 200);
      const key = deriveKey(ROOT_KEY, c);
      const stride = 1 + Math.floor(r() * 9);
      const walked = new WindowOrder({ start, size }, locator, key, window);
      const seen = new Set<number>();
      for (let t = 0; t < size; t++) seen.add(walked.at(t));
      assert.equal(seen.size, size, 'a permutation');
      assert.ok([...seen].every((o) => o >= 0 && o < size));
      const strided = new WindowOrder({ start, size }, locator, key, window);
      for (let t = stride - 1; t < size; t += stride) {
        const fresh = new WindowOrder({ start, size }, locator, key, window).at(t);
        assert.equal(strided.at(t), fresh, `case ${c} t ${t} window ${window}`);
      }
    }
  });

  it('gives the same order when indices jump back and forth across chunks (a run of indices reuses the chunk the one before found)', () => {
    const r = mulberry32(43);
    for (let c = 0; c < 30; c++) {
      const shards = Array.from({ length: 1 + Math.floor(r() * 12) }, () => ({ rows: 20 + Math.floor(r() * 200), bytes: 1 }));
      const locator = new SampleLocator(shards);
      const size = locator.totalRows;
      const window = 1 + Math.floor(r() * 40);
      const key = deriveKey(ROOT_KEY, 100 + c);
      const reference = new WindowOrder({ start: 0, size }, locator, key, window);
      const expected = Array.from({ length: size }, (_, t) => reference.at(t));
      const jumping = new WindowOrder({ start: 0, size }, locator, key, window);
      // Short forward runs from random starts: chunks are computed, evicted (their buffers reused) and computed again.
      for (let k = 0; k < 200; k++) {
        const from = Math.floor(r() * size);
        const n = 1 + Math.floor(r() * 3 * window);
        for (let t = from; t < Math.min(size, from + n); t++) assert.equal(jumping.at(t), expected[t], `case ${c} t ${t} window ${window}`);
      }
    }
  });
});
