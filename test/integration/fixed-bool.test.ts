// Fixed-shape bool columns (one bit a value in Arrow, unpacked to a byte each in the batch), as
// prep writes them and as pyarrow writes a fixed_size_list<bool> in a compressed Feather file
// read in place: every value, in a shuffled order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { indexDataset } from '../../src/cli/index-cmd.js';
import { prepDataset, writeManifest } from '../../src/dataset/index.js';
import { openStore } from '../../src/storage/index.js';
import { Loader } from '../../src/index.js';
import { pythonHas } from '../helpers/python-modules.js';

const ROWS = 57;
const PER = 5;
const maskOf = (i: number): boolean[] => Array.from({ length: PER }, (_, k) => (i + k) % 3 === 0);


/** id -> mask as delivered, over one shuffled epoch with several workers. */
async function masks(dir: string): Promise<Map<number, boolean[]>> {
  const loader = await Loader.open(dir, { batchSize: 8, workers: 2, shuffle: 'window', shuffleWindow: 16, seed: 3, pin: false });
  const out = new Map<number, boolean[]>();
  try {
    for await (const b of loader) {
      assert.deepEqual(b.shape('mask'), [b.size, PER]);
      const m = b.columns.mask as Uint8Array;
      b.ids.forEach((id, i) => out.set(Number(id), Array.from(m.subarray(i * PER, (i + 1) * PER), (v) => v === 1)));
    }
  } finally {
    await loader.close();
  }
  return out;
}

function checkAll(got: Map<number, boolean[]>): void {
  assert.equal(got.size, ROWS);
  for (let i = 0; i < ROWS; i++) assert.deepEqual(got.get(i), maskOf(i), `mask of row ${i}`);
}

for (const format of ['arrow', 'parquet'] as const) {
  test(`prep --shape on a bool list (${format} shards): every bit in place`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'gpufeed-fixed-bool-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const input = join(dir, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ mask: maskOf(i) })).join('\n') + '\n');
    await prepDataset([input], { out: join(dir, 'ds'), format, shapes: { mask: [PER] }, shardSize: 200, workers: 0, progress: false });
    checkAll(await masks(join(dir, 'ds')));
  });
}

test('a fixed_size_list<bool> in pyarrow\'s default (LZ4) Feather, indexed in place', { skip: !pythonHas('pyarrow') && 'python3 with pyarrow is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-fixed-bool-pa-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = `
import pyarrow as pa, pyarrow.feather as f, sys
rows = [[(i + k) % 3 == 0 for k in range(${PER})] for i in range(${ROWS})]
t = pa.table({'mask': pa.array(rows, pa.list_(pa.bool_(), ${PER}))})
f.write_feather(t, sys.argv[1], chunksize=10)
`;
  execFileSync('python3', ['-c', script, join(dir, 'data.arrow')]);
  const store = await openStore(dir);
  try {
    await writeManifest(store, await indexDataset(store));
  } finally {
    await store.close();
  }
  checkAll(await masks(dir));
});
