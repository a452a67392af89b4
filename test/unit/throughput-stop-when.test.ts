// measureLoader's stopWhen: asked after every batch with the running totals, true ends the run
// there (a bench's warm-up that stops once the rate is steady), and the loader's iteration is
// ended as a break does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureLoader } from '../../src/pipeline/throughput.js';
import type { Loader } from '../../src/pipeline/loader.js';

/** A loader stand-in: `total` batches of `size` rows, counting how many were asked for and whether the iteration was ended. */
function fakeLoader(total: number, size: number) {
  const seen = { yielded: 0, returned: false };
  const loader = {
    workers: 1,
    order: { batchSize: size },
    ring: { slots: [] },
    stats: () => ({ readSeconds: 0, decodeSeconds: 0, shardWaitSeconds: 0 }),
    async *[Symbol.asyncIterator]() {
      try {
        for (let i = 0; i < total; i++) {
          seen.yielded += 1;
          yield { size, columns: {} };
        }
      } finally {
        seen.returned = true;
      }
    },
  };
  return { loader: loader as unknown as Loader, seen };
}

test('stopWhen ends the run at the first batch it returns true for, with the totals so far', async () => {
  const { loader, seen } = fakeLoader(100, 4);
  const asked: Array<[number, number]> = [];
  const r = await measureLoader(loader, {
    stopWhen: (_now, batches, samples) => {
      asked.push([batches, samples]);
      return samples >= 20;
    },
  });
  assert.equal(r.batches, 5);
  assert.equal(r.samples, 20);
  assert.deepEqual(asked, [[1, 4], [2, 8], [3, 12], [4, 16], [5, 20]]);
  assert.equal(seen.yielded, 5);
  assert.equal(seen.returned, true);
});

test('without stopWhen (or while it returns false) the run goes to maxBatches', async () => {
  const { loader } = fakeLoader(100, 2);
  const r = await measureLoader(loader, { maxBatches: 7, stopWhen: () => false });
  assert.equal(r.batches, 7);
  const { loader: other } = fakeLoader(100, 2);
  assert.equal((await measureLoader(other, { maxBatches: 3 })).batches, 3);
});
