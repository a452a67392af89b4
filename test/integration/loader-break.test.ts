// Leaving a loop over a loader with break: the last batch stays valid (the loop never asked for
// the next one), and a new loop over the same loader takes its slot back, so breaking out again
// and again never runs out of slots. The same for a packed loader.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, type Batch } from '../../src/index.js';

const ROWS = 200;

describe('Loader: break and iterate again', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-break-'));
  const dir = join(root, 'ds');
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ label: i * 3, tokens: Array.from({ length: 1 + (i % 7) }, (_, k) => i + k) })).join('\n'));
    await prepDataset([input], { out: dir, format: 'arrow', shardSize: 2000, workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('a loader broken out of 10 times with 4 slots keeps delivering, in plan order, and the kept batch stays valid until the next loop', async () => {
    const loader = await Loader.open(dir, { batchSize: 8, slots: 4, workers: 1, shuffle: 'none', columns: ['label'] });
    try {
      let next = 0;
      for (let round = 0; round < 10; round++) {
        let kept: Batch | undefined;
        for await (const b of loader) {
          kept = b;
          break;
        }
        assert.ok(kept, `round ${round} got a batch`);
        // Valid after break: its rows are the plan's next ones, with their own labels.
        assert.deepEqual(kept.ids, Array.from({ length: 8 }, (_, i) => next + i), `round ${round}`);
        assert.deepEqual(Array.from(kept.columns.label as BigInt64Array, Number), kept.ids.map((id) => id * 3));
        next += 8;
      }
    } finally {
      await loader.close();
    }
  });

  it('a packed loader broken out of 10 times keeps delivering', async () => {
    const loader = await Loader.open(dir, { batchSize: 2, slots: 4, workers: 1, shuffle: 'none', columns: ['tokens'], pack: { column: 'tokens', length: 16 } });
    try {
      const seen: number[] = [];
      for (let round = 0; round < 10; round++) {
        for await (const b of loader) {
          seen.push(b.step);
          break;
        }
      }
      assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => i));
    } finally {
      await loader.close();
    }
  });
});
