// Piece checksums: recorded by prep (encodeShard) and the footer readers alike, validated in the
// manifest, and checked by a worker's PieceVerifier once per piece per file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { encodeShard } from '../../src/dataset/encode-shard.js';
import { readArrowLayout } from '../../src/formats/arrow/file.js';
import { readParquetLayout } from '../../src/formats/parquet/file.js';
import { bytesRangeReader } from '../../src/formats/range-reader.js';
import { validateManifest } from '../../src/dataset/manifest.js';
import { pieceChecksum } from '../../src/dataset/piece-checksum.js';
import type { ArrowLayout, ColumnSpec, ManifestV1, ParquetLayout, ShardEntry } from '../../src/dataset/types.js';
import type { ShardColumns } from '../../src/formats/column-data.js';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { fileIdentity, PieceVerifier, shardDecodeError } from '../../src/pipeline/piece-check.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';
import { tempDir } from '../fixtures/dataset-fixtures.js';

const schema: ColumnSpec[] = [
  { name: 'x', dtype: 'int32', kind: 'fixed', shape: [4], nullable: false },
  { name: 'y', dtype: 'int64', kind: 'scalar', nullable: false },
];

function shard(rows: number): ShardColumns {
  const x = new Int32Array(rows * 4).map((_, i) => i * 7);
  const y = new BigInt64Array(rows).map((_, i) => BigInt(i) * 3n);
  return { rows, columns: [{ values: x, nullCount: 0 }, { values: y, nullCount: 0 }] } as unknown as ShardColumns;
}

function entryOf(path: string, bytes: Uint8Array, layout: ArrowLayout | ParquetLayout, rows: number): ShardEntry {
  return { path, format: layout.kind, rows, bytes: bytes.length, hash: `sha256:${'0'.repeat(64)}`, layout };
}

test('prep and the footer readers record the same piece checksums', async () => {
  for (const format of ['arrow', 'parquet'] as const) {
    const r = encodeShard({ schema, shard: shard(50), format, maxBatchRows: 16, targetBatchBytes: 300 });
    const layout = r.layout;
    assert.equal(layout.pieceHash, 'crc32');
    const read = bytesRangeReader(r.bytes);
    const viaFooter = format === 'arrow' ? await readArrowLayout(read, r.bytes.length) : await readParquetLayout(read, r.bytes.length);
    assert.deepEqual(viaFooter.layout, layout, format);
    assert.equal(viaFooter.footerCrc32, layout.footerCrc32);
    if (layout.kind === 'arrow') {
      assert.ok(layout.batches.length > 2);
      const b = layout.batches[1]!;
      assert.equal(b.crc32, pieceChecksum(r.bytes.subarray(b.offset, b.offset + b.metadataLength + b.bodyLength)));
    } else {
      const meta = parquetMetadata(r.bytes.slice().buffer);
      assert.ok(layout.rowGroups.length > 1);
      layout.rowGroups.forEach((g, i) => {
        assert.deepEqual(g.chunks!.map((c) => c.column), ['x', 'y']);
        assert.equal(g.chunks!.length, meta.row_groups[i]!.columns.length);
        for (const c of g.chunks!) assert.equal(c.crc32, pieceChecksum(r.bytes.subarray(c.offset, c.offset + c.bytes)));
      });
    }
    // Without checksums the readers give the plain layout (what the loader compares at open).
    const plain = format === 'arrow' ? await readArrowLayout(read, r.bytes.length, 'f', { pieceChecksums: false }) : await readParquetLayout(read, r.bytes.length, 'f', { pieceChecksums: false });
    assert.equal(plain.layout.pieceHash, undefined);
    assert.equal(plain.footerCrc32, layout.footerCrc32);
  }
});

test('manifest: piece checksum fields are optional, validated and named', () => {
  const r = encodeShard({ schema, shard: shard(20), format: 'arrow', maxBatchRows: 8 });
  const entry = entryOf('s.arrow', r.bytes, r.layout, 20);
  const manifest = (e: ShardEntry): unknown => JSON.parse(JSON.stringify({ format: 'gpufeed-dataset', version: 1, schema, shards: [e], rows: 20, bytes: e.bytes }));
  assert.deepEqual(validateManifest(manifest(entry), 'm').shards[0]!.layout, r.layout);
  // An older manifest (no checksums at all) stays valid.
  const layout = r.layout as ArrowLayout;
  const old = { ...entry, layout: { kind: 'arrow' as const, batches: layout.batches.map(({ crc32: _c, ...b }) => ({ ...b })) } };
  assert.equal(validateManifest(manifest(old), 'm').shards[0]!.layout.pieceHash, undefined);
  const bad = (edit: (l: Record<string, unknown>) => void, field: RegExp) => {
    const m = manifest(entry) as { shards: { layout: Record<string, unknown> }[] };
    edit(m.shards[0]!.layout);
    assert.throws(() => validateManifest(m, 'm'), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.MANIFEST_INVALID && field.test(err.message));
  };
  bad((l) => { delete l.pieceHash; }, /layout\.pieceHash is missing/);
  bad((l) => { l.pieceHash = 'md5'; }, /layout\.pieceHash must be "crc32"/);
  bad((l) => { (l.batches as { crc32: number }[])[1]!.crc32 = -1; }, /batches\[1\]\.crc32 must be an integer from 0/);
  bad((l) => { l.footerCrc32 = 2 ** 32; }, /footerCrc32 must be an integer/);
});

test('PieceVerifier: each piece hashed once per file, a changed file hashed again, a bad piece named', async (t) => {
  const dir = await tempDir(t);
  for (const format of ['arrow', 'parquet'] as const) {
    const r = encodeShard({ schema, shard: shard(40), format, maxBatchRows: 10, targetBatchBytes: 200 });
    const file = join(dir, `s.${format}`);
    writeFileSync(file, r.bytes);
    const entry = entryOf(`shards/s.${format}`, r.bytes, r.layout, 40);
    const ref: ShardRef = { index: 0, name: entry.path, file, format, bytes: r.bytes.length };
    const v = new PieceVerifier();
    const meta = format === 'parquet' ? parquetMetadata(r.bytes.slice().buffer) : undefined!;
    const units = r.layout.kind === 'arrow' ? r.layout.batches.length : r.layout.rowGroups.length;
    assert.ok(units > 2);
    const checkAll = (fd: number, id: string, columns: string[]) => {
      for (let u = 0; u < units; u++) {
        if (format === 'arrow') v.arrowBatch(fd, id, ref, entry, u);
        else v.parquetChunks(fd, id, ref, entry, meta, u, columns);
      }
    };
    let fd = openSync(file, 'r');
    const id = fileIdentity(fd);
    // A shuffled epoch visits units many times: still one hash per piece.
    for (let pass = 0; pass < 3; pass++) checkAll(fd, id, ['x']);
    assert.equal(v.hashed, units, `${format}: one hash per piece`);
    checkAll(fd, id, ['x', 'y']);
    assert.equal(v.hashed, format === 'arrow' ? units : 2 * units, `${format}: the other column's chunks once more`);
    closeSync(fd);

    // Same size, one byte changed in the second unit's data, new mtime: a new identity.
    const bytes = readFileSync(file);
    const at = r.layout.kind === 'arrow' ? r.layout.batches[1]!.offset + r.layout.batches[1]!.metadataLength + 3 : r.layout.rowGroups[1]!.chunks![0]!.offset + r.layout.rowGroups[1]!.chunks![0]!.bytes - 2;
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(file, bytes);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    fd = openSync(file, 'r');
    try {
      const id2 = fileIdentity(fd);
      assert.notEqual(id2, id);
      const before = v.hashed;
      if (format === 'arrow') v.arrowBatch(fd, id2, ref, entry, 0);
      else v.parquetChunks(fd, id2, ref, entry, meta, 0, ['x']);
      assert.equal(v.hashed, before + 1, 'a changed file is hashed again');
      const piece = format === 'arrow' ? /record batch 1 / : /row group 1 column x /;
      assert.throws(
        () => (format === 'arrow' ? v.arrowBatch(fd, id2, ref, entry, 1) : v.parquetChunks(fd, id2, ref, entry, meta, 1, ['x'])),
        (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.HASH_MISMATCH && err.message.includes(entry.path) && piece.test(err.message),
      );
      // A manifest chunk range that disagrees with the file's footer is named, before hashing.
      if (r.layout.kind === 'parquet') {
        const edited = structuredClone(entry);
        (edited.layout as ParquetLayout).rowGroups[2]!.chunks![1]!.offset += 1;
        assert.throws(() => v.parquetChunks(fd, id2, ref, edited, meta, 2, ['y']), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.SHARD_CORRUPT && /rowGroups\[2\]\.chunks\[1\]/.test(err.message));
      }
    } finally {
      closeSync(fd);
    }
  }
});

test('shardDecodeError: decoder exceptions and internal errors become SHARD_CORRUPT naming shard and piece', () => {
  const ref: ShardRef = { index: 3, name: 'shards/a.parquet', file: '/x/a.parquet', format: 'parquet', bytes: 10 };
  const e1 = shardDecodeError(new Error('missing eof marker'), ref, 'row group 2 (columns a)') as GpufeedError;
  assert.equal(e1.code, ErrorCodes.SHARD_CORRUPT);
  assert.match(e1.message, /shards\/a\.parquet: row group 2 \(columns a\) does not decode \(missing eof marker\)/);
  assert.equal(e1.details.shard, 'shards/a.parquet');
  const e2 = shardDecodeError(new GpufeedError(ErrorCodes.INTERNAL, 'oops'), ref, 'row group 0') as GpufeedError;
  assert.equal(e2.code, ErrorCodes.SHARD_CORRUPT);
  const kept = new GpufeedError(ErrorCodes.HASH_MISMATCH, 'named');
  assert.equal(shardDecodeError(kept, ref, 'x'), kept);
  const m = { ...new Error('x'), code: ErrorCodes.NATIVE, message: 'native' };
  assert.equal(shardDecodeError(m, ref, 'x'), m);
});

test('an older manifest without piece checksums still loads', async (t) => {
  // Rows of the loader path are covered by the corruption test; here only that validation and the
  // open-time checks accept a layout with no checksum fields.
  const r = encodeShard({ schema, shard: shard(12), format: 'parquet' });
  const layout = r.layout as ParquetLayout;
  const { pieceHash: _h, footerCrc32: _f, ...rest } = layout;
  const old: ManifestV1 = validateManifest({ format: 'gpufeed-dataset', version: 1, schema, shards: [entryOf('s.parquet', r.bytes, { ...rest, rowGroups: layout.rowGroups.map(({ chunks: _c, ...g }) => g) }, 12)], rows: 12, bytes: r.bytes.length }, 'm');
  const { checkShardAgainstFile, readShardFacts } = await import('../../src/dataset/shard-truth.js');
  const facts = await readShardFacts(bytesRangeReader(r.bytes), r.bytes.length, 'parquet', 's.parquet', false, old.schema);
  checkShardAgainstFile(old.shards[0]!, old.schema, facts, { footerChecksum: true });
  const v = new PieceVerifier();
  const dir = await tempDir(t);
  writeFileSync(join(dir, 's.parquet'), r.bytes);
  const fd = openSync(join(dir, 's.parquet'), 'r');
  try {
    v.parquetChunks(fd, fileIdentity(fd), { index: 0, name: 's.parquet', file: join(dir, 's.parquet'), format: 'parquet', bytes: r.bytes.length }, old.shards[0]!, parquetMetadata(r.bytes.slice().buffer), 0, ['x', 'y']);
  } finally {
    closeSync(fd);
  }
  assert.equal(v.hashed, 0, 'nothing to check against');
});

test('SharedPieceFlags: a piece one worker verified is not hashed again by another; a bad piece never flagged', async (t) => {
  const { pieceFlagLayout, sharedPieceFlags } = await import('../../src/pipeline/piece-check.js');
  const dir = await tempDir(t);
  const shards: ShardEntry[] = [];
  const refs: ShardRef[] = [];
  const files: { bytes: Uint8Array; meta?: ReturnType<typeof parquetMetadata> }[] = [];
  for (const format of ['arrow', 'parquet'] as const) {
    const r = encodeShard({ schema, shard: shard(30), format, maxBatchRows: 10, targetBatchBytes: 200 });
    const file = join(dir, `t.${format}`);
    writeFileSync(file, r.bytes);
    shards.push(entryOf(`t.${format}`, r.bytes, r.layout, 30));
    refs.push({ index: refs.length, name: `t.${format}`, file, format, bytes: r.bytes.length });
    files.push({ bytes: r.bytes, meta: format === 'parquet' ? parquetMetadata(r.bytes.slice().buffer) : undefined });
  }
  const manifest = { format: 'gpufeed-dataset', version: 1, schema, shards, rows: 60, bytes: shards[0]!.bytes + shards[1]!.bytes } as ManifestV1;
  const { total } = pieceFlagLayout(manifest);
  const arrowUnits = (shards[0]!.layout as ArrowLayout).batches.length;
  const pq = shards[1]!.layout as ParquetLayout;
  assert.equal(total, arrowUnits + pq.rowGroups.length * 2);
  const flags = sharedPieceFlags(new SharedArrayBuffer(4 * total), manifest);
  const [a, b] = [new PieceVerifier(), new PieceVerifier()];
  const fds = refs.map((r) => openSync(r.file, 'r'));
  try {
    const ids = fds.map((fd) => fileIdentity(fd));
    const visit = (v: PieceVerifier) => {
      for (let u = 0; u < arrowUnits; u++) v.arrowBatch(fds[0]!, ids[0]!, refs[0]!, shards[0]!, u, flags);
      for (let u = 0; u < pq.rowGroups.length; u++) v.parquetChunks(fds[1]!, ids[1]!, refs[1]!, shards[1]!, files[1]!.meta!, u, ['x', 'y'], flags);
    };
    visit(a);
    assert.equal(a.hashed, total);
    assert.deepEqual([...flags.words], new Array(total).fill(1));
    visit(b);
    assert.equal(b.hashed, 0, 'the other worker hashes nothing');
    // A piece whose checksum fails leaves its word unset (the manifest edited here).
    const words = new Int32Array(new SharedArrayBuffer(4 * total));
    const edited = structuredClone(shards[0]!);
    (edited.layout as ArrowLayout).batches[1]!.crc32! ^= 1;
    assert.throws(() => new PieceVerifier().arrowBatch(fds[0]!, ids[0]!, refs[0]!, edited, 1, { words, bases: flags.bases }), { code: ErrorCodes.HASH_MISMATCH });
    assert.equal(words[1], 0);
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
});

test('gpufeed index records the same piece checksums as prep', async (t) => {
  const { indexDataset } = await import('../../src/cli/index-cmd.js');
  const { LocalStore } = await import('../../src/storage/local.js');
  const dir = await tempDir(t);
  const made: Record<string, ArrowLayout | ParquetLayout> = {};
  for (const format of ['arrow', 'parquet'] as const) {
    const r = encodeShard({ schema, shard: shard(25), format, maxBatchRows: 10, targetBatchBytes: 200 });
    writeFileSync(join(dir, `a-${format}.${format}`), r.bytes);
    made[`a-${format}.${format}`] = r.layout;
  }
  // An Arrow and a Parquet file of one schema index together.
  const store = new LocalStore(dir);
  try {
    const m = await indexDataset(store);
    assert.equal(m.shards.length, 2);
    for (const s of m.shards) assert.deepEqual(s.layout, made[s.path], s.path);
  } finally {
    await store.close();
  }
});
