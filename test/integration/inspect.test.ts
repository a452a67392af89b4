// `gpufeed inspect`: table and JSON views; manifests with escaping paths are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';
import { runCli } from '../fixtures/run-cli.js';

test('gpufeed inspect: schema, shards and totals, as a table and as JSON', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'ds');
  const m = await makeDemoDataset(out, { rows: 200, seqLen: 16, shardSize: 4096 });
  const table = await runCli(['inspect', out]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /total\s+200 rows, \d+ shards/);
  assert.match(table.stdout, /input_ids\s+fixed\s+int32\s+16\s+no/);
  assert.ok(table.stdout.includes(m.shards[0]!.path));
  const json = await runCli(['inspect', out, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { rows: number; shards: { path: string; rows: number; bytes: number; format: string }[]; schema: unknown[] };
  assert.equal(parsed.rows, 200);
  assert.deepEqual(parsed.shards.map((s) => [s.path, s.format, s.rows, s.bytes]), m.shards.map((s) => [s.path, s.format, s.rows, s.bytes]));
  assert.deepEqual(parsed.schema, m.schema);
});

test('gpufeed inspect: escaping shard paths and missing manifests are refused', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'ds');
  await makeDemoDataset(out, { rows: 10, seqLen: 4 });
  const manifest = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { shards: { path: string }[] };
  for (const bad of ['../outside.arrow', '/etc/passwd', 's3://x/y']) {
    manifest.shards[0]!.path = bad;
    await writeFile(join(out, 'index.json'), JSON.stringify(manifest));
    for (const cmd of bad.startsWith('..') ? ['inspect', 'verify'] : ['inspect']) {
      const r = await runCli([cmd, out]);
      assert.equal(r.code, 2, `${cmd} ${bad}`);
      assert.match(r.stderr, /GPUFEED_PATH_ESCAPE/);
    }
  }
  const r = await runCli(['inspect', join(dir, 'nothing')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /GPUFEED_MANIFEST_NOT_FOUND.*index\.json/);
});
