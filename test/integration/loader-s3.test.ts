// The whole path from object storage: `prep --out s3://` writes the dataset to a real
// S3-compatible server (s3rver), then two ranks (this process and a `gpufeed dump` child) read one
// epoch through a proxy that faults ~10% of GETs, sharing one cache dir: every sample exactly
// once, with the right values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, GpufeedError } from '../../src/index.js';
import { startS3Server, S3RVER_CREDENTIALS } from '../helpers/s3-server.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROWS = 300;
const SEQ = 64;

function row(i: number): { tokens: number[]; label: number; text: string } {
  return { tokens: Array.from({ length: SEQ }, (_, k) => (i * 7919 + k) % 65_521), label: i, text: `sample ${i}` };
}

const env = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
};

/** s3rver's credentials in this process's environment for the test, restored after it. */
function useS3rverCredentials(t: { after: (fn: () => void) => void }): void {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  t.after(() => {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
}

interface Line { rank: number; ids: number[]; columns: { tokens: number[]; label: number[] } }

function dumpRank(args: string[]): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...cliArgv(), 'dump', ...args], {
      cwd: ROOT, timeout: 120_000, maxBuffer: 16 << 20, env: { ...process.env, ...env },
    }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dump failed: ${stderr}`));
      else resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
    });
  });
}

test('two ranks read an S3 dataset through ~10% faulted GETs, sharing one cache dir: each sample once, right values', async (t) => {
  useS3rverCredentials(t);
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-loader-s3-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = await startS3Server(['data']);
  t.after(() => server.close());

  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify(row(i))).join('\n'));
  const manifest = await prepDataset([input], {
    out: 's3://data/ds', shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 16 * 1024,
    workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint },
  });
  assert.ok(manifest.shards.length >= 4, `several shards (${manifest.shards.length})`);

  const proxy = await startFaultProxy(server.endpoint, { probability: 0.1, seed: 7, stallMs: 5_000 });
  t.after(() => proxy.close());
  const cacheDir = join(dir, 'cache');
  const common = { batchSize: 8, worldSize: 2, shuffle: 'window' as const, shuffleWindow: 64, seed: 11, workers: 1, cacheDir, cacheBytes: 64 << 20, minFreeBytes: 0 };
  const s3Tuning = { attemptTimeoutMs: 1_500, retryBaseMs: 10, retryMaxMs: 200, hedgeMinDelayMs: 100, partSize: 8 * 1024 };

  const child = dumpRank(['s3://data/ds', '--s3-endpoint', proxy.endpoint, '--batch-size', '8', '--world-size', '2', '--rank', '1',
    '--shuffle', 'window', '--shuffle-window', '64', '--seed', '11', '--workers', '1', '--cache-dir', cacheDir, '--cache-bytes', '64MiB', '--min-free-bytes', '0',
    '--columns', 'tokens,label']);
  const loader = await Loader.open('s3://data/ds', { ...common, rank: 0, s3Endpoint: proxy.endpoint, s3: s3Tuning, columns: ['tokens', 'label'] });
  const mine: number[] = [];
  try {
    for await (const b of loader) {
      const tokens = b.columns.tokens as Int32Array;
      b.ids.forEach((id, i) => {
        assert.deepEqual(Array.from(tokens.subarray(i * SEQ, (i + 1) * SEQ)), row(id).tokens, `tokens of ${id}`);
        assert.equal(Number((b.columns.label as BigInt64Array)[i]), id);
      });
      mine.push(...b.ids);
    }
  } finally {
    await loader.close();
  }
  const theirs = await child;
  for (const l of theirs) {
    l.ids.forEach((id, i) => {
      assert.deepEqual(l.columns.tokens.slice(i * SEQ, (i + 1) * SEQ), row(id).tokens);
      assert.equal(l.columns.label[i], id);
    });
  }
  const all = [...mine, ...theirs.flatMap((l) => l.ids)];
  assert.equal(all.length, ROWS, 'none twice');
  assert.equal(new Set(all).size, ROWS, 'none lost');
  const faults = Object.values(proxy.stats.faults).reduce((a, b) => a + b, 0);
  assert.ok(faults >= 1, `faults were injected (${faults} in ${proxy.stats.gets} GETs)`);
});

test('an S3 dataset that does not exist is a clear error within seconds', async (t) => {
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  useS3rverCredentials(t);
  await assert.rejects(Loader.open('s3://data/nothing-here', { batchSize: 4, s3Endpoint: server.endpoint }), (err: unknown) => {
    assert.ok(err instanceof GpufeedError);
    assert.equal(err.code, ErrorCodes.MANIFEST_NOT_FOUND);
    assert.match(err.message, /nothing-here/);
    return true;
  });
});

test('prep --overwrite on S3 replaces the dataset and deletes the old shards; without it, nothing is touched', async (t) => {
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  useS3rverCredentials(t);
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-prep-s3-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: 50 }, (_, i) => JSON.stringify({ v: i })).join('\n'));
  const opts = { out: 's3://data/ds', shardSize: 100, workers: 0, progress: false, storeOptions: { s3Endpoint: server.endpoint } };
  const first = await prepDataset([input], opts);
  const { openStore } = await import('../../src/storage/index.js');
  const store = await openStore('s3://data/ds', { s3Endpoint: server.endpoint });
  t.after(() => store.close());
  const keys = async () => (await store.list()).map((o) => o.key).sort();
  const before = await keys();
  await assert.rejects(prepDataset([input], opts), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.OUTPUT_NOT_EMPTY);
  assert.deepEqual(await keys(), before, 'a refused prep touches nothing');
  const second = await prepDataset([input], { ...opts, overwrite: true });
  const after = await keys();
  assert.deepEqual(after, ['index.json', ...second.shards.map((s) => s.path)].sort());
  for (const s of first.shards) assert.ok(!after.includes(s.path), `old shard ${s.path} deleted`);
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...cliArgv(), ...args], {
      cwd: ROOT, timeout: 120_000, maxBuffer: 16 << 20, env: { ...process.env, ...env },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

test('every command takes an s3:// dataset with --s3-endpoint: prep, inspect, verify, plan', async (t) => {
  const server = await startS3Server(['data']);
  t.after(() => server.close());
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-cli-s3-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const input = join(dir, 'rows.jsonl');
  writeFileSync(input, Array.from({ length: 40 }, (_, i) => JSON.stringify({ v: i })).join('\n'));
  const ep = ['--s3-endpoint', server.endpoint];
  const prep = await cli(['prep', input, '--out', 's3://data/cli', '--shard-size', '100', ...ep]);
  assert.equal(prep.code, 0, prep.stderr);
  const inspect = await cli(['inspect', 's3://data/cli', '--json', ...ep]);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.equal((JSON.parse(inspect.stdout) as { rows: number }).rows, 40);
  const verify = await cli(['verify', 's3://data/cli', ...ep]);
  assert.equal(verify.code, 0, verify.stderr);
  const plan = await cli(['plan', 's3://data/cli', '--batch-size', '8', ...ep]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.equal(plan.stdout.trim().split('\n').length, 5);
  // A wrong endpoint port fails fast with a storage code, not a hang.
  const refused = await cli(['inspect', 's3://data/cli', '--s3-endpoint', 'http://127.0.0.1:1']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /GPUFEED_STORAGE_UNAVAILABLE/);
});
