// Pure pieces of index/prep layouts: split names, a manifest's base, column selection, state.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveBaseUri } from '../../src/dataset/base-uri.js';
import { parseColumnList, selectColumnNames } from '../../src/dataset/column-selection.js';
import { chooseFolderFiles, stateDataFiles } from '../../src/dataset/folder-layout.js';
import { selectSplit, splitOf } from '../../src/dataset/splits.js';
import { validateManifest } from '../../src/dataset/manifest.js';

test('splitOf: Hub file names and split folders; other names have none', () => {
  const cases: [string, string | undefined][] = [
    ['data/train-00000-of-00003.parquet', 'train'],
    ['data/validation-00000-of-00001.parquet', 'validation'],
    ['test-00000-of-00001-4f1c2a.parquet', 'test'],
    ['data/test/0000.parquet', 'test'],
    ['default/train/0000.parquet', 'train'],
    ['data/test/train-0.parquet', 'test'],
    ['squad-train.arrow', 'train'],
    ['squad-validation-00000-of-00002.arrow', 'validation'],
    ['train.jsonl.gz', 'train'],
    ['data-00000-of-00001.arrow', undefined],
    ['latest-00000.parquet', undefined],
    ['my_test_file.parquet', undefined],
    ['contest/part-0.parquet', undefined],
    ['shards/abc-00001.arrow', undefined],
  ];
  for (const [path, want] of cases) assert.equal(splitOf(path), want, path);
});

test('selectSplit: one split passes, several are refused naming them, --split picks or names what exists', () => {
  const id = (p: string): string => p;
  assert.deepEqual(selectSplit(['train-0.parquet', 'train-1.parquet', 'extra.parquet'], id, undefined, 'd'), ['train-0.parquet', 'train-1.parquet', 'extra.parquet']);
  assert.throws(() => selectSplit(['test-0.parquet', 'train-0.parquet', 'train-1.parquet'], id, undefined, 'd'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'GPUFEED_BAD_INPUT');
    assert.match(err.message, /^d: holds several splits, test \(1 file\), train \(2 files\); pass --split NAME/);
    return true;
  });
  assert.deepEqual(selectSplit(['test-0.parquet', 'train-0.parquet'], id, 'TRAIN', 'd'), ['train-0.parquet']);
  assert.throws(() => selectSplit(['a.parquet'], id, 'test', 'd'), /option split: d: no files of split "test"; no split names found/);
});

test('resolveBaseUri: absolute, file://, s3://, relative to the manifest; S3 manifests never reach local disk', () => {
  const where = 'x/index.json';
  assert.equal(resolveBaseUri('/data/hub', 'file:///idx', where), '/data/hub');
  assert.equal(resolveBaseUri('file:///data/hub', 'file:///idx', where), '/data/hub');
  assert.equal(resolveBaseUri('../data', 'file:///a/idx', where), '/a/data');
  assert.equal(resolveBaseUri('s3://b/p', 'file:///idx', where), 's3://b/p');
  assert.equal(resolveBaseUri('../raw/train', 's3://bk/idx/v1', where), 's3://bk/idx/raw/train');
  for (const base of ['/etc', 'file:///etc']) {
    assert.throws(() => resolveBaseUri(base, 's3://bk/idx', where), /field base .* is on local disk; a manifest on S3 may only name an S3 base/);
  }
  assert.throws(() => resolveBaseUri('../../..', 's3://bk/idx', where), { code: 'GPUFEED_MANIFEST_INVALID', message: /climbs above the root of bucket bk/ });
  assert.throws(() => resolveBaseUri('gs://b/p', 'file:///idx', where), /unsupported scheme/);
  assert.throws(() => resolveBaseUri('a\\b', 'file:///idx', where), /backslash/);
});

test('manifest base: validated as a non-empty string', () => {
  const m = {
    format: 'gpufeed-dataset', version: 1, schema: [{ name: 'a', dtype: 'int32', kind: 'scalar', nullable: false }],
    shards: [], rows: 0, bytes: 0,
  };
  assert.equal(validateManifest({ ...m, base: '/data' }, 'w').base, '/data');
  assert.equal(validateManifest(m, 'w').base, undefined);
  assert.throws(() => validateManifest({ ...m, base: 3 }, 'w'), { code: 'GPUFEED_MANIFEST_INVALID', message: /field base must be a string/ });
  assert.throws(() => validateManifest({ ...m, base: '' }, 'w'), /field base must be a folder path or URI/);
});

test('column selection: order of the input, unknown names all named, nothing left refused', () => {
  assert.deepEqual(parseColumnList(['b,a', 'c'], 'columns'), ['b', 'a', 'c']);
  assert.throws(() => parseColumnList(['a,,b'], 'columns'), /option columns: expected comma-separated column names/);
  assert.deepEqual(selectColumnNames(['a', 'b', 'c'], { columns: ['c', 'a'] }, 'f'), ['a', 'c']);
  assert.deepEqual(selectColumnNames(['a', 'b', 'c'], { drop: ['b'] }, 'f'), ['a', 'c']);
  assert.throws(() => selectColumnNames(['a', 'b'], { columns: ['x'], drop: ['y'] }, 'f'), { code: 'GPUFEED_UNKNOWN_COLUMN', message: 'f: no columns "x", "y" (columns: a, b)' });
  assert.throws(() => selectColumnNames(['a'], { drop: ['a'] }, 'f'), /leaves no column/);
  assert.throws(() => selectColumnNames(['a', 'b'], { columns: ['a'], drop: ['a'] }, 'f'), /given to both --columns and --drop/);
});

test('state.json: names the data files of its folder only; others in that folder are skipped', async () => {
  assert.deepEqual(stateDataFiles('{"_data_files":[{"filename":"data-00000-of-00002.arrow"},{"filename":"data-00001-of-00002.arrow"}]}'), ['data-00000-of-00002.arrow', 'data-00001-of-00002.arrow']);
  assert.equal(stateDataFiles('{"_data_files":[{"filename":"../x.arrow"}]}'), undefined);
  assert.equal(stateDataFiles('not json'), undefined);
  const files = ['train/cache-1.arrow', 'train/data-0.arrow', 'train/state.json', 'other/x.arrow'];
  const read = async (p: string): Promise<string> => {
    assert.equal(p, 'train/state.json');
    return '{"_data_files":[{"filename":"data-0.arrow"}]}';
  };
  const isArrow = (p: string): boolean => p.endsWith('.arrow');
  assert.deepEqual(await chooseFolderFiles(files, isArrow, read, undefined, 'd'), { kept: ['train/data-0.arrow', 'other/x.arrow'], skipped: ['train/cache-1.arrow', 'train/state.json'] });
  await assert.rejects(chooseFolderFiles(['state.json'], isArrow, async () => '{"_data_files":[{"filename":"gone.arrow"}]}', undefined, 'd'), { code: 'GPUFEED_BAD_INPUT', message: /d: state\.json lists data file gone\.arrow, which is missing/ });
});
