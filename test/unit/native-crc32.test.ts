// The addon's CRC-32 (memory/map-checksum.ts): every implementation this CPU runs gives node:zlib's
// value at every length, alignment and seed; hashing in place over a mapping gives the file's
// value, refuses a range outside the mapping, and turns a file truncated under it into
// GPUFEED_SHARD_CORRUPT (never SIGBUS); the piece checks that use it name shard and piece.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { CRC32_KINDS, crc32FromMap, mapFile, nativeCrc32, nativeCrc32Kind, unmapFile } from '../../src/memory/index.js';
import { encodeShard } from '../../src/dataset/encode-shard.js';
import type { ArrowLayout, ColumnSpec, ManifestV1, ShardEntry } from '../../src/dataset/types.js';
import type { ShardColumns } from '../../src/formats/column-data.js';
import { CLAIM_WAIT_MS, claimPiece, claimWaitMs, fileIdentity, PIECE_HASHING, PIECE_UNCHECKED, PIECE_VERIFIED, PieceVerifier, sharedPieceFlags, type DeferredPiece } from '../../src/pipeline/piece-check.js';
import type { ShardRef } from '../../src/pipeline/decode-messages.js';

function tempDirFor(t: { after(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-crc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The implementations this CPU runs (at least 'table' and 'auto'). */
function runnableKinds(): (typeof CRC32_KINDS)[number][] {
  return CRC32_KINDS.filter((k) => {
    try {
      nativeCrc32(new Uint8Array(1), 0, k);
      return true;
    } catch (err) {
      assert.ok(err instanceof GpufeedError && err.code === ErrorCodes.INVALID_OPTION, String(err));
      return false;
    }
  });
}

test('every native crc32 implementation equals node:zlib at every length, offset and seed', (t) => {
  const kinds = runnableKinds();
  assert.ok(kinds.includes('table') && kinds.includes('auto'), kinds.join());
  t.diagnostic(`implementations: ${kinds.join(', ')}; auto is ${nativeCrc32Kind()}`);
  const data = randomBytes(70_000);
  // Around every fold width (16, 32, 64, 128, 256 bytes) and the steps between them.
  const lengths = [0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 79, 80, 96, 127, 128, 129, 159, 160, 161, 191, 192, 223, 224, 255, 256, 257, 271, 319, 320, 383, 384, 385, 511, 512, 513, 767, 1000, 4095, 4096, 4097, 65_536, 69_990];
  let checked = 0;
  for (const len of lengths) {
    for (const off of [0, 1, 7, 9]) {
      if (off + len > data.length) continue;
      const bytes = new Uint8Array(data.buffer, data.byteOffset + off, len);
      for (const seed of [0, 0xffffffff, 0x9e3779b9]) {
        const want = crc32(bytes, seed) >>> 0;
        for (const kind of kinds) {
          assert.equal(nativeCrc32(bytes, seed, kind), want, `kind ${kind}, length ${len}, offset ${off}, seed ${seed}`);
          checked += 1;
        }
      }
    }
  }
  assert.ok(checked > 300);
  // Chained calls are one crc over the concatenation, as with zlib.
  for (const kind of kinds) assert.equal(nativeCrc32(data.subarray(5000), nativeCrc32(data.subarray(0, 5000), 0, kind), kind), crc32(data) >>> 0);
  assert.throws(() => nativeCrc32(data, 0, 'sse' as never), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.INVALID_OPTION && /kind/.test(e.message));
});

test('crc32FromMap hashes a range in place: the file\'s value; a range outside the mapping is INVALID_OPTION', (t) => {
  const dir = tempDirFor(t);
  const file = join(dir, 'f.bin');
  const data = randomBytes(300_001);
  writeFileSync(file, data);
  const m = mapFile(file);
  t.after(() => unmapFile(m.mapId));
  for (const [off, len] of [[0, 0], [0, 300_001], [1, 255], [4096, 65_536], [299_000, 1001]] as const) {
    assert.equal(crc32FromMap(m.mapId, off, len), crc32(data.subarray(off, off + len)) >>> 0, `[${off}, +${len})`);
  }
  assert.throws(() => crc32FromMap(m.mapId, 299_000, 1002), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.INVALID_OPTION && /outside file map/.test(e.message));
  assert.throws(() => crc32FromMap(m.mapId, -1, 4), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.INVALID_OPTION && /offset/.test(e.message));
});

test('crc32FromMap over a file truncated under its mapping is SHARD_CORRUPT every time, never SIGBUS; the rest still hashes', (t) => {
  const dir = tempDirFor(t);
  const file = join(dir, 'f.bin');
  const data = randomBytes(1 << 20);
  writeFileSync(file, data);
  const m = mapFile(file);
  t.after(() => unmapFile(m.mapId));
  const cut = 500_000; // not page-aligned: the page holding it reads as zeros past it
  truncateSync(file, cut);
  for (let round = 0; round < 5; round++) {
    // Pages wholly past the new end fault.
    assert.throws(() => crc32FromMap(m.mapId, 700_000 + round * 4096, 8192), (e: unknown) => {
      assert.ok(e instanceof GpufeedError && e.code === ErrorCodes.SHARD_CORRUPT, String(e));
      assert.equal(e.details.signal, 'SIGBUS');
      assert.match(e.message, /truncated after it was mapped/);
      return true;
    });
    // A range ending in the zeros of the page holding the new end: no fault there, still refused.
    assert.throws(() => crc32FromMap(m.mapId, cut - 1000, 1200), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.SHARD_CORRUPT && /shrank/.test(e.message) && e.details.fileOffset === cut);
    assert.equal(crc32FromMap(m.mapId, round * 1000, 100_000), crc32(data.subarray(round * 1000, round * 1000 + 100_000)) >>> 0);
  }
});

const schema: ColumnSpec[] = [{ name: 'x', dtype: 'int32', kind: 'fixed', shape: [64], nullable: false }];

/** An Arrow shard of several record batches on disk, with its manifest entry and ref. */
function arrowShard(dir: string): { file: string; entry: ShardEntry; ref: ShardRef; layout: ArrowLayout; bytes: Uint8Array } {
  const rows = 200;
  const x = new Int32Array(rows * 64).map((_, i) => i * 31);
  const r = encodeShard({ schema, shard: { rows, columns: [{ values: x, nullCount: 0 }] } as unknown as ShardColumns, format: 'arrow', maxBatchRows: 40 });
  const file = join(dir, 's.arrow');
  writeFileSync(file, r.bytes);
  const entry: ShardEntry = { path: 'shards/s.arrow', format: 'arrow', rows, bytes: r.bytes.length, hash: `sha256:${'0'.repeat(64)}`, layout: r.layout };
  const ref: ShardRef = { index: 0, name: entry.path, file, format: 'arrow', bytes: r.bytes.length };
  return { file, entry, ref, layout: r.layout as ArrowLayout, bytes: r.bytes };
}

test('a flipped byte in a record batch hashed natively over the mapping is HASH_MISMATCH naming shard and piece', (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref, layout, bytes } = arrowShard(dir);
  assert.ok(layout.batches.length >= 4);
  const b = layout.batches[2]!;
  const flipped = Buffer.from(bytes);
  const at = b.offset + b.metadataLength + Math.floor(b.bodyLength / 2);
  flipped[at] = flipped[at]! ^ 0x10;
  writeFileSync(file, flipped);
  const fd = openSync(file, 'r');
  const m = mapFile(fd);
  t.after(() => {
    unmapFile(m.mapId);
    closeSync(fd);
  });
  const v = new PieceVerifier();
  const id = fileIdentity(fd);
  v.arrowBatch(fd, id, ref, entry, 0, undefined, m.mapId);
  v.arrowBatch(fd, id, ref, entry, 1, undefined, m.mapId);
  assert.equal(v.hashed, 2);
  assert.throws(() => v.arrowBatch(fd, id, ref, entry, 2, undefined, m.mapId), (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.HASH_MISMATCH);
    assert.equal(err.details.shard, entry.path);
    assert.equal(err.details.piece, 'record batch 2');
    assert.equal(err.details.field, 'layout.batches[2].crc32');
    assert.match(err.message, /shards\/s\.arrow: record batch 2 \(bytes \[/);
    return true;
  });
  // A bad piece stays bad (never remembered as verified), and the good ones after it still pass.
  assert.throws(() => v.arrowBatch(fd, id, ref, entry, 2, undefined, m.mapId), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.HASH_MISMATCH);
  v.arrowBatch(fd, id, ref, entry, 3, undefined, m.mapId);
});

test('a shard truncated under its mapping while its piece is hashed is SHARD_CORRUPT naming shard and piece', (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref, layout } = arrowShard(dir);
  const fd = openSync(file, 'r');
  const m = mapFile(fd);
  t.after(() => {
    unmapFile(m.mapId);
    closeSync(fd);
  });
  const id = fileIdentity(fd);
  const last = layout.batches.length - 1;
  truncateSync(file, layout.batches[last]!.offset + 10);
  const v = new PieceVerifier();
  v.arrowBatch(fd, id, ref, entry, 0, undefined, m.mapId);
  assert.throws(() => v.arrowBatch(fd, id, ref, entry, last, undefined, m.mapId), (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.SHARD_CORRUPT, err.message);
    assert.equal(err.details.shard, entry.path);
    assert.equal(err.details.piece, `record batch ${last}`);
    return true;
  });
});

function manifestOf(entry: ShardEntry): ManifestV1 {
  return { format: 'gpufeed-dataset', version: 1, schema, shards: [entry], rows: entry.rows, bytes: entry.bytes } as ManifestV1;
}

test('claimPiece: a piece another worker is hashing is waited for, not hashed again; a claim that never ends times out', async (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref } = arrowShard(dir);
  const manifest = manifestOf(entry);
  const buffer = new SharedArrayBuffer(4 * (entry.layout as ArrowLayout).batches.length);
  const shared = sharedPieceFlags(buffer, manifest);
  const fd = openSync(file, 'r');
  t.after(() => closeSync(fd));
  const id = fileIdentity(fd);

  // Another thread holds the claim on piece 1, then reports it verified.
  Atomics.store(shared.words, 1, PIECE_HASHING);
  const other = new Worker(
    `const { workerData } = require('node:worker_threads');
     const w = new Int32Array(workerData);
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
     Atomics.store(w, 1, ${PIECE_VERIFIED});
     Atomics.notify(w, 1);`,
    { eval: true, workerData: buffer },
  );
  const exited = new Promise((resolve) => other.once('exit', resolve));
  // Running before this thread blocks in the claim's wait (here CLAIM_WAIT_MS, far longer than 50 ms).
  await new Promise((resolve) => other.once('online', resolve));
  const v = new PieceVerifier({ claimWaitMs: () => CLAIM_WAIT_MS });
  v.arrowBatch(fd, id, ref, entry, 1, shared);
  assert.equal(v.hashed, 0, 'waited for the other worker instead of hashing');
  await exited;

  // This worker's own claims: taken, then settled as verified.
  v.arrowBatch(fd, id, ref, entry, 0, shared);
  assert.equal(v.hashed, 1);
  assert.equal(Atomics.load(shared.words, 0), PIECE_VERIFIED);

  // A claim nobody settles (its worker died mid-hash): after the wait the piece is hashed anyway.
  Atomics.store(shared.words, 2, PIECE_HASHING);
  assert.equal(claimPiece(shared.words, 2, 30), 'unclaimed');
  assert.equal(Atomics.load(shared.words, 3), PIECE_UNCHECKED);
  assert.equal(claimPiece(shared.words, 3, 30), 'mine');
  assert.equal(Atomics.load(shared.words, 3), PIECE_HASHING);
});

test('a piece that fails its check lets go of its claim: the word is unchecked again, the next worker hashes it and fails too', (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref, layout, bytes } = arrowShard(dir);
  const flipped = Buffer.from(bytes);
  const at = layout.batches[1]!.offset + layout.batches[1]!.metadataLength + 5;
  flipped[at] = flipped[at]! ^ 0x01;
  writeFileSync(file, flipped);
  const shared = sharedPieceFlags(new SharedArrayBuffer(4 * layout.batches.length), manifestOf(entry));
  const fd = openSync(file, 'r');
  const m = mapFile(fd);
  t.after(() => {
    unmapFile(m.mapId);
    closeSync(fd);
  });
  const id = fileIdentity(fd);
  const bad = (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.HASH_MISMATCH && err.details.piece === 'record batch 1';
  const a = new PieceVerifier();
  assert.throws(() => a.arrowBatch(fd, id, ref, entry, 1, shared, m.mapId), bad);
  assert.equal(Atomics.load(shared.words, 1), PIECE_UNCHECKED);
  const b = new PieceVerifier();
  assert.throws(() => b.arrowBatch(fd, id, ref, entry, 1, shared, m.mapId), bad);
  assert.equal(b.hashed, 1);
  // The same bytes read with pread (no mapping) give the same verdict.
  assert.throws(() => new PieceVerifier().arrowBatch(fd, id, ref, entry, 1, undefined, 0), bad);
  assert.equal(readFileSync(file)[at], flipped[at]);
});

/**
 * Another "worker" holding the claim on `word`: once this thread has settled `after` (its hash
 * ahead), it settles `word` to `value`. Bounded: gives up after 5 s.
 */
function otherClaimant(buffer: SharedArrayBuffer, word: number, after: number, value: number): { online: Promise<unknown>; exited: Promise<unknown> } {
  const w = new Worker(
    `const { workerData: d } = require('node:worker_threads');
     const w = new Int32Array(d.buffer);
     for (let i = 0; i < 500 && Atomics.load(w, d.after) !== ${PIECE_VERIFIED}; i++) Atomics.wait(w, d.after, Atomics.load(w, d.after), 10);
     Atomics.store(w, d.word, d.value);
     Atomics.notify(w, d.word);`,
    { eval: true, workerData: { buffer, word, after, value } },
  );
  return { online: new Promise((r) => w.once('online', r)), exited: new Promise((r) => w.once('exit', r)) };
}

test('a piece another worker is hashing is deferred: the slot goes on, the next piece is hashed ahead meanwhile, then the verdict is awaited', async (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref, layout } = arrowShard(dir);
  const buffer = new SharedArrayBuffer(4 * layout.batches.length);
  const shared = sharedPieceFlags(buffer, manifestOf(entry));
  const fd = openSync(file, 'r');
  const m = mapFile(fd);
  t.after(() => {
    unmapFile(m.mapId);
    closeSync(fd);
  });
  const id = fileIdentity(fd);
  Atomics.store(shared.words, 1, PIECE_HASHING);
  const other = otherClaimant(buffer, 1, 2, PIECE_VERIFIED);
  await other.online;
  const v = new PieceVerifier({ claimWaitMs: () => CLAIM_WAIT_MS });
  const deferred: DeferredPiece[] = [];
  v.arrowBatch(fd, id, ref, entry, 1, shared, m.mapId, deferred);
  v.arrowBatch(fd, id, ref, entry, 1, shared, m.mapId, deferred);
  assert.equal(deferred.length, 1, 'deferred once');
  assert.equal(v.hashed, 0, 'nothing hashed yet');
  v.settleDeferred(deferred, shared);
  await other.exited;
  assert.equal(deferred.length, 0);
  assert.equal(v.hashed, 1, 'only the piece hashed ahead');
  assert.equal(Atomics.load(shared.words, 2), PIECE_VERIFIED, 'record batch 2 hashed ahead');
  assert.equal(Atomics.load(shared.words, 1), PIECE_VERIFIED);
  // Both now count as verified for this worker: no further hash.
  v.arrowBatch(fd, id, ref, entry, 2, shared, m.mapId, deferred);
  assert.equal(v.hashed, 1);
});

test('a deferred piece whose claimant lets go is hashed by the waiting worker: a flipped byte is HASH_MISMATCH naming shard and piece; a bad piece hashed ahead is left unflagged', async (t) => {
  const dir = tempDirFor(t);
  const { file, entry, ref, layout, bytes } = arrowShard(dir);
  const flipped = Buffer.from(bytes);
  for (const u of [1, 3]) {
    const at = layout.batches[u]!.offset + layout.batches[u]!.metadataLength + 9;
    flipped[at] = flipped[at]! ^ 0x80;
  }
  writeFileSync(file, flipped);
  const buffer = new SharedArrayBuffer(4 * layout.batches.length);
  const shared = sharedPieceFlags(buffer, manifestOf(entry));
  const fd = openSync(file, 'r');
  const m = mapFile(fd);
  t.after(() => {
    unmapFile(m.mapId);
    closeSync(fd);
  });
  const id = fileIdentity(fd);
  const v = new PieceVerifier({ claimWaitMs: () => CLAIM_WAIT_MS });
  const deferred: DeferredPiece[] = [];

  // Bad piece 1 deferred; piece 2 (good) hashed ahead; then the claimant lets go.
  Atomics.store(shared.words, 1, PIECE_HASHING);
  let other = otherClaimant(buffer, 1, 2, PIECE_UNCHECKED);
  await other.online;
  v.arrowBatch(fd, id, ref, entry, 1, shared, m.mapId, deferred);
  assert.throws(() => v.settleDeferred(deferred, shared), (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.HASH_MISMATCH);
    assert.equal(err.details.shard, entry.path);
    assert.equal(err.details.piece, 'record batch 1');
    return true;
  });
  await other.exited;
  assert.equal(deferred.length, 0);
  assert.equal(Atomics.load(shared.words, 1), PIECE_UNCHECKED, 'a bad piece is never flagged');

  // Good piece 2 deferred under a claim nobody settles (its worker died, or the OS does not run
  // it); bad piece 3 hashed ahead meanwhile: no error, not flagged; after the claim wait (a few
  // ms for a piece this size) piece 2 is hashed here.
  assert.ok(claimWaitMs(layout.batches[2]!.bodyLength) < 10 && claimWaitMs(2 ** 40) === CLAIM_WAIT_MS);
  const fresh = new PieceVerifier();
  Atomics.store(shared.words, 2, PIECE_HASHING);
  fresh.arrowBatch(fd, id, ref, entry, 2, shared, m.mapId, deferred);
  assert.equal(deferred.length, 1);
  fresh.settleDeferred(deferred, shared);
  assert.equal(fresh.hashed, 2, 'piece 3 ahead, then piece 2 itself');
  assert.equal(Atomics.load(shared.words, 3), PIECE_UNCHECKED);
  assert.equal(Atomics.load(shared.words, 2), PIECE_VERIFIED);
  assert.throws(() => fresh.arrowBatch(fd, id, ref, entry, 3, shared, m.mapId), (err: unknown) => err instanceof GpufeedError && err.code === ErrorCodes.HASH_MISMATCH && err.details.piece === 'record batch 3');
});
