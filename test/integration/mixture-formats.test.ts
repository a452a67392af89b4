// A mixture of an Arrow stream and a Parquet stream with a variable-length column: one batch
// holds rows of both, read by two paths (Arrow reads planned then done together, Parquet runs
// copied at once), and every row's list must be its own. They came back empty, with exit 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader } from '../../src/index.js';
import { isVarColumn } from '../../src/pipeline/batch.js';

/** Stream s, row i: `toks` is [base + i, ...] of 1 + i % len values. */
function toks(s: number, i: number): number[] {
  const base = s === 0 ? 0 : 5000;
  return Array.from({ length: 1 + (i % (s === 0 ? 17 : 11)) }, (_, k) => base + i + k);
}

test('an Arrow and a Parquet stream with a list column in one batch: every row gets its own values', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-mixfmt-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dirs: string[] = [];
  for (const [s, format] of [[0, 'arrow'], [1, 'parquet']] as const) {
    const input = join(root, `${s}.jsonl`);
    writeFileSync(input, Array.from({ length: 120 }, (_, i) => JSON.stringify({ row: i, toks: toks(s, i) })).join('\n'));
    const out = join(root, format);
    await prepDataset([input], { out, format, shardSize: '2KiB', workers: 0, progress: false });
    dirs.push(out);
  }
  for (const shuffle of ['none', 'window'] as const) {
    const loader = await Loader.open(dirs.map((uri) => ({ uri, weight: 0.5 })), { batchSize: 8, epochs: 1, shuffle, workers: 2, seed: 3 });
    let rows = 0;
    const streams = new Set<number>();
    try {
      for await (const b of loader) {
        const c = b.columns.toks!;
        assert.ok(isVarColumn(c));
        const row = b.columns.row as BigInt64Array;
        for (let i = 0; i < b.size; i++) {
          const got: number[] = Array.from(c.values.subarray(c.offsets[i]!, c.offsets[i + 1]!) as Int32Array);
          assert.deepEqual(got, toks(b.stream![i]!, Number(row[i])), `${shuffle}: batch ${b.step} row ${i} (stream ${b.stream![i]}, row ${row[i]})`);
          streams.add(b.stream![i]!);
          rows += 1;
        }
      }
    } finally {
      await loader.close();
    }
    assert.deepEqual([...streams].sort(), [0, 1]);
    assert.ok(rows >= 200, `${shuffle}: ${rows} rows checked`);
  }
});
