// `gpufeed prep` end to end: the CLI, the worker pool (compiled; run `npm run build` first), the
// Store, the manifest. Each test spawns the CLI from source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadManifest } from '../../src/dataset/manifest.js';
import { workerEntry } from '../../src/package-root.js';
import { LocalStore } from '../../src/storage/local.js';
import { normalize, readDatasetRows, sampleRows, tempDir, writeCsv, writeJsonl, writeParquetInput } from '../fixtures/dataset-fixtures.js';
import { runCli } from '../fixtures/run-cli.js';

test('gpufeed prep: mixed inputs through the worker pool, manifest last', { skip: !existsSync(workerEntry('prep-shard')) && 'run npm run build first' }, async (t) => {
  const dir = await tempDir(t);
  const rows = sampleRows(40);
  await mkdir(join(dir, 'in'));
  await writeJsonl(join(dir, 'in', 'a.jsonl'), rows.slice(0, 10));
  await writeJsonl(join(dir, 'in', 'b.jsonl.gz'), rows.slice(10, 20), true);
  await writeCsv(join(dir, 'c.csv'), rows.slice(20, 30));
  await writeParquetInput(join(dir, 'd.parquet'), rows.slice(30));
  const out = join(dir, 'ds');
  const r = await runCli(['prep', join(dir, 'in'), join(dir, '*.csv'), join(dir, 'd.parquet'), '--out', out, '--shape', 'ids=4',
    '--shard-size', '1KiB', '--workers', '2', '--format', 'parquet', '--compression', 'gzip', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { rows: number; shards: number };
  assert.equal(summary.rows, 40);
  const manifest = await loadManifest(new LocalStore(out));
  assert.equal(manifest.shards.length, summary.shards);
  assert.ok(manifest.shards.length > 2);
  const got = (await readDatasetRows(out, manifest)).map((x) => ({ ...x, toks: x.toks ?? [] }));
  assert.deepEqual(got, rows.map((x) => normalize(x)));
});

test('gpufeed prep: bad --shape row names file and line, exit 2, output left empty', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'in.jsonl');
  await writeFile(input, '{"ids":[1,2]}\n{"ids":[1,2,3]}\n');
  const out = join(dir, 'ds');
  const r = await runCli(['prep', input, '--out', out, '--shape', 'ids=2', '--workers', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /GPUFEED_BAD_INPUT/);
  assert.ok(r.stderr.includes(`${input}, line 2`), r.stderr);
  assert.ok(!existsSync(join(out, 'index.json')));
});

test('gpufeed prep: options out of range and a non-empty --out name the option', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'in.jsonl');
  await writeFile(input, '{"x":1}\n');
  const out = join(dir, 'ds');
  let r = await runCli(['prep', input, '--out', out, '--shard-size', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /GPUFEED_INVALID_OPTION.*shard-size/);
  r = await runCli(['prep', input, '--out', out, '--format', 'xyz']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /GPUFEED_INVALID_OPTION.*format/);
  await mkdir(out);
  await writeFile(join(out, 'mine.txt'), 'x');
  r = await runCli(['prep', input, '--out', out]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /GPUFEED_OUTPUT_NOT_EMPTY/);
  assert.deepEqual(await readdir(out), ['mine.txt']);
  assert.equal(await readFile(join(out, 'mine.txt'), 'utf8'), 'x');
});
