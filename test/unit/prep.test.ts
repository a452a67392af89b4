import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/prep.js';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { loadManifest } from '../../src/dataset/manifest.js';
import { verifyDataset } from '../../src/dataset/verify.js';
import { LocalStore } from '../../src/storage/local.js';
import {
  normalize, readDatasetRows, sampleRows, tempDir, writeArrowInput, writeCsv, writeJsonl, writeParquetInput, type SampleRow,
} from '../fixtures/dataset-fixtures.js';

const N = 23;
const rows = sampleRows(N);
const want = rows.map((r) => normalize(r) as Record<string, unknown>);

type Maker = (path: string, rows: readonly SampleRow[]) => Promise<string>;
const INPUTS: [string, string, Maker][] = [
  ['jsonl', 'in.jsonl', (p, r) => writeJsonl(p, r)],
  ['jsonl.gz', 'in.jsonl.gz', (p, r) => writeJsonl(p, r, true)],
  ['csv', 'in.csv', writeCsv],
  ['parquet', 'in.parquet', writeParquetInput],
  ['arrow file', 'in.arrow', (p, r) => writeArrowInput(p, r)],
  ['arrow stream', 'in.arrows', (p, r) => writeArrowInput(p, r, true)],
];

for (const [label, name, make] of INPUTS) {
  for (const format of ['arrow', 'parquet'] as const) {
    test(`prep ${label} -> ${format}: schema and values round-trip`, async (t) => {
      const dir = await tempDir(t);
      const input = await make(join(dir, name), rows);
      const out = join(dir, 'ds');
      // A small shard size so the rows span several shards, in order.
      const manifest = await prepDataset([input], { out, format, shapes: { ids: [4] }, shardSize: 300, workers: 0, progress: false });
      assert.ok(manifest.shards.length > 1, 'several shards');
      assert.equal(manifest.rows, N);
      const byName = Object.fromEntries(manifest.schema.map((c) => [c.name, c]));
      assert.deepEqual(byName.ids, { name: 'ids', dtype: 'int32', kind: 'fixed', shape: [4], nullable: false });
      assert.equal(byName.label!.dtype, 'int64');
      assert.equal(byName.score!.dtype, 'float64');
      assert.equal(byName.score!.nullable, true);
      assert.equal(byName.text!.kind, 'bytes');
      assert.equal(byName.flag!.dtype, 'bool');
      assert.equal(byName.toks!.kind, 'list');
      assert.deepEqual(await loadManifest(new LocalStore(out)), manifest);
      const got = (await readDatasetRows(out, manifest)).map((r) => ({ ...r, toks: r.toks ?? [] }));
      assert.deepEqual(got, want);
      assert.ok((await verifyDataset(out)).ok);
    });
  }
}

test('prep: several inputs keep input order; folders sorted', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'in'));
  await writeJsonl(join(dir, 'in', 'b.jsonl'), [{ x: 3 }, { x: 4 }]);
  await writeJsonl(join(dir, 'in', 'a.jsonl'), [{ x: 1 }, { x: 2 }]);
  await writeJsonl(join(dir, 'first.jsonl'), [{ x: 0 }]);
  const out = join(dir, 'ds');
  const m = await prepDataset([join(dir, 'first.jsonl'), join(dir, 'in')], { out, shardSize: 10, workers: 0 });
  assert.deepEqual((await readDatasetRows(out, m)).map((r) => r.x), [0, 1, 2, 3, 4]);
});

test('prep: a row of the wrong --shape names the file and line; nothing is left behind', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'in.jsonl');
  await writeFile(path, '{"ids":[1,2,3,4]}\n\n{"ids":[1,2,3]}\n');
  const out = join(dir, 'ds');
  await assert.rejects(prepDataset([path], { out, shapes: { ids: [4] }, shardSize: 1, workers: 0 }), (e: Error & { code?: string; details?: Record<string, unknown> }) => {
    assert.equal(e.code, 'GPUFEED_BAD_INPUT');
    assert.ok(e.message.includes(`${path}, line 3`), e.message);
    assert.match(e.message, /column "ids": expected 4 values \(shape \[4\]\), got 3/);
    assert.equal(e.details?.row, 3);
    return true;
  });
  // The first shard was written before the bad row; it is removed again, and no manifest exists.
  assert.deepEqual(await readdir(join(out, 'shards')).catch(() => []), []);
});

test('prep: non-empty output refused, existing files untouched; --overwrite replaces only a gpufeed dataset', async (t) => {
  const dir = await tempDir(t);
  const input = await writeJsonl(join(dir, 'in.jsonl'), [{ x: 1 }, { x: 2 }]);
  const out = join(dir, 'ds');
  await mkdir(out);
  await writeFile(join(out, 'precious.txt'), 'keep me');
  for (const overwrite of [false, true]) {
    await assert.rejects(prepDataset([input], { out, overwrite, workers: 0 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'GPUFEED_OUTPUT_NOT_EMPTY');
      assert.ok(e.message.includes('out'), e.message);
      return true;
    });
    assert.deepEqual(await readdir(out), ['precious.txt']);
    assert.equal(await readFile(join(out, 'precious.txt'), 'utf8'), 'keep me');
  }

  const out2 = join(dir, 'ds2');
  const first = await prepDataset([input], { out: out2, workers: 0 });
  await assert.rejects(prepDataset([input], { out: out2, workers: 0 }), { code: 'GPUFEED_OUTPUT_NOT_EMPTY' });
  // Bad input with --overwrite: the old dataset stays whole.
  const bad = join(dir, 'bad.jsonl');
  await writeFile(bad, '{"x":1}\n{"x":"oops"}\n');
  await assert.rejects(prepDataset([bad], { out: out2, overwrite: true, workers: 0, types: { x: 'int64' } }), { code: 'GPUFEED_BAD_INPUT' });
  assert.deepEqual(await loadManifest(new LocalStore(out2)), first);
  assert.ok((await verifyDataset(out2)).ok);
  // Good input with --overwrite: new dataset, old shards gone.
  const input2 = await writeJsonl(join(dir, 'in2.jsonl'), [{ x: 7 }]);
  const second = await prepDataset([input2], { out: out2, overwrite: true, workers: 0 });
  assert.equal(second.rows, 1);
  const files = await readdir(join(out2, 'shards'));
  assert.deepEqual(files, second.shards.map((s) => s.path.slice('shards/'.length)));
  // A folder with files besides the dataset is not wiped.
  await writeFile(join(out2, 'notes.md'), 'mine');
  await assert.rejects(prepDataset([input], { out: out2, overwrite: true, workers: 0 }), /not part of its gpufeed dataset/);
  assert.deepEqual(await loadManifest(new LocalStore(out2)), second);
});

test('prep: options out of range name the option', async (t) => {
  const dir = await tempDir(t);
  const input = await writeJsonl(join(dir, 'in.jsonl'), [{ x: 1 }]);
  const out = join(dir, 'ds');
  const cases: [Record<string, unknown>, string][] = [
    [{ shardSize: 0 }, 'shard-size'],
    [{ shardSize: '12 parsecs' }, 'shard-size'],
    [{ format: 'xyz' }, 'format'],
    [{ format: 'parquet', compression: 'lz5' }, 'compression'],
    [{ workers: -1 }, 'workers'],
    [{ shapes: { x: [0] } }, 'shape'],
    [{ types: { x: 'int128' } }, 'type'],
  ];
  for (const [extra, option] of cases) {
    await assert.rejects(prepDataset([input], { out, workers: 0, ...extra } as never), (e: Error & { code?: string; details?: { option?: string } }) => {
      assert.equal(e.code, 'GPUFEED_INVALID_OPTION', e.message);
      assert.equal(e.details?.option, option);
      assert.ok(e.message.includes(option));
      return true;
    });
  }
  assert.deepEqual(await readdir(dir), ['in.jsonl']);
});

test('prep: values that do not fit the inferred type name file, line and a fix', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'in.jsonl');
  const lines = Array.from({ length: 5 }, (_, i) => JSON.stringify({ n: i, toks: [i] }));
  lines.push(JSON.stringify({ n: 1.5, toks: [1] }));
  await writeFile(path, lines.join('\n'));
  await assert.rejects(prepDataset([path], { out: join(dir, 'a'), workers: 0, sampleRows: 5 }), (e: Error) =>
    e.message.includes(`${path}, line 6`) && e.message.includes('--type n=float64'));
  lines[5] = JSON.stringify({ n: 1, toks: [2 ** 40] });
  await writeFile(path, lines.join('\n'));
  await assert.rejects(prepDataset([path], { out: join(dir, 'b'), workers: 0, sampleRows: 5 }), (e: Error) =>
    e.message.includes(`${path}, line 6`) && e.message.includes('--type toks=int64'));
  lines[5] = JSON.stringify({ n: 1, toks: [2], extra: 1 });
  await writeFile(path, lines.join('\n'));
  await assert.rejects(prepDataset([path], { out: join(dir, 'c'), workers: 0, sampleRows: 5 }), /column "extra" is not in the schema/);
});

test('makeDemoDataset writes a verifiable dataset of the demo schema', async (t) => {
  const dir = await tempDir(t);
  for (const format of ['arrow', 'parquet'] as const) {
    const out = join(dir, format);
    const m = await makeDemoDataset(out, { rows: 300, seqLen: 64, format, shardSize: 32 << 10, labelType: 'int32' });
    assert.equal(m.rows, 300);
    assert.ok(m.shards.length > 1);
    assert.deepEqual(m.schema.map((c) => `${c.name}:${c.kind}:${c.dtype}`), ['input_ids:fixed:int32', 'label:scalar:int32', 'text:bytes:string']);
    const got = await readDatasetRows(out, m);
    assert.equal(got.length, 300);
    assert.equal((got[5]!.input_ids as number[]).length, 64);
    assert.equal(got[5]!.text, (got[5]!.text as string).startsWith('demo sample 5') ? got[5]!.text : 'demo sample 5 ...');
    assert.ok((await verifyDataset(out)).ok);
  }
});
