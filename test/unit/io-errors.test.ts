// File-system failures as GPUFEED_IO naming path and errno: the mapping of errno objects (ENOSPC
// cannot be produced on demand without root tricks), and real failures that hit root too: a path
// under a plain file (ENOTDIR) and /proc, which refuses new folders with ENOENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ShardCache } from '../../src/cache/shard-cache.js';
import { ErrorCodes, GpufeedError, ioError, isFsError, withIoErrors } from '../../src/errors.js';
import { LocalStore } from '../../src/storage/local.js';
import { makeDirs } from '../../src/storage/make-dirs.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

const errno = (code: string, syscall: string, path: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: something, ${syscall} '${path}'`), { code, syscall, path });

test('ioError: ENOSPC, EROFS, EACCES errno objects become GPUFEED_IO naming path, cause and errno', () => {
  for (const [code, cause] of [['ENOSPC', 'no space left'], ['EROFS', 'read-only'], ['EACCES', 'permission denied'], ['EDQUOT', 'quota']] as const) {
    const e = ioError('writing', '/data/out/shards/a.arrow', errno(code, 'write', '/data/out/shards/a.arrow.tmp-1'));
    assert.ok(e instanceof GpufeedError);
    assert.equal(e.code, ErrorCodes.IO);
    assert.equal(e.code, 'GPUFEED_IO');
    assert.ok(e.message.startsWith('writing /data/out/shards/a.arrow: '), e.message);
    assert.ok(e.message.includes(cause) && e.message.includes(`(${code})`), e.message);
    assert.equal(e.details.path, '/data/out/shards/a.arrow');
    assert.equal(e.details.errno, code);
    assert.equal(e.details.sysPath, '/data/out/shards/a.arrow.tmp-1');
  }
  assert.ok(isFsError(errno('ENOSPC', 'write', '/x')));
  assert.ok(!isFsError(new Error('plain')));
  assert.ok(!isFsError(Object.assign(new Error('x'), { code: 'GPUFEED_BAD_INPUT' })));
});

test('withIoErrors: maps system errors, passes GpufeedErrors and other errors unchanged', async () => {
  await assert.rejects(withIoErrors('writing', '/p', async () => { throw errno('ENOSPC', 'write', '/p'); }), { code: 'GPUFEED_IO' });
  const mine = new GpufeedError(ErrorCodes.BAD_INPUT, 'bad');
  await assert.rejects(withIoErrors('writing', '/p', async () => { throw mine; }), (e) => e === mine);
  await assert.rejects(withIoErrors('writing', '/p', async () => { throw new TypeError('bug'); }), TypeError);
  assert.equal(await withIoErrors('writing', '/p', async () => 7), 7);
});

test('makeDirs: creates nested folders, and ends with the errno where node\'s recursive mkdir would spin', async (t) => {
  const dir = await tempDir(t);
  await makeDirs(join(dir, 'a', 'b', 'c'));
  await makeDirs(join(dir, 'a', 'b', 'c')); // exists: fine
  assert.deepEqual(await readdir(join(dir, 'a', 'b')), ['c']);
  await writeFile(join(dir, 'file'), 'x');
  await assert.rejects(makeDirs(join(dir, 'file', 'x', 'y')), { code: 'ENOTDIR' });
  // /proc exists but refuses new entries with ENOENT; mkdir({recursive}) loops forever there.
  await assert.rejects(makeDirs('/proc/gpufeed-no-such/x'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EROFS');
});

test('LocalStore.put under a plain file: GPUFEED_IO naming the folder, the file left as it was', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'somefile'), 'keep me');
  const store = new LocalStore(join(dir, 'somefile', 'ds'));
  await assert.rejects(store.put('shards/a.arrow', new Uint8Array([1, 2, 3])), (e: GpufeedError) => {
    assert.equal(e.code, 'GPUFEED_IO');
    assert.ok(e.message.includes(join(dir, 'somefile', 'ds', 'shards')), e.message);
    assert.ok(e.message.includes('ENOTDIR'), e.message);
    return true;
  });
  assert.equal(await readFile(join(dir, 'somefile'), 'utf8'), 'keep me');
});

test('a cache dir that cannot be created is GPUFEED_IO from acquire, naming the folder', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'somefile'), 'x');
  const data = randomBytes(100);
  const cache = new ShardCache({ cacheDir: join(dir, 'somefile', 'cache'), minFreeBytes: 0 });
  t.after(() => cache.close());
  const ref = {
    datasetUri: 's3://b/ds',
    shard: { path: 'shards/a.arrow', bytes: data.length, hash: `sha256:${createHash('sha256').update(data).digest('hex')}` },
    fetch: async (dest: string) => writeFile(dest, data),
  };
  for (let i = 0; i < 2; i++) {
    // Twice: a failed init is not remembered as done.
    await assert.rejects(cache.acquire(ref), (e: GpufeedError) => {
      assert.equal(e.code, 'GPUFEED_IO');
      assert.ok(e.message.includes(join(dir, 'somefile', 'cache')), e.message);
      return true;
    });
  }
});

test('a cache disk error while a shard downloads is GPUFEED_IO naming the shard', async (t) => {
  const dir = await tempDir(t);
  const cache = new ShardCache({ cacheDir: join(dir, 'cache'), minFreeBytes: 0 });
  t.after(() => cache.close());
  const ref = {
    datasetUri: 's3://b/ds',
    shard: { path: 'shards/a.arrow', bytes: 10, hash: `sha256:${'0'.repeat(64)}` },
    fetch: async (dest: string) => { throw errno('ENOSPC', 'write', dest); },
  };
  await assert.rejects(cache.acquire(ref), (e: GpufeedError) => {
    assert.equal(e.code, 'GPUFEED_IO');
    assert.ok(e.message.includes('shards/a.arrow') && e.message.includes('ENOSPC'), e.message);
    return true;
  });
  // The reservation is gone with the failure.
  assert.deepEqual(await readdir(join(dir, 'cache', 'tmp')), []);
});
