// `gpufeed index` on a local folder and on an S3 prefix, and `gpufeed cache` on a real cache dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliInProcess } from '../helpers/cli-in-process.js';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import { openStore } from '../../src/storage/index.js';
import { ShardCache } from '../../src/cache/shard-cache.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import type { ManifestV1 } from '../../src/dataset/types.js';

async function tempDir(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-index-it-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the CLI in-process, capturing stdout/stderr. */
const cli = cliInProcess;

function sameShards(a: ManifestV1, b: ManifestV1): void {
  assert.deepEqual(
    b.shards.map((s) => ({ path: s.path, bytes: s.bytes, hash: s.hash, rows: s.rows, layout: s.layout })),
    a.shards.map((s) => ({ path: s.path, bytes: s.bytes, hash: s.hash, rows: s.rows, layout: s.layout })),
  );
  assert.deepEqual(b.schema, a.schema);
}

for (const format of ['arrow', 'parquet'] as const) {
  test(`index a local folder of ${format} files: same shards, hashes and layout as prep wrote`, async (t) => {
    const dir = await tempDir(t);
    const made = await makeDemoDataset(dir, { rows: 3000, seqLen: 8, format, shardSize: 40_000 });
    assert.ok(made.shards.length >= 2);
    const r1 = await cli(['index', dir]);
    assert.equal(r1.code, 2, 'refuses to overwrite');
    assert.match(r1.err, /GPUFEED_OUTPUT_NOT_EMPTY/);
    await rm(join(dir, 'index.json'));
    const r2 = await cli(['index', dir]);
    assert.equal(r2.code, 0, r2.err);
    sameShards(made, JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ManifestV1);
    assert.equal((await cli(['index', dir, '--overwrite'])).code, 0);
  });
}

test('index an S3 prefix through ranged reads', async (t) => {
  const dir = await tempDir(t);
  const made = await makeDemoDataset(dir, { rows: 2000, seqLen: 4, format: 'parquet', shardSize: 30_000 });
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  for (const s of made.shards) await server.putObject('data', `pq/${s.path}`, await readFile(join(dir, s.path)));
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
  const r = await cli(['index', 's3://data/pq', '--s3-endpoint', server.endpoint]);
  assert.equal(r.code, 0, r.err);
  const store = await openStore('s3://data/pq', { s3Endpoint: server.endpoint });
  t.after(() => store.close());
  sameShards(made, JSON.parse(Buffer.from(await store.get('index.json')).toString()) as ManifestV1);
  const missing = await cli(['index', 's3://no-such-bucket/x', '--s3-endpoint', server.endpoint]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /GPUFEED_STORAGE_NOT_FOUND.*no-such-bucket/);
});

test('gpufeed cache status, verify (exit 2, bad entry removed) and clear', async (t) => {
  const dir = await tempDir(t);
  const data = Buffer.from('hello shard');
  const { createHash } = await import('node:crypto');
  const cache = new ShardCache({ cacheDir: dir, cacheBytes: 1 << 20, minFreeBytes: 0 });
  const ref = (p: string) => ({ datasetUri: 's3://b/ds', shard: { path: p, bytes: data.length, hash: `sha256:${createHash('sha256').update(data).digest('hex')}` }, fetch: (dest: string) => writeFile(dest, data) });
  (await cache.acquire(ref('a.arrow'))).release();
  (await cache.acquire(ref('b.arrow'))).release();
  await cache.close();
  const status = await cli(['cache', 'status', '--cache-dir', dir, '--json']);
  assert.equal(status.code, 0, status.err);
  assert.equal(JSON.parse(status.out).entries, 2);
  assert.equal((await cli(['cache', 'verify', '--cache-dir', dir])).code, 0);
  const names = await readdir(join(dir, 'shards'));
  await writeFile(join(dir, 'shards', names[0]!), 'hellO shard');
  const bad = await cli(['cache', 'verify', '--cache-dir', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /GPUFEED_HASH_MISMATCH.*removed/);
  assert.equal((await readdir(join(dir, 'shards'))).length, 1);
  const cleared = await cli(['cache', 'clear', '--cache-dir', dir]);
  assert.equal(cleared.code, 0);
  assert.deepEqual(await readdir(join(dir, 'shards')), []);
});
