// Variable-length columns (lists, strings, binary) gathered into batch slots are byte-exact: empty
// lists and strings, null rows, rows from the middle of a record batch (offsets not starting at 0),
// batches whose rows cross record batches and shards, shuffled and in order, through both read
// paths; and with pyarrow, 64-bit offsets (large_list, large_string, large_binary).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeShard } from '../../src/dataset/encode-shard.js';
import { writeManifest } from '../../src/dataset/manifest.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ColumnSpec, type ManifestV1, type ShardEntry } from '../../src/dataset/types.js';
import type { ShardColumns } from '../../src/formats/column-data.js';
import { openStore } from '../../src/storage/index.js';
import { Loader, isVarColumn, type Batch, type LoaderOptions } from '../../src/index.js';
import { runCli } from '../fixtures/run-cli.js';

const ROWS = 157;

/** Row i's token list: empty every 5th row, else 1 to 23 tokens. */
const tokensOf = (i: number): number[] => (i % 5 === 0 ? [] : Array.from({ length: ((i * 7) % 23) + 1 }, (_, k) => i * 1000 + k));
/** Row i's text: null every 6th row from 1, empty every 6th from 3. */
const textOf = (i: number): string | null => (i % 6 === 1 ? null : i % 6 === 3 ? '' : `r${i}-`.repeat((i % 4) + 1));
/** Row i's bytes: 0 to 9 of them. */
const blobOf = (i: number): number[] => Array.from({ length: (i % 4) * 3 }, (_, k) => (i * 31 + k) & 255);

const enc = new TextEncoder();

function shardColumns(from: number, to: number): ShardColumns {
  const n = to - from;
  const tokOffsets = new Int32Array(n + 1);
  const txtOffsets = new Int32Array(n + 1);
  const blobOffsets = new Int32Array(n + 1);
  const validity = new Uint8Array(n);
  const toks: number[] = [];
  const txt: number[] = [];
  const blob: number[] = [];
  let nulls = 0;
  for (let r = 0; r < n; r++) {
    const i = from + r;
    toks.push(...tokensOf(i));
    tokOffsets[r + 1] = toks.length;
    const t = textOf(i);
    validity[r] = t === null ? 0 : 1;
    if (t === null) nulls += 1;
    else txt.push(...enc.encode(t));
    txtOffsets[r + 1] = txt.length;
    blob.push(...blobOf(i));
    blobOffsets[r + 1] = blob.length;
  }
  return {
    rows: n,
    columns: [
      { values: Int32Array.from(toks), offsets: tokOffsets, nullCount: 0 },
      { values: Uint8Array.from(txt), offsets: txtOffsets, validity, nullCount: nulls },
      { values: Uint8Array.from(blob), offsets: blobOffsets, nullCount: 0 },
    ],
  };
}

const SCHEMA: ColumnSpec[] = [
  { name: 'toks', dtype: 'int32', kind: 'list', nullable: false },
  { name: 'txt', dtype: 'string', kind: 'bytes', nullable: true },
  { name: 'blob', dtype: 'binary', kind: 'bytes', nullable: false },
];

/**
 * Three shards of uneven sizes, record batches of at most 7 rows. Without `maxRowBytes`, slots
 * are sized from the loader's varRowBytes (as for a dataset indexed from foreign files).
 */
async function writeDataset(dir: string, maxRowBytes = true): Promise<void> {
  await mkdir(join(dir, 'shards'), { recursive: true });
  const store = await openStore(dir);
  try {
    const entries: ShardEntry[] = [];
    const bounds = [0, 40, 41, ROWS];
    for (let s = 0; s + 1 < bounds.length; s++) {
      const r = encodeShard({ schema: SCHEMA, shard: shardColumns(bounds[s]!, bounds[s + 1]!), format: 'arrow', maxBatchRows: 7 });
      const path = `shards/s-${s}.arrow`;
      await store.put(path, r.bytes);
      const e: ShardEntry = { path, format: 'arrow', rows: r.rows, bytes: r.bytes.byteLength, hash: r.hash, layout: r.layout };
      if (r.maxRowBytes && maxRowBytes) e.maxRowBytes = r.maxRowBytes;
      if (r.pieceValues) e.pieceValues = r.pieceValues;
      entries.push(e);
    }
    const manifest: ManifestV1 = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema: SCHEMA, shards: entries,
      rows: ROWS, bytes: entries.reduce((a, e) => a + e.bytes, 0), createdBy: 'test',
    };
    await writeManifest(store, manifest);
  } finally {
    await store.close();
  }
}

/** Row `row` of a variable-length column, as numbers; null when the row is null. */
function rowOf(b: Batch, column: string, row: number): number[] | null {
  const c = b.columns[column]!;
  assert.ok(isVarColumn(c), `${column} is variable-length`);
  const valid = b.valid[column];
  if (valid && !valid[row]) {
    assert.equal(c.offsets[row + 1], c.offsets[row], `${column}: a null row holds no values`);
    return null;
  }
  return Array.from(c.values.subarray(c.offsets[row]!, c.offsets[row + 1]!) as ArrayLike<number>, Number);
}

/** Every row of every batch checked against its id; returns the ids in delivery order (and the batches decoded again into one-off slots). */
async function checkAll(dir: string, opts: LoaderOptions, check: (b: Batch, row: number, id: number) => void, stats?: { oneOff: number }): Promise<number[]> {
  const loader = await Loader.open(dir, opts);
  const ids: number[] = [];
  try {
    for await (const b of loader) {
      for (const [name, c] of Object.entries(b.columns)) {
        if (isVarColumn(c)) assert.equal(c.offsets[0], 0, `${name}: a batch's offsets start at 0`);
      }
      b.ids.forEach((id, row) => check(b, row, id));
      ids.push(...b.ids);
    }
    if (stats) stats.oneOff = loader.stats().oneOffBatches;
  } finally {
    await loader.close();
  }
  return ids;
}

test('variable-length columns are byte-exact: empty and null rows, runs across record batches and shards, both read paths', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-varlen-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await writeDataset(join(dir, 'full'));
  const check = (b: Batch, row: number, id: number): void => {
    assert.deepEqual(rowOf(b, 'toks', row), tokensOf(id), `toks of sample ${id}`);
    const txt = rowOf(b, 'txt', row);
    assert.equal(txt === null ? null : Buffer.from(txt).toString('utf8'), textOf(id), `txt of sample ${id}`);
    assert.deepEqual(rowOf(b, 'blob', row), blobOf(id), `blob of sample ${id}`);
  };
  const all = Array.from({ length: ROWS }, (_, i) => i);
  for (const read of ['mmap', 'pread'] as const) {
    // In order (a batch of 13 rows is a few long runs, cut where record batches and shards end),
    // then shuffled (runs of one row mostly).
    const inOrder = await checkAll(join(dir, 'full'), { batchSize: 13, workers: 2, read, pin: false }, check);
    assert.deepEqual(inOrder, all);
    const shuffled = await checkAll(join(dir, 'full'), { batchSize: 13, workers: 2, read, pin: false, shuffle: 'window', shuffleWindow: 50, seed: 5 }, check);
    assert.notDeepEqual(shuffled, all, 'shuffled');
    assert.deepEqual([...shuffled].sort((a, b) => a - b), all);
  }
  // Slots too small for a batch's values: the batch is decoded again into a one-off slot, still exact.
  const bare = join(dir, 'bare');
  await writeDataset(bare, false);
  const stats = { oneOff: 0 };
  const small = await checkAll(bare, { batchSize: 40, workers: 1, pin: false, varRowBytes: 8, shuffle: 'window', shuffleWindow: 60, seed: 9 }, check, stats);
  assert.deepEqual([...small].sort((a, b) => a - b), all);
  assert.ok(stats.oneOff > 0, 'some batches went to one-off slots');
});

function hasPyarrow(): boolean {
  try {
    execFileSync('python3', ['-c', 'import pyarrow'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('64-bit offsets (large_list, large_string, large_binary) are byte-exact, nulls and empty rows included', { skip: !hasPyarrow() && 'python3 with pyarrow is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-varlen-large-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const n = 61;
  // The same rows as tokensOf / textOf / blobOf, in record batches of 5 rows, one of them sliced
  // (offsets not starting at 0 in the file).
  execFileSync('python3', ['-c', `
import pyarrow as pa
n = ${n}
toks = [[] if i % 5 == 0 else [i * 1000 + k for k in range((i * 7) % 23 + 1)] for i in range(n)]
txt = [None if i % 6 == 1 else '' if i % 6 == 3 else ('r%d-' % i) * (i % 4 + 1) for i in range(n)]
blob = [bytes((i * 31 + k) & 255 for k in range((i % 4) * 3)) for i in range(n)]
t = pa.table({
  'toks': pa.array(toks, pa.large_list(pa.int64())),
  'txt': pa.array(txt, pa.large_string()),
  'blob': pa.array(blob, pa.large_binary()),
})
with pa.OSFile(${JSON.stringify(join(dir, 'a.arrow'))}, 'wb') as sink:
  with pa.ipc.new_file(sink, t.schema) as w:
    for b in t.to_batches(max_chunksize=5):
      w.write_batch(b)
`]);
  const r = await runCli(['index', dir]);
  assert.equal(r.code, 0, r.stderr);
  const check = (b: Batch, row: number, id: number): void => {
    assert.deepEqual(rowOf(b, 'toks', row), tokensOf(id), `toks of sample ${id}`);
    const txt = rowOf(b, 'txt', row);
    assert.equal(txt === null ? null : Buffer.from(txt).toString('utf8'), textOf(id), `txt of sample ${id}`);
    assert.deepEqual(rowOf(b, 'blob', row), blobOf(id), `blob of sample ${id}`);
  };
  const all = Array.from({ length: n }, (_, i) => i);
  for (const read of ['mmap', 'pread'] as const) {
    assert.deepEqual(await checkAll(dir, { batchSize: 12, workers: 1, read, pin: false }, check), all);
    const shuffled = await checkAll(dir, { batchSize: 12, workers: 2, read, pin: false, shuffle: 'window', shuffleWindow: 30, seed: 2 }, check);
    assert.deepEqual([...shuffled].sort((a, b) => a - b), all);
  }
});
