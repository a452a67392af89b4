// rebaseOffsets32 / rebaseOffsets64 (src/formats/offset-runs.ts): a run's offsets moved to the
// slot's cursor, checked as they go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BAD_OFFSETS, rebaseOffsets32, rebaseOffsets64 } from '../../src/formats/offset-runs.js';

/** The offsets a run should get, computed the slow way. */
function expected(src: readonly number[], at: number, count: number, cursor: number): number[] {
  return Array.from({ length: count + 1 }, (_, i) => cursor + src[at + i]! - src[at]!);
}

test('rebaseOffsets32: a run from the middle of a record batch, empty lists included, moved to the cursor', () => {
  // Rows of 3, 0, 0, 5, 1, 0 elements, the record batch's offsets starting at 10 (a sliced column).
  const raw = [10, 13, 13, 13, 18, 19, 19];
  const src = Int32Array.from(raw);
  for (const [at, count] of [[0, 6], [1, 3], [2, 1], [5, 1], [3, 0]] as const) {
    for (const cursor of [0, 7, 2 ** 31 - 100]) {
      const dst = new Int32Array(12).fill(-9);
      const got = rebaseOffsets32(src, at, count, dst, 2, cursor);
      assert.equal(got, raw[at + count]! - raw[at]!, `elements of [${at}, +${count})`);
      assert.deepEqual(Array.from(dst.subarray(2, 3 + count)), expected(raw, at, count, cursor));
      // Nothing outside the run's count + 1 entries is written.
      assert.deepEqual([dst[0], dst[1], dst[3 + count]], [-9, -9, -9]);
    }
  }
});

test('rebaseOffsets32: decreasing or negative offsets are BAD_OFFSETS, wherever in the run', () => {
  const dst = new Int32Array(8);
  assert.equal(rebaseOffsets32(Int32Array.from([0, 4, 3, 6]), 0, 3, dst, 0, 0), BAD_OFFSETS);
  assert.equal(rebaseOffsets32(Int32Array.from([0, 4, 5, 2]), 0, 3, dst, 0, 0), BAD_OFFSETS, 'the last below the one before');
  assert.equal(rebaseOffsets32(Int32Array.from([-4, 0, 2]), 0, 2, dst, 0, 0), BAD_OFFSETS, 'a negative first offset');
  assert.equal(rebaseOffsets32(Int32Array.from([9, 1, 5]), 1, 1, dst, 0, 0), 4, 'only the run is checked');
});

test('rebaseOffsets64: 64-bit offsets beyond 2^32 and 2^53, rebased exactly', () => {
  for (const base of [0n, 2n ** 40n, 2n ** 60n]) {
    const raw = [0n, 5n, 5n, 12n, 2n ** 20n].map((v) => v + base);
    const src = BigInt64Array.from(raw);
    const dst = new Int32Array(6).fill(-9);
    const got = rebaseOffsets64(src, 1, 3, dst, 1, 100);
    assert.equal(got, 2 ** 20 - 5);
    assert.deepEqual(Array.from(dst), [-9, 100, 100, 107, 100 + 2 ** 20 - 5, -9]);
  }
  const dst = new Int32Array(4);
  assert.equal(rebaseOffsets64(BigInt64Array.from([0n, 7n, 6n]), 0, 2, dst, 0, 0), BAD_OFFSETS, 'decreasing');
  assert.equal(rebaseOffsets64(BigInt64Array.from([-1n, 7n]), 0, 1, dst, 0, 0), BAD_OFFSETS, 'negative');
  assert.equal(rebaseOffsets64(BigInt64Array.from([0n, 2n ** 31n]), 0, 1, dst, 0, 0), BAD_OFFSETS, 'a run past int32 elements');
  assert.equal(rebaseOffsets64(BigInt64Array.from([3n, 3n]), 0, 1, dst, 2, 9), 0, 'one empty row');
  assert.deepEqual(Array.from(dst.subarray(2)), [9, 9]);
});
