import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { columnByName, loadManifest, parseManifest, selectColumns, writeManifest } from '../../src/dataset/manifest.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { LocalStore } from '../../src/storage/local.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

const HASH = `sha256:${'a'.repeat(64)}`;

function validManifest(): ManifestV1 {
  return {
    format: 'gpufeed-dataset',
    version: 1,
    schema: [
      { name: 'input_ids', dtype: 'int32', kind: 'fixed', shape: [2048], nullable: false },
      { name: 'label', dtype: 'int64', kind: 'scalar', nullable: true },
      { name: 'text', dtype: 'string', kind: 'bytes', nullable: false },
    ],
    shards: [
      {
        path: 'shards/a.arrow', format: 'arrow', rows: 10, bytes: 1000, hash: HASH,
        layout: { kind: 'arrow', batches: [{ offset: 8, metadataLength: 200, bodyLength: 600, rows: 10 }] },
        maxRowBytes: { text: 12 },
      },
      {
        path: 'shards/b.parquet', format: 'parquet', rows: 5, bytes: 500, hash: HASH,
        layout: { kind: 'parquet', rowGroups: [{ rows: 5, offset: 4, bytes: 300 }], footerOffset: 400, footerLength: 100 },
      },
    ],
    rows: 15,
    bytes: 1500,
  };
}

const text = (m: unknown): string => JSON.stringify(m);

function expectCode(fn: () => unknown, code: string, ...mentions: string[]): void {
  assert.throws(fn, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message);
    for (const m of mentions) assert.ok(err.message.includes(m), `message ${JSON.stringify(err.message)} should mention ${m}`);
    return true;
  });
}

test('a valid manifest parses and keeps every field', () => {
  const m = parseManifest(text(validManifest()), 'ds/index.json');
  assert.deepEqual(m, validManifest());
});

test('malformed and truncated JSON -> MANIFEST_INVALID naming the file', () => {
  expectCode(() => parseManifest('{"format": "gpufeed-dataset", ', 'ds/index.json'), 'GPUFEED_MANIFEST_INVALID', 'ds/index.json', 'truncated');
  expectCode(() => parseManifest(text(validManifest()).slice(0, 150), 'ds/index.json'), 'GPUFEED_MANIFEST_INVALID', 'ds/index.json');
  expectCode(() => parseManifest('', 'ds/index.json'), 'GPUFEED_MANIFEST_INVALID', 'empty');
  expectCode(() => parseManifest('[1,2]', 'ds/index.json'), 'GPUFEED_MANIFEST_INVALID', 'must be an object');
});

test('missing and wrong fields are named', () => {
  const cases: [(m: any) => void, string][] = [
    [(m) => delete m.schema, 'field schema is missing'],
    [(m) => delete m.shards, 'field shards is missing'],
    [(m) => delete m.rows, 'field rows is missing'],
    [(m) => (m.format = 'other'), 'field format'],
    [(m) => (m.version = 2), 'field version'],
    [(m) => delete m.shards[0].hash, 'shards[0] (shards/a.arrow).hash is missing'],
    [(m) => (m.shards[1].rows = -1), 'shards[1] (shards/b.parquet).rows'],
    [(m) => (m.shards[0].hash = 'md5:abc'), '.hash must be'],
    [(m) => delete m.schema[1].nullable, 'schema[1] (column "label").nullable is missing'],
    [(m) => (m.schema[0].dtype = 'int128'), 'unknown dtype'],
    [(m) => (m.schema[0].kind = 'tensor'), 'unknown kind'],
    [(m) => (m.schema[0].shape = [0]), 'shape[0] must be an integer >= 1'],
    [(m) => delete m.schema[0].shape, 'schema[0] (column "input_ids").shape is missing'],
    [(m) => (m.schema[0].nullable = true), 'fixed-shape columns cannot be nullable'],
    [(m) => (m.schema[2].dtype = 'int32'), 'kind bytes needs dtype string or binary'],
    [(m) => (m.schema[1].dtype = 'string'), 'kind scalar needs a numeric or bool dtype'],
    [(m) => (m.schema[2].name = 'label'), 'duplicate column name "label"'],
    [(m) => (m.rows = 16), 'field rows is 16 but the shards hold 15 rows'],
    [(m) => (m.bytes = 1), 'field bytes is 1'],
    [(m) => (m.shards[0].layout.batches[0].rows = 9), 'hold 9 rows but the shard has 10'],
    [(m) => (m.shards[0].layout.kind = 'parquet'), 'layout.kind must be "arrow"'],
    [(m) => (m.shards[1].layout.footerLength = 5), 'must end at the shard\'s size'],
    [(m) => (m.shards[0].maxRowBytes = { label: 3 }), 'maxRowBytes.label names no variable-length column'],
    [(m) => (m.shards[1].path = 'shards/a.arrow'), 'duplicate shard path'],
  ];
  for (const [mutate, mention] of cases) {
    const m = validManifest();
    mutate(m);
    expectCode(() => parseManifest(text(m), 'ds/index.json'), 'GPUFEED_MANIFEST_INVALID', 'ds/index.json', mention);
  }
});

test('escaping shard paths -> PATH_ESCAPE', () => {
  for (const bad of ['../x.arrow', 'shards/../../x.arrow', '/abs/x.arrow', 's3://x/y', 'file:///etc/passwd', 'a\\b']) {
    const m = validManifest();
    m.shards[0]!.path = bad;
    expectCode(() => parseManifest(text(m), 'ds/index.json'), 'GPUFEED_PATH_ESCAPE', 'ds/index.json');
  }
});

test('loadManifest: missing -> MANIFEST_NOT_FOUND naming the path; writeManifest round trip', async (t) => {
  const dir = await tempDir(t);
  const store = new LocalStore(dir);
  await assert.rejects(loadManifest(store), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'GPUFEED_MANIFEST_NOT_FOUND');
    assert.ok(err.message.includes(join(dir, 'index.json')) || err.message.includes('index.json'));
    return true;
  });
  await writeManifest(store, validManifest());
  assert.deepEqual(await loadManifest(store), validManifest());
  await writeFile(join(dir, 'index.json'), '{"format":');
  await assert.rejects(loadManifest(store), { code: 'GPUFEED_MANIFEST_INVALID' });
});

test('writeManifest refuses an invalid manifest and leaves the old one', async (t) => {
  const dir = await tempDir(t);
  const store = new LocalStore(dir);
  await writeManifest(store, validManifest());
  const bad = validManifest();
  bad.rows = 99;
  await assert.rejects(writeManifest(store, bad), { code: 'GPUFEED_MANIFEST_INVALID' });
  assert.equal((await loadManifest(store)).rows, 15);
});

test('columnByName / selectColumns: unknown column names it and lists the known ones', () => {
  const m = validManifest();
  assert.equal(columnByName(m, 'label').dtype, 'int64');
  assert.deepEqual(selectColumns(m, ['text', 'label']).map((c) => c.name), ['text', 'label']);
  assert.equal(selectColumns(m).length, 3);
  assert.throws(() => selectColumns(m, ['labels']), (err: Error & { code?: string; details?: { column?: string } }) => {
    assert.equal(err.code, 'GPUFEED_UNKNOWN_COLUMN');
    assert.equal(err.details?.column, 'labels');
    assert.match(err.message, /"labels".*input_ids, label, text/);
    return true;
  });
});

test('converted columns: float16, and logical/unit/timezone/precision/scale validated by name', () => {
  const m = validManifest();
  m.schema.push(
    { name: 'half', dtype: 'float16', kind: 'scalar', nullable: false },
    { name: 'ts', dtype: 'int64', kind: 'scalar', nullable: true, logical: 'timestamp', unit: 'us', timezone: 'UTC' },
    { name: 'price', dtype: 'float64', kind: 'scalar', nullable: false, logical: 'decimal', precision: 20, scale: 1 },
  );
  assert.deepEqual(parseManifest(text(m), 'ds').schema, m.schema);
  const withColumn = (col: Record<string, unknown>): string => text({ ...m, schema: [...m.schema.slice(0, 3), col] });
  expectCode(() => parseManifest(withColumn({ name: 'ts', dtype: 'int64', kind: 'scalar', nullable: false, logical: 'epoch' }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.logical', 'epoch');
  expectCode(() => parseManifest(withColumn({ name: 'ts', dtype: 'float32', kind: 'scalar', nullable: false, logical: 'timestamp' }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.logical', 'integer');
  expectCode(() => parseManifest(withColumn({ name: 'ts', dtype: 'int64', kind: 'scalar', nullable: false, logical: 'timestamp', unit: 'hours' }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.unit');
  expectCode(() => parseManifest(withColumn({ name: 'x', dtype: 'int64', kind: 'scalar', nullable: false, unit: 'ms' }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.unit');
  expectCode(() => parseManifest(withColumn({ name: 'd', dtype: 'float64', kind: 'scalar', nullable: false, logical: 'decimal', timezone: 'UTC' }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.timezone');
  expectCode(() => parseManifest(withColumn({ name: 'd', dtype: 'float64', kind: 'scalar', nullable: false, logical: 'decimal', scale: 1.5 }), 'ds'), 'GPUFEED_MANIFEST_INVALID', '.scale');
});
