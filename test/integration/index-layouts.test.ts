// `gpufeed index` and `gpufeed prep` on the layouts users bring: the Hugging Face Hub layout
// (data/<split>-NNNNN-of-NNNNN.parquet), a `datasets` save_to_disk folder (IPC *stream* .arrow files
// beside state.json and dataset_info.json), files and globs, --out with a base, --columns/--drop,
// --shape. Files come from pyarrow (skipped, with the reason printed, when it is missing) and from
// gpufeed itself; values are read back through the loader and compared.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { batchColumnsJson } from '../../src/pipeline/batch-json.js';
import { Loader, type LoaderOptions } from '../../src/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';

const pyarrow = spawnSync('python3', ['-c', 'import pyarrow; print(pyarrow.__version__)'], { encoding: 'utf8' });
const NO_PYARROW = pyarrow.status === 0 ? undefined : `pyarrow is not importable by python3 (${(pyarrow.stderr || pyarrow.error?.message || 'no python3').trim().split('\n').pop()}); pip install pyarrow`;
if (NO_PYARROW) console.log(`# skipping pyarrow-written layouts: ${NO_PYARROW}`);

function python(script: string, cwd: string): void {
  const r = spawnSync('python3', ['-c', script], { cwd, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
}

/** Runs the CLI in-process, capturing stdout/stderr. */
const cli = cliInProcess;

/** Every row in dataset order, column by column, through the loader (fixed columns flattened). */
async function readAll(uri: string, read: 'mmap' | 'pread' = 'pread', extra: Partial<LoaderOptions> = {}): Promise<{ ids: number[]; columns: Record<string, unknown[]> }> {
  const loader = await Loader.open(uri, { batchSize: 7, workers: 2, shuffle: 'none', pin: false, read, ...extra });
  const ids: number[] = [];
  const columns: Record<string, unknown[]> = {};
  try {
    for await (const b of loader) {
      ids.push(...b.ids);
      for (const [name, values] of Object.entries(batchColumnsJson(b))) (columns[name] ??= []).push(...values);
    }
  } finally {
    await loader.close();
  }
  return { ids, columns };
}

async function manifestAt(dir: string): Promise<ManifestV1> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ManifestV1;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

// Hub layout: train rows have ids 0..19 (two files), test rows 100..109; emb is a fixed_size_list.
const HUB_SCRIPT = `
import pyarrow as pa, pyarrow.parquet as pq, os
os.makedirs('hub/data', exist_ok=True)
def table(first, n, split):
    ids = list(range(first, first + n))
    return pa.table({'id': pa.array(ids, pa.int64()), 'text': [f'{split}-{i}' for i in ids],
                     'emb': pa.array([[i, i + 0.5, -i, 2.0] for i in ids], pa.list_(pa.float32(), 4))})
pq.write_table(table(0, 10, 'train'), 'hub/data/train-00000-of-00002.parquet', row_group_size=4)
pq.write_table(table(10, 10, 'train'), 'hub/data/train-00001-of-00002.parquet')
pq.write_table(table(100, 10, 'test'), 'hub/data/test-00000-of-00001.parquet')
t = table(200, 3, 'x').set_column(2, 'emb', pa.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]], pa.list_(pa.float32())))
pq.write_table(t, 'ragged.parquet')
`;

function embOf(ids: number[]): number[] {
  return ids.flatMap((i) => [i, i + 0.5, 0 - i, 2]); // 0 - i: +0 for row 0, as Python writes it
}

test('Hub layout: several splits refused; --split with --out indexes read-only data elsewhere; --shape; values read through the base', { skip: NO_PYARROW }, async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  python(HUB_SCRIPT, dir);
  const hub = join(dir, 'hub');
  const before = await filesUnder(hub);

  const merged = await cli(['index', hub]);
  assert.equal(merged.code, 2);
  assert.match(merged.err, /GPUFEED_BAD_INPUT: .*hub: holds several splits, test \(1 file\), train \(2 files\); pass --split NAME/);

  const out = join(dir, 'idx-train');
  const r = await cli(['index', hub, '--split', 'train', '--out', out, '--shape', 'emb=2x2']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(await filesUnder(hub), before, 'nothing written into the data folder');
  const m = await manifestAt(out);
  assert.equal(m.base, hub);
  assert.deepEqual(m.shards.map((s) => s.path), ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet']);
  assert.deepEqual(m.schema.find((c) => c.name === 'emb'), { name: 'emb', dtype: 'float32', kind: 'fixed', shape: [2, 2], nullable: false });
  assert.equal(m.shards[0]!.layout.kind === 'parquet' && m.shards[0]!.layout.rowGroups.length, 3);

  const ids = Array.from({ length: 20 }, (_, i) => i);
  const got = await readAll(out);
  assert.deepEqual(got.ids, ids);
  assert.deepEqual(got.columns.id, ids);
  assert.deepEqual(got.columns.text, ids.map((i) => `train-${i}`));
  assert.deepEqual(got.columns.emb, embOf(ids));

  const verify = await cli(['verify', out]);
  assert.equal(verify.code, 0, verify.err);
  const inspect = await cli(['inspect', out, '--json']);
  assert.equal(inspect.code, 0, inspect.err);
  assert.equal(JSON.parse(inspect.out).base, hub);

  // A glob of the test split, one column dropped, manifest elsewhere: only test rows.
  const outTest = join(dir, 'idx-test');
  const g = await cli(['index', join(hub, 'data', 'test-*.parquet'), '--out', outTest, '--drop', 'text']);
  assert.equal(g.code, 0, g.err);
  const testIds = Array.from({ length: 10 }, (_, i) => 100 + i);
  const gotTest = await readAll(outTest);
  assert.deepEqual(Object.keys(gotTest.columns).sort(), ['emb', 'id']);
  assert.deepEqual(gotTest.columns.id, testIds);
  // pyarrow records the fixed_size_list in its Arrow schema: without --shape it is fixed [4].
  assert.deepEqual(gotTest.columns.emb, embOf(testIds), 'a fixed_size_list column without --shape is fixed-shape');
});

test('index refuses --shape the data disagrees with, and unknown --columns/--drop names, writing nothing', { skip: NO_PYARROW }, async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  python(HUB_SCRIPT, dir);
  const out = join(dir, 'idx');
  const wrong = await cli(['index', join(dir, 'hub'), '--split', 'train', '--out', out, '--shape', 'emb=3']);
  assert.equal(wrong.code, 2);
  // Files are read concurrently: either train file may be the one reported.
  assert.match(wrong.err, /GPUFEED_BAD_INPUT: .*train-0000[01]-of-00002\.parquet: column emb, row 1: has 4 values, --shape says 3/);
  const ragged = await cli(['index', join(dir, 'ragged.parquet'), '--out', out, '--shape', 'emb=4']);
  assert.equal(ragged.code, 2);
  assert.match(ragged.err, /GPUFEED_BAD_INPUT: .*ragged\.parquet: column emb, row 2: has 3 values, --shape says 4/);
  const unknown = await cli(['index', join(dir, 'hub'), '--split', 'test', '--out', out, '--columns', 'id,nope', '--drop', 'gone']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /GPUFEED_UNKNOWN_COLUMN: .*test-00000-of-00001\.parquet: no columns "nope", "gone" \(columns: id, text, emb\)/);
  const noSplit = await cli(['index', join(dir, 'hub'), '--split', 'validation', '--out', out]);
  assert.equal(noSplit.code, 2);
  assert.match(noSplit.err, /option split: .*no files of split "validation"; found test \(1 file\), train \(2 files\)/);
  await assert.rejects(readFile(join(out, 'index.json')), { code: 'ENOENT' });
});

// A `datasets` save_to_disk folder, made by hand: a stream file of three record batches, the two
// json sidecars, and a cache file `map` would leave (not listed in state.json).
const HF_SCRIPT = `
import pyarrow as pa, json, os
os.makedirs('hf', exist_ok=True)
ids = list(range(25))
t = pa.table({'id': pa.array(ids, pa.int64()), 'text': [f'row {i}' for i in ids], 'label': pa.array([i % 3 for i in ids], pa.int32()),
              'vec': pa.array([[i, i * 2, i * 3] for i in ids], pa.list_(pa.int16(), 3))})
with pa.OSFile('hf/data-00000-of-00001.arrow', 'wb') as f:
    w = pa.ipc.new_stream(f, t.schema)
    for b in t.to_batches(max_chunksize=10):
        w.write_batch(b)
    w.close()
with pa.OSFile('hf/cache-0123abcd.arrow', 'wb') as f:
    w = pa.ipc.new_stream(f, t.schema)
    w.write_table(t.slice(0, 5))
    w.close()
json.dump({'_data_files': [{'filename': 'data-00000-of-00001.arrow'}], '_fingerprint': 'f', '_format_type': None, '_split': 'train'}, open('hf/state.json', 'w'))
json.dump({'features': {'id': {'dtype': 'int64', '_type': 'Value'}}, 'splits': {}}, open('hf/dataset_info.json', 'w'))
`;

test('datasets save_to_disk folder (IPC stream files): index walks the messages, prep reads it, both skip the sidecars; same values', { skip: NO_PYARROW }, async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  python(HF_SCRIPT, dir);
  const hf = join(dir, 'hf');
  const ids = Array.from({ length: 25 }, (_, i) => i);
  const want = {
    id: ids, text: ids.map((i) => `row ${i}`), label: ids.map((i) => i % 3), vec: ids.flatMap((i) => [i, i * 2, i * 3]),
  };

  const out = join(dir, 'idx');
  const r = await cli(['index', hf, '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /hf: skipped 3 files that are not data: cache-0123abcd\.arrow, dataset_info\.json, state\.json/);
  const m = await manifestAt(out);
  assert.deepEqual(m.shards.map((s) => s.path), ['data-00000-of-00001.arrow']);
  const layout = m.shards[0]!.layout;
  assert.ok(layout.kind === 'arrow');
  assert.deepEqual(layout.batches.map((b) => b.rows), [10, 10, 5]);
  // Each batch starts where the previous one's body ends (the stream's messages, back to back).
  for (let i = 1; i < layout.batches.length; i++) {
    const prev: { offset: number; metadataLength: number; bodyLength: number } = layout.batches[i - 1]!;
    assert.equal(layout.batches[i]!.offset, prev.offset + prev.metadataLength + prev.bodyLength);
  }
  assert.deepEqual(m.schema.find((c) => c.name === 'vec'), { name: 'vec', dtype: 'int16', kind: 'fixed', shape: [3], nullable: false });
  for (const read of ['pread', 'mmap'] as const) {
    const got = await readAll(out, read);
    assert.deepEqual(got.ids, ids);
    assert.deepEqual(got.columns, want, `values through read ${read}`);
  }

  // The same folder through prep: stream input, sidecars and the cache file skipped, one column dropped.
  const prepped = join(dir, 'prepped');
  const p = await cli(['prep', hf, '-o', prepped, '-w', '0', '--drop', 'label']);
  assert.equal(p.code, 0, p.err);
  assert.match(p.err, /hf: skipped 3 files that are not data/);
  const viaPrep = await readAll(prepped);
  assert.deepEqual(viaPrep.columns, { id: want.id, text: want.text, vec: want.vec });
});

test('--drop leaves out a column of a type gpufeed cannot carry (a struct of image bytes), in index and prep', { skip: NO_PYARROW }, async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  python(`
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.feather as feather
t = pa.table({'label': pa.array([3, 1, 4, 1, 5], pa.int32()), 'image': pa.array([{'bytes': bytes([i]), 'path': f'{i}.png'} for i in range(5)])})
pq.write_table(t, 'img.parquet')
feather.write_feather(t, 'img.arrow', compression='uncompressed')
`, dir);
  const labels = [3, 1, 4, 1, 5];
  for (const name of ['img.parquet', 'img.arrow']) {
    const refused = await cli(['index', join(dir, name), '--out', join(dir, `bad-${name}`)]);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /GPUFEED_UNSUPPORTED_TYPE: .*column "image"/);
    const out = join(dir, `idx-${name}`);
    const r = await cli(['index', join(dir, name), '--out', out, '--drop', 'image']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual((await readAll(out)).columns, { label: labels });
    const prepped = join(dir, `prep-${name}`);
    const p = await cli(['prep', join(dir, name), '-o', prepped, '-w', '0', '--columns', 'label']);
    assert.equal(p.code, 0, p.err);
    assert.deepEqual((await readAll(prepped)).columns, { label: labels });
  }
});

test('gpufeed-written shards: index a glob with --out and --columns; a relative base; escapes still refused', async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  const src = join(dir, 'ds');
  const made = await makeDemoDataset(src, { rows: 120, seqLen: 4, format: 'arrow', shardSize: 1500 });
  assert.ok(made.shards.length >= 2);
  const original = await readAll(src);

  const out = join(dir, 'idx');
  const r = await cli(['index', join(src, 'shards', '*.arrow'), '--out', out, '--columns', 'label,input_ids']);
  assert.equal(r.code, 0, r.err);
  const m = await manifestAt(out);
  assert.equal(m.base, join(src, 'shards'));
  assert.deepEqual(m.schema.map((c) => c.name), ['input_ids', 'label'], 'kept columns in the file order');
  assert.deepEqual(m.shards.map((s) => `shards/${s.path}`), made.shards.map((s) => s.path));
  const got = await readAll(out);
  assert.deepEqual(got.ids, original.ids);
  assert.deepEqual(got.columns, { input_ids: original.columns.input_ids, label: original.columns.label });

  // A relative base resolves against the folder holding index.json.
  const moved = join(dir, 'elsewhere', 'deeper');
  await mkdir(moved, { recursive: true });
  await writeFile(join(moved, 'index.json'), JSON.stringify({ ...m, base: '../../ds/shards' }));
  assert.deepEqual((await readAll(moved)).columns.label, original.columns.label);

  // Shard paths stay inside the base whatever it is.
  await writeFile(join(moved, 'index.json'), JSON.stringify({ ...m, shards: [{ ...m.shards[0]!, path: '../index.json' }, ...m.shards.slice(1)] }));
  await assert.rejects(Loader.open(moved, { batchSize: 4, pin: false }), { code: 'GPUFEED_PATH_ESCAPE' });
  await writeFile(join(moved, 'index.json'), JSON.stringify({ ...m, base: 'http://example.com/x' }));
  await assert.rejects(Loader.open(moved, { batchSize: 4, pin: false }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'GPUFEED_MANIFEST_INVALID');
    assert.match(err.message, /field base "http:\/\/example\.com\/x" has an unsupported scheme/);
    return true;
  });

  // A manifest on S3 may not point at local disk, so index refuses to write one (before any request).
  const toS3 = await cli(['index', join(src, 'shards'), '--out', 's3://bucket/idx', '--s3-endpoint', 'http://127.0.0.1:9']);
  assert.equal(toS3.code, 2);
  assert.match(toS3.err, /GPUFEED_INVALID_OPTION: option out: s3:\/\/bucket\/idx is on S3 but the data is on local disk/);

  const again = await cli(['index', join(src, 'shards', '*.arrow'), '--out', out]);
  assert.equal(again.code, 2, 'an existing manifest at --out needs --overwrite');
  assert.match(again.err, /GPUFEED_OUTPUT_NOT_EMPTY/);
});

test('prep: a folder of several splits is refused; --split and --columns pick rows and columns', async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  const src = join(dir, 'jsonl');
  await mkdir(join(src, 'train'), { recursive: true });
  await mkdir(join(src, 'validation'), { recursive: true });
  const rows = (first: number) => Array.from({ length: 6 }, (_, i) => JSON.stringify({ a: first + i, b: `s${first + i}`, c: [first + i] })).join('\n') + '\n';
  await writeFile(join(src, 'train', 'part-0.jsonl'), rows(0));
  await writeFile(join(src, 'validation', 'part-0.jsonl'), rows(50));
  await writeFile(join(src, 'README.md'), '# not data\n');
  const refused = await cli(['prep', src, '-o', join(dir, 'out'), '-w', '0']);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /GPUFEED_BAD_INPUT: .*jsonl: holds several splits, train \(1 file\), validation \(1 file\); pass --split NAME/);
  const ok = await cli(['prep', src, '-o', join(dir, 'out'), '-w', '0', '--split', 'validation', '--columns', 'b,a']);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.err, /skipped 1 file that is not data: README\.md/);
  const got = await readAll(join(dir, 'out'));
  assert.deepEqual(got.columns, { a: [50, 51, 52, 53, 54, 55], b: ['s50', 's51', 's52', 's53', 's54', 's55'] });
  const unknown = await cli(['prep', src, '-o', join(dir, 'out2'), '-w', '0', '--split', 'train', '--drop', 'zz']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /GPUFEED_UNKNOWN_COLUMN: .*part-0\.jsonl: no column "zz"/);
  await assert.rejects(readFile(join(dir, 'out2', 'index.json')), { code: 'ENOENT' });
});

test('index an S3 glob with --out on local disk: base is the S3 prefix; verify and the loader read the shards from it', async (t: TestContext) => {
  const dir = await tempDir(t, 'gpufeed-layouts-');
  const src = join(dir, 'ds');
  const made = await makeDemoDataset(src, { rows: 90, seqLen: 2, format: 'parquet', shardSize: 800 });
  assert.ok(made.shards.length >= 2);
  const server = await startS3Server(['pub']);
  t.after(() => server.close());
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
  t.after(() => {
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  });
  for (const s of made.shards) await server.putObject('pub', `raw/${s.path}`, await readFile(join(src, s.path)));
  await server.putObject('pub', 'raw/README.md', 'not data');
  const out = join(dir, 'idx');
  const ep = ['--s3-endpoint', server.endpoint];
  const r = await cli(['index', 's3://pub/raw/shards/*.parquet', '--out', out, ...ep]);
  assert.equal(r.code, 0, r.err);
  const m = await manifestAt(out);
  assert.equal(m.base, 's3://pub/raw/shards');
  assert.deepEqual(m.shards.map((s) => `shards/${s.path}`), made.shards.map((s) => s.path));
  const verify = await cli(['verify', out, ...ep]);
  assert.equal(verify.code, 0, verify.err);
  const viaS3 = await readAll(out, 'pread', { s3Endpoint: server.endpoint, cacheDir: join(dir, 'cache'), cacheBytes: 1 << 24, minFreeBytes: 0 });
  const viaDisk = await readAll(src);
  assert.equal(viaS3.ids.length, 90);
  assert.deepEqual(viaS3, viaDisk);
});
