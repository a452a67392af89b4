// A shard truncated while a loader reads it through its file map (read 'mmap', the Linux
// default): the loader and `gpufeed dump` stop with GPUFEED_SHARD_CORRUPT naming the shard, never
// with SIGBUS, and every batch delivered before the error holds the right bytes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { isVarColumn, Loader, type Batch, type LoaderOptions } from '../../src/index.js';
import { fileMapStatus } from '../../src/memory/index.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';

const CUT = 500_000;

async function dataset(t: { after(fn: () => unknown): void }): Promise<{ dir: string; manifest: ManifestV1; shard: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-trunc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // One 4 MB shard: the loader keeps it mapped from the first batch to the last.
  const manifest = await makeDemoDataset(dir, { rows: 4000, seqLen: 256, format: 'arrow', shardSize: '8MiB', overwrite: true });
  assert.equal(manifest.shards.length, 1);
  return { dir, manifest, shard: manifest.shards[0]!.path };
}

function fingerprint(b: Batch): string {
  const cols = Object.entries(b.columns).map(([name, c]) => {
    const parts = isVarColumn(c) ? [c.offsets, c.values] : [c];
    return `${name}:${parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('base64')).join('/')}`;
  });
  return `${b.ids.join(',')}|${cols.join('|')}`;
}

test('the JS loader stops with SHARD_CORRUPT naming the shard truncated under its mapping, after right batches only', async (t) => {
  const { dir, shard } = await dataset(t);
  const opts: LoaderOptions = { batchSize: 8, workers: 1, slots: 2, shuffle: 'none', pin: false, read: 'mmap' };
  // What the intact shard gives, read with pread.
  const want: string[] = [];
  const intact = await Loader.open(dir, { ...opts, read: 'pread' });
  for await (const b of intact) want.push(fingerprint(b));
  await intact.close();
  assert.equal(want.length, 500);

  const base = fileMapStatus();
  const loader = await Loader.open(dir, opts);
  const got: string[] = [];
  let failure: unknown;
  try {
    for await (const b of loader) {
      got.push(fingerprint(b));
      if (got.length === 1) truncateSync(join(dir, shard), CUT);
      assert.ok(got.length <= want.length, 'bounded');
    }
  } catch (err) {
    failure = err;
  } finally {
    await loader.close();
  }
  assert.ok(failure instanceof GpufeedError, `expected a GpufeedError, got ${String(failure)} after ${got.length} batches`);
  assert.equal(failure.code, ErrorCodes.SHARD_CORRUPT, failure.message);
  assert.equal(failure.details.shard, shard);
  assert.match(failure.message, new RegExp(`^shard ${shard.replace(/[.]/g, '\\.')}: `));
  assert.ok(got.length >= 1 && got.length < want.length, `${got.length} batches before the error`);
  assert.deepEqual(got, want.slice(0, got.length), 'every batch delivered before the error is right');
  assert.deepEqual(fileMapStatus(), base, 'the mapping was released');
});

test('gpufeed dump exits 2 with SHARD_CORRUPT naming the shard when it is truncated mid-run, not by SIGBUS', async (t) => {
  const { dir, shard } = await dataset(t);
  const child = spawn(process.execPath, [...cliArgv(), 'dump', dir, '--batch-size', '8', '--workers', '1', '--slots', '2', '--shuffle', 'none', '--no-pin'], {
    cwd: ROOT,
    env: { ...process.env, GPUFEED_READ: 'mmap' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  t.after(() => clearTimeout(killer));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  let lines = 0;
  let truncated = false;
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    lines += s.split('\n').length - 1;
    if (!truncated && lines >= 1) {
      // A slow reader: stop reading (dump blocks on the full pipe), cut the shard, go on.
      truncated = true;
      child.stdout.pause();
      truncateSync(join(dir, shard), CUT);
      child.stdout.resume();
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  assert.ok(truncated, `dump printed nothing: ${stderr}`);
  assert.equal(signal, null, `killed by ${signal}; stderr: ${stderr}`);
  assert.equal(code, 2, stderr);
  assert.match(stderr, new RegExp(`gpufeed: error GPUFEED_SHARD_CORRUPT: shard ${shard.replace(/[.]/g, '\\.')}: `));
  assert.ok(lines < 500, `${lines} lines: stopped before the end`);
});
