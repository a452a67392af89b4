// The loader's piece checks end to end: with two decode workers sharing the checks (each record
// batch claimed by one, hashed in the addon in place over the mapping, or over a pread copy), a
// flipped byte in one record batch ends the run in GPUFEED_HASH_MISMATCH naming the shard and the
// piece, and every row delivered before it is exactly the clean dataset's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { makeDemoDataset } from '../../src/dataset/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { ErrorCodes, GpufeedError, Loader, type LoaderOptions } from '../../src/index.js';

const SEQ = 2048;

/** crc32 of each delivered row's tokens, by id; the error that ended the run, if any. */
async function load(dir: string, options: Partial<LoaderOptions>): Promise<{ rows: Map<number, number>; err?: GpufeedError }> {
  const rows = new Map<number, number>();
  const loader = await Loader.open(dir, { batchSize: 50, workers: 2, shuffle: 'none', columns: ['input_ids'], ...options });
  try {
    for await (const batch of loader) {
      const ids = batch.columns.input_ids as Int32Array;
      batch.ids.forEach((id, i) => rows.set(id, crc32(new Uint8Array(ids.buffer, ids.byteOffset + i * SEQ * 4, SEQ * 4)) >>> 0));
    }
    return { rows };
  } catch (err) {
    assert.ok(err instanceof GpufeedError, String(err));
    return { rows, err };
  } finally {
    await loader.close();
  }
}

test('a flipped byte in a record batch the workers hash natively is HASH_MISMATCH naming shard and piece, after exact rows only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-piece-loader-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // 8 KiB rows, 4 MiB record batches, 16 MiB shards: two shards of several batches.
  const manifest: ManifestV1 = await makeDemoDataset(dir, { rows: 4000, seqLen: SEQ, shardSize: '16MiB', seed: 7 });
  assert.ok(manifest.shards.length >= 2);
  const entry = manifest.shards[1]!;
  assert.ok(entry.layout.kind === 'arrow' && entry.layout.batches.length >= 3, 'several record batches in the shard');

  const clean = await load(dir, { read: 'mmap' });
  assert.equal(clean.err, undefined);
  assert.equal(clean.rows.size, manifest.rows);

  const b = entry.layout.batches[2]!;
  const file = join(dir, entry.path);
  const bytes = readFileSync(file);
  const at = b.offset + b.metadataLength + (b.bodyLength >> 1);
  bytes[at] = bytes[at]! ^ 0x40;
  writeFileSync(file, bytes);

  for (const read of ['mmap', 'pread'] as const) {
    const got = await load(dir, { read });
    assert.ok(got.err, `${read}: the run ended without an error`);
    assert.equal(got.err.code, ErrorCodes.HASH_MISMATCH, `${read}: ${got.err.message}`);
    assert.equal(got.err.details.shard, entry.path, read);
    assert.equal(got.err.details.piece, 'record batch 2', read);
    assert.match(got.err.message, new RegExp(`${entry.path.replace(/[.]/g, '\\.')}: record batch 2 `));
    assert.ok(got.rows.size < manifest.rows, `${read}: every row delivered`);
    for (const [id, c] of got.rows) assert.equal(c, clean.rows.get(id), `${read}: row ${id} came back changed`);
  }
});
