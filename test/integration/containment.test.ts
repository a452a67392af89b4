// Shard paths resolve inside the dataset folder: a shard, or the shards/ folder, that is a symlink
// to somewhere outside is GPUFEED_PATH_ESCAPE naming the shard (nothing outside is opened);
// symlinks that stay inside, and a dataset folder that is itself a symlink, load as before.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { makeDemoDataset } from '../../src/dataset/demo.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { Loader, type LoaderOptions } from '../../src/index.js';
import { LocalStore } from '../../src/storage/local.js';
import { runCli } from '../fixtures/run-cli.js';

const OPTS: LoaderOptions = { batchSize: 16, workers: 1, shuffle: 'none', pin: false };

async function setup(t: { after(fn: () => unknown): void }): Promise<{ top: string; dir: string; manifest: ManifestV1 }> {
  const top = mkdtempSync(join(tmpdir(), 'gpufeed-contain-'));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const dir = join(top, 'ds');
  const manifest = await makeDemoDataset(dir, { rows: 200, seqLen: 8, format: 'arrow', shardSize: '4KiB', overwrite: true });
  assert.ok(manifest.shards.length >= 2);
  return { top, dir, manifest };
}

async function idsOf(dir: string): Promise<number[]> {
  const loader = await Loader.open(dir, OPTS);
  const ids: number[] = [];
  try {
    for await (const b of loader) ids.push(...b.ids);
  } finally {
    await loader.close();
  }
  return ids;
}

function pathEscape(shard: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.PATH_ESCAPE, err.message);
    assert.equal(err.details.shard, shard);
    assert.match(err.message, /outside the dataset folder/);
    return true;
  };
}

test('a shard that is a symlink to a file outside the dataset is PATH_ESCAPE, for the store, the loader and the CLI', async (t) => {
  const { top, dir, manifest } = await setup(t);
  const shard = manifest.shards[1]!.path;
  // The same bytes outside, so no size or hash check could catch it first.
  const outside = join(top, 'outside.arrow');
  copyFileSync(join(dir, shard), outside);
  unlinkSync(join(dir, shard));
  symlinkSync(outside, join(dir, shard));
  const store = new LocalStore(dir);
  assert.throws(() => store.localPath(shard), pathEscape(shard));
  await assert.rejects(store.get(shard, { offset: 0, length: 4 }), pathEscape(shard));
  assert.equal(store.localPath(manifest.shards[0]!.path), join(dir, manifest.shards[0]!.path), 'the other shards are fine');
  await assert.rejects(idsOf(dir), pathEscape(shard));
  const dump = await runCli(['dump', dir, '--batch-size', '16', '--workers', '1', '--no-pin']);
  assert.equal(dump.code, 2, dump.stderr);
  assert.match(dump.stderr, new RegExp(`GPUFEED_PATH_ESCAPE: .*shard path "${shard.replace(/[.]/g, '\\.')}" resolves to ${outside.replace(/[.]/g, '\\.')}`));
  const verify = await runCli(['verify', dir]);
  assert.equal(verify.code, 2, verify.stderr);
  assert.match(verify.stderr, /GPUFEED_PATH_ESCAPE/);
});

test('a symlink to /etc/passwd is refused, not opened', async (t) => {
  const { dir, manifest } = await setup(t);
  const shard = manifest.shards[0]!.path;
  unlinkSync(join(dir, shard));
  symlinkSync('/etc/passwd', join(dir, shard));
  await assert.rejects(idsOf(dir), pathEscape(shard));
});

test('a shards/ folder that is a symlink to a folder outside is PATH_ESCAPE', async (t) => {
  const { top, dir, manifest } = await setup(t);
  const folder = dirname(manifest.shards[0]!.path);
  assert.notEqual(folder, '.');
  renameSync(join(dir, folder), join(top, 'elsewhere'));
  symlinkSync(join(top, 'elsewhere'), join(dir, folder));
  await assert.rejects(idsOf(dir), pathEscape(manifest.shards[0]!.path));
  // A write through the folder link is refused as well (the file does not exist yet).
  await assert.rejects(new LocalStore(dir).put(`${folder}/new.bin`, new Uint8Array(1)), pathEscape(`${folder}/new.bin`));
});

test('symlinks that stay inside the dataset, and a dataset folder that is a symlink, load the same samples', async (t) => {
  const { top, dir, manifest } = await setup(t);
  const want = await idsOf(dir);
  assert.equal(want.length, 200);
  // shards/ moved to another folder inside the dataset and linked back (relative link); one
  // shard a link to a copy inside the dataset.
  const folder = dirname(manifest.shards[0]!.path);
  mkdirSync(join(dir, 'store'));
  renameSync(join(dir, folder), join(dir, 'store', 'real'));
  symlinkSync(join('store', 'real'), join(dir, folder));
  const shard = manifest.shards[1]!.path;
  cpSync(join(dir, shard), join(dir, 'store', 'copy.arrow'));
  unlinkSync(join(dir, shard));
  symlinkSync(join(dir, 'store', 'copy.arrow'), join(dir, shard));
  assert.deepEqual(await idsOf(dir), want);
  const link = join(top, 'link-to-ds');
  symlinkSync(dir, link);
  assert.deepEqual(await idsOf(link), want);
});
