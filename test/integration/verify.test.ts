// `gpufeed verify`: exit 0 when every shard matches; exit 2 with each problem's code and shard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { verifyDataset } from '../../src/dataset/verify.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';
import { runCli } from '../fixtures/run-cli.js';

test('gpufeed verify: good dataset, then missing, truncated and altered shards', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'ds');
  const m = await makeDemoDataset(out, { rows: 400, seqLen: 32, shardSize: 8192, format: 'parquet' });
  assert.ok(m.shards.length >= 4);
  let r = await runCli(['verify', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ok: /);

  const [s0, s1, s2] = m.shards.map((s) => s.path);
  await rm(join(out, s0!));
  await truncate(join(out, s1!), m.shards[1]!.bytes - 10);
  const p2 = join(out, s2!);
  const bytes = await readFile(p2);
  bytes[100] = bytes[100]! ^ 0xff;
  await writeFile(p2, bytes);

  r = await runCli(['verify', out]);
  assert.equal(r.code, 2);
  assert.ok(r.stderr.includes(`GPUFEED_SHARD_MISSING: shard ${s0}`), r.stderr);
  assert.ok(r.stderr.includes(`GPUFEED_SHARD_CORRUPT: shard ${s1}`), r.stderr);
  assert.ok(r.stderr.includes(`GPUFEED_HASH_MISMATCH: shard ${s2}`), r.stderr);
  assert.match(r.stdout, /FAILED: 3 of/);

  const json = await runCli(['verify', out, '--json']);
  assert.equal(json.code, 2);
  const report = JSON.parse(json.stdout) as { ok: boolean; problems: { shard: string; code: string }[] };
  assert.equal(report.ok, false);
  assert.deepEqual(report.problems.map((p) => [p.shard, p.code]), [
    [s0, 'GPUFEED_SHARD_MISSING'], [s1, 'GPUFEED_SHARD_CORRUPT'], [s2, 'GPUFEED_HASH_MISMATCH'],
  ]);
  // The API gives the same report without exiting.
  assert.equal((await verifyDataset(out)).problems.length, 3);
});
