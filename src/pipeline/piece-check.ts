// A decode worker's checks of the shards it reads (DESIGN.md, "Trust"): when it opens a shard, the
// manifest's claims against the file's own footer (shard-truth.ts) and the footer's checksum; as
// it first reads a piece (an Arrow record batch, a Parquet column chunk), that piece's checksum,
// before any row of it reaches a batch. A piece is hashed once per worker per file: the verified
// set is keyed by the file's identity (device, inode, size, mtime), so a shuffled epoch that
// revisits a batch, or a shard closed and reopened, costs no second hash. Across the loader's
// workers a piece is hashed about once: a worker claims a piece's shared flag before hashing it,
// and another that wants the same piece meanwhile waits for that hash instead of repeating it
// (for a record batch, after its slot's copies and a hash of the next unclaimed batch: DeferredPiece).
// The hash runs in the addon (memory/map-checksum.ts): on the mmap read path in place over the
// mapping, with no copy; on the pread path over the bytes read.
import { closeSync, fstatSync, openSync, statSync, type BigIntStats } from 'node:fs';
import { readFully } from '../util/read-fully.js';
import { performance } from 'node:perf_hooks';
import type { FileMetaData } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { parquetChunkRanges, type ParquetChunkRange } from '../formats/parquet/chunk-ranges.js';
import type { RangeReader } from '../formats/range-reader.js';
import { formatChecksum, pieceChecksum } from '../dataset/piece-checksum.js';
import type { ColumnSpec, ManifestV1, ParquetLayout, ShardEntry } from '../dataset/types.js';
import { crc32FromMap, loadNative, nativeCrc32, nativeCrc32Kind } from '../memory/index.js';
import { RUN_FIELDS, type ShardRef } from './decode-messages.js';

// The format readers and the shard checks are imported when a shard of that format is first
// checked, not with this module: the loader's main thread (which needs only pieceFlagLayout) and a
// worker over Arrow shards then never load the Parquet reader and writer (hyparquet,
// hyparquet-writer), nor the main thread apache-arrow; module loading is most of a worker's
// start-up, which the first batch waits for (test/integration/startup-imports.test.ts).

/** Files whose verified pieces are remembered (a worker keeps a few shards open at once). */
const MAX_FILES = 64;

function shortRead(ref: ShardRef, position: number, length: number, got: number): GpufeedError {
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: file ends at ${position + got}, wanted ${length} bytes at ${position}`, { shard: ref.name, path: ref.file });
}

function readShardBytes(fd: number, ref: ShardRef, out: Uint8Array, position: number): void {
  const got = readFully(fd, out, position);
  if (got < out.length) throw shortRead(ref, position, out.length, got);
}

/** Ranged reads of an open shard file, for the footer readers. */
export function fdRangeReader(fd: number, ref: ShardRef): RangeReader {
  return async (offset, length) => {
    const out = new Uint8Array(length);
    readShardBytes(fd, ref, out, offset);
    return out;
  };
}

/** Identity of the file behind `fd`: the same path rewritten is another file. */
export function fileIdentity(fd: number): string {
  return identityOf(fstatSync(fd, { bigint: true }));
}

/** fileIdentity of the file at `path` now, or undefined when it cannot be stat'ed (opening it reports why). */
export function pathIdentity(path: string): string | undefined {
  try {
    return identityOf(statSync(path, { bigint: true }));
  } catch {
    return undefined;
  }
}

function identityOf(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
}

/**
 * The footer's checksum, from the file's own tail, before anything decodes the footer: a damaged
 * footer could otherwise decode into nonsense (a vector billions long) before a check sees it.
 * Skipped when the file cannot be opened or has the wrong size: opening it reports those.
 */
export async function checkFooterChecksum(ref: ShardRef, entry: ShardEntry): Promise<void> {
  const want = entry.layout.footerCrc32;
  if (want === undefined) return;
  let fd: number;
  try {
    fd = openSync(ref.file, 'r');
  } catch {
    return;
  }
  try {
    const size = fstatSync(fd).size;
    if (size !== ref.bytes) return;
    const read = fdRangeReader(fd, ref);
    const first = Math.min(size, 64 << 10);
    let tail = await read(size - first, first);
    const { footerLength } = entry.format === 'arrow'
      ? (await import('../formats/arrow/file.js')).arrowFooterRange(tail, size, ref.name)
      : (await import('../formats/parquet/file.js')).parquetFooterRange(tail, size, ref.name);
    if (footerLength > tail.length) tail = await read(size - footerLength, footerLength);
    const got = pieceChecksum(tail.subarray(tail.length - footerLength));
    if (got !== want) {
      throw new GpufeedError(ErrorCodes.HASH_MISMATCH, `shard ${ref.name}: the footer (last ${footerLength} bytes) checksums to ${formatChecksum(got)}, the manifest's layout.footerCrc32 is ${formatChecksum(want)}; the shard is damaged (gpufeed verify checks the whole file)`, {
        shard: ref.name, path: ref.file, piece: 'footer', field: 'layout.footerCrc32',
      });
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * At open: the manifest's schema, rows and layout against the file's footer and record batch
 * metadata, and (verifyPieces) the footer checksum. Throws before any row is read.
 */
export async function checkOpenedShard(fd: number, ref: ShardRef, entry: ShardEntry, schema: readonly ColumnSpec[], verifyPieces: boolean): Promise<void> {
  const { checkShardAgainstFile, readShardFacts } = await import('../dataset/shard-truth.js');
  const facts = await readShardFacts(fdRangeReader(fd, ref), ref.bytes, entry.format, ref.name, false, schema);
  checkShardAgainstFile(entry, schema, facts, { footerChecksum: verifyPieces });
}

/**
 * An error met while decoding a shard's piece: bad bytes (a decoder's own exception, or an
 * "internal" one it raised on them) become GPUFEED_SHARD_CORRUPT naming the shard and the piece;
 * gpufeed's other errors pass as they are.
 */
export function shardDecodeError(err: unknown, ref: ShardRef, piece: string): unknown {
  if (err instanceof GpufeedError && err.code !== ErrorCodes.INTERNAL) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (!(err instanceof GpufeedError) && typeof code === 'string' && code.startsWith('GPUFEED_') && code !== ErrorCodes.INTERNAL) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${piece} does not decode (${message}); the file is damaged`, { shard: ref.name, path: ref.file, piece }, { cause: err });
}

/**
 * Pieces verified by any worker of one loader: one Int32 word per piece of the manifest
 * (PIECE_VERIFIED once a worker has checked it, PIECE_HASHING while one is), shared by the
 * loader's workers, so a dataset is hashed about once per loader rather than once per worker.
 * A word is VERIFIED only after its piece matched.
 */
export interface SharedPieceFlags {
  words: Int32Array;
  /** First word of each shard (manifest order): its Arrow batches, or its Parquet chunks row group by row group. */
  bases: number[];
}

/** A SharedPieceFlags word: no worker has verified the piece (or one failed and let go). */
export const PIECE_UNCHECKED = 0;
/** The piece matched its checksum. */
export const PIECE_VERIFIED = 1;
/** One worker claimed the piece and is hashing it; the others wait for the outcome. */
export const PIECE_HASHING = 2;

/**
 * How long a worker waits for another worker's claim on a piece before it hashes the piece
 * itself: a claim is held only during one synchronous hash (well under a second for any piece
 * read from the page cache), and a worker that died mid-hash never lets go of its claim.
 */
export const CLAIM_WAIT_MS = 1000;
const CLAIM_POLL_MS = 20;

/**
 * How long a worker waits for another's hash of a piece of `bytes` before hashing it too: a few
 * times a slow hash of it (2 ms + 2 ms per MB; a 4 MiB record batch hashes in well under 1 ms from
 * the page cache), so a claimant the OS has descheduled on a busy host stalls the others briefly
 * at worst, and a duplicate hash is the price. At most CLAIM_WAIT_MS.
 */
export function claimWaitMs(bytes: number): number {
  return Math.min(CLAIM_WAIT_MS, 2 + bytes / 500_000);
}

/**
 * Claims piece word `word` for this worker's hash. 'verified': some worker verified it (meanwhile);
 * 'mine': this worker holds the claim and must settle it (settleClaim); 'unclaimed': another
 * worker's claim outlived `waitMs`, so this worker hashes without one.
 */
export function claimPiece(words: Int32Array, word: number, waitMs = CLAIM_WAIT_MS): 'verified' | 'mine' | 'unclaimed' {
  const deadline = performance.now() + waitMs;
  const polls = Math.ceil(waitMs / CLAIM_POLL_MS) + 1;
  for (let i = 0; i <= polls; i++) {
    const was = Atomics.compareExchange(words, word, PIECE_UNCHECKED, PIECE_HASHING);
    if (was === PIECE_UNCHECKED) return 'mine';
    if (was === PIECE_VERIFIED) return 'verified';
    const left = deadline - performance.now();
    if (left <= 0) break;
    Atomics.wait(words, word, PIECE_HASHING, Math.min(CLAIM_POLL_MS, left));
  }
  return Atomics.load(words, word) === PIECE_VERIFIED ? 'verified' : 'unclaimed';
}

/** Ends a claim: the piece verified, or (a mismatch, an error) back to unchecked; wakes the waiters. */
export function settleClaim(words: Int32Array, word: number, verified: boolean): void {
  Atomics.store(words, word, verified ? PIECE_VERIFIED : PIECE_UNCHECKED);
  Atomics.notify(words, word);
}

/**
 * Whether every run of a batch (packed RowRuns, row-runs.ts) reads an Arrow record batch some
 * worker of this loader has verified: the common case after the first pass over a piece, checked
 * in one tight loop before the batch's reads, so the per-run path (PieceVerifier.arrowBatch) is
 * skipped. A Parquet run, or a piece not verified yet, answers false.
 */
export function runsVerified(runs: Float64Array, shared: SharedPieceFlags): boolean {
  const { words, bases } = shared;
  for (let at = 0; at < runs.length; at += RUN_FIELDS) {
    // Field 5 is the record batch's offset for an Arrow run, -1 for a Parquet one.
    if (runs[at + 5]! < 0) return false;
    if (Atomics.load(words, bases[runs[at]!]! + runs[at + 1]!) !== PIECE_VERIFIED) return false;
  }
  return true;
}

/** Words needed for every piece of `manifest`, and each shard's first. */
export function pieceFlagLayout(manifest: ManifestV1): { bases: number[]; total: number } {
  const bases: number[] = [];
  let total = 0;
  for (const s of manifest.shards) {
    bases.push(total);
    total += s.layout.kind === 'arrow' ? s.layout.batches.length : s.layout.rowGroups.reduce((a, g) => a + (g.chunks?.length ?? 0), 0);
  }
  return { bases, total };
}

export function sharedPieceFlags(buffer: SharedArrayBuffer, manifest: ManifestV1): SharedPieceFlags {
  return { words: new Int32Array(buffer), bases: pieceFlagLayout(manifest).bases };
}

let bufferHash: ((bytes: Uint8Array) => number) | undefined;

/** The addon's crc32 where it is faster than node:zlib's (anything but its plain table), else zlib's. */
function hashBuffer(bytes: Uint8Array): number {
  if (!bufferHash) {
    let fast = false;
    try {
      loadNative();
      fast = nativeCrc32Kind() !== 'table';
    } catch {
      fast = false;
    }
    bufferHash = fast ? (b) => nativeCrc32(b) : pieceChecksum;
  }
  return bufferHash(bytes);
}

/**
 * A record batch a slot needs that another worker was hashing when the slot asked: the slot's
 * copies go ahead, and its verdict is awaited before the slot is published (settleDeferred).
 */
export interface DeferredPiece {
  fd: number;
  mapId: number;
  identity: string;
  ref: ShardRef;
  entry: ShardEntry;
  unit: number;
  word: number;
}

/** Pieces a worker waiting on another's hash may hash ahead (the next unclaimed record batches of the same shard). */
const HASH_AHEAD = 1;

/** One worker's piece checksum checks, with its set of verified pieces per file. */
export class PieceVerifier {
  readonly #verified = new Map<string, Set<string>>();
  readonly #claimWaitMs: (bytes: number) => number;
  readonly #chunkRanges = new WeakMap<FileMetaData, ParquetChunkRange[][]>();
  #scratch = new Uint8Array(1 << 20);
  /** Pieces hashed so far (each at most once per file). */
  hashed = 0;
  /** Bytes hashed so far. */
  hashedBytes = 0;

  /** `claimWaitMs`: how long to wait for another worker's hash of a piece of so many bytes (default claimWaitMs). */
  constructor(options: { claimWaitMs?: (bytes: number) => number } = {}) {
    this.#claimWaitMs = options.claimWaitMs ?? claimWaitMs;
  }

  /** Per layout, the flag word of each row group's first chunk, relative to the shard's first. */
  readonly #chunkWords = new WeakMap<ParquetLayout, number[]>();

  #chunkWordOf(layout: ParquetLayout, unit: number): number {
    let words = this.#chunkWords.get(layout);
    if (!words) {
      words = [];
      let w = 0;
      for (const g of layout.rowGroups) {
        words.push(w);
        w += g.chunks?.length ?? 0;
      }
      this.#chunkWords.set(layout, words);
    }
    return words[unit] ?? 0;
  }

  #setOf(identity: string): Set<string> {
    let set = this.#verified.get(identity);
    if (set) {
      // Most recently used last, so the oldest file is dropped first.
      this.#verified.delete(identity);
    } else {
      set = new Set();
      if (this.#verified.size >= MAX_FILES) this.#verified.delete(this.#verified.keys().next().value!);
    }
    this.#verified.set(identity, set);
    return set;
  }

  /** The checksum of one piece: in place over the mapping `mapId` when there is one, else over its bytes read from `fd`. */
  #hash(fd: number, mapId: number, ref: ShardRef, piece: string, offset: number, length: number): number {
    this.hashed += 1;
    this.hashedBytes += length;
    if (mapId !== 0) {
      if (offset + length > ref.bytes) throw shortRead(ref, offset, length, Math.max(0, ref.bytes - offset));
      try {
        return crc32FromMap(mapId, offset, length);
      } catch (err) {
        const e = err as GpufeedError;
        if (e.code !== ErrorCodes.SHARD_CORRUPT) throw err;
        throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: ${piece}: ${e.message}`, { ...e.details, shard: ref.name, path: ref.file, piece }, { cause: err });
      }
    }
    if (this.#scratch.length < length) this.#scratch = new Uint8Array(Math.max(length, this.#scratch.length * 2));
    const buf = this.#scratch.subarray(0, length);
    readShardBytes(fd, ref, buf, offset);
    return hashBuffer(buf);
  }

  /**
   * Hashes a piece and compares it with `want`, holding the loader-wide claim on its flag word
   * (when `shared`) so no other worker hashes it at the same time; returns at once when another
   * worker verified it meanwhile. Throws GPUFEED_HASH_MISMATCH naming the shard and the piece.
   */
  #checkPiece(fd: number, mapId: number, ref: ShardRef, piece: string, field: string, offset: number, length: number, want: number, shared: SharedPieceFlags | undefined, word: number): void {
    const claim = shared ? claimPiece(shared.words, word, this.#claimWaitMs(length)) : 'unclaimed';
    if (claim === 'verified') return;
    let ok = false;
    try {
      const got = this.#hash(fd, mapId, ref, piece, offset, length);
      if (got !== want) throw this.#mismatch(ref, piece, field, offset, length, got, want);
      ok = true;
    } finally {
      if (claim === 'mine') settleClaim(shared!.words, word, ok);
      else if (ok && shared) settleClaim(shared.words, word, true);
    }
  }

  #mismatch(ref: ShardRef, piece: string, field: string, offset: number, length: number, got: number, want: number): GpufeedError {
    return new GpufeedError(
      ErrorCodes.HASH_MISMATCH,
      `shard ${ref.name}: ${piece} (bytes [${offset}, ${offset + length})) checksums to ${formatChecksum(got)}, the manifest's ${field} is ${formatChecksum(want)}; the shard is damaged (gpufeed verify checks the whole file)`,
      { shard: ref.name, path: ref.file, piece, field },
    );
  }

  /**
   * Record batch `unit` of an Arrow shard, metadata and body, before its rows are read: hashed in
   * place when the shard is mapped (`mapId`, 0 for none), else read from `fd`.
   */
  arrowBatch(fd: number, identity: string, ref: ShardRef, entry: ShardEntry, unit: number, shared?: SharedPieceFlags, mapId = 0, deferred?: DeferredPiece[]): void {
    if (entry.layout.kind !== 'arrow') return;
    const b = entry.layout.batches[unit];
    if (!b || b.crc32 === undefined) return;
    // Hot path (once per run of rows): a piece any worker of this loader verified is done.
    const word = shared ? shared.bases[ref.index]! + unit : -1;
    if (shared && Atomics.load(shared.words, word) === PIECE_VERIFIED) return;
    const set = this.#setOf(identity);
    const key = `b${unit}`;
    if (set.has(key)) return;
    // Being hashed by another worker: wait for its verdict later, after this slot's copies.
    if (deferred && shared && Atomics.load(shared.words, word) === PIECE_HASHING) {
      if (!deferred.some((d) => d.word === word)) deferred.push({ fd, mapId, identity, ref, entry, unit, word });
      return;
    }
    this.#checkPiece(fd, mapId, ref, `record batch ${unit}`, `layout.batches[${unit}].crc32`, b.offset, b.metadataLength + b.bodyLength, b.crc32, shared, word);
    set.add(key);
  }

  /**
   * The verdict on every deferred piece (arrowBatch's `deferred`), before the slot that needs them
   * is published: another worker's, awaited, or this worker's own hash when that worker let go or
   * never settled. Throws the first mismatch; empties `deferred`. While the other worker still
   * hashes, this one hashes the next unclaimed record batch of that shard (what a read in
   * manifest order wants next), so the two split the hashing instead of one waiting.
   */
  settleDeferred(deferred: DeferredPiece[], shared: SharedPieceFlags | undefined): void {
    try {
      for (const d of deferred) {
        if (d.entry.layout.kind !== 'arrow') continue;
        const b = d.entry.layout.batches[d.unit]!;
        if (shared && Atomics.load(shared.words, d.word) === PIECE_HASHING) this.#hashAhead(d, shared);
        this.#checkPiece(d.fd, d.mapId, d.ref, `record batch ${d.unit}`, `layout.batches[${d.unit}].crc32`, b.offset, b.metadataLength + b.bodyLength, b.crc32!, shared, d.word);
        this.#setOf(d.identity).add(`b${d.unit}`);
      }
    } finally {
      deferred.length = 0;
    }
  }

  /** Hashes up to HASH_AHEAD record batches after `d` that no worker has claimed; a bad one is left for the worker that needs it to report. */
  #hashAhead(d: DeferredPiece, shared: SharedPieceFlags): void {
    if (d.entry.layout.kind !== 'arrow') return;
    const batches = d.entry.layout.batches;
    const base = shared.bases[d.ref.index]!;
    let done = 0;
    for (let u = d.unit + 1; u < batches.length && done < HASH_AHEAD; u++) {
      const b = batches[u]!;
      if (b.crc32 === undefined || Atomics.compareExchange(shared.words, base + u, PIECE_UNCHECKED, PIECE_HASHING) !== PIECE_UNCHECKED) continue;
      done += 1;
      let ok = false;
      try {
        ok = this.#hash(d.fd, d.mapId, d.ref, `record batch ${u}`, b.offset, b.metadataLength + b.bodyLength) === b.crc32;
      } catch {
        ok = false;
      } finally {
        settleClaim(shared.words, base + u, ok);
      }
      if (ok) this.#setOf(d.identity).add(`b${u}`);
    }
  }

  /**
   * The column chunks of `columns` in row group `unit` of a Parquet shard, before they are
   * decoded. Ranges come from the file's footer (what the decoder reads) and must match the
   * manifest's.
   */
  parquetChunks(fd: number, identity: string, ref: ShardRef, entry: ShardEntry, metadata: FileMetaData, unit: number, columns: readonly string[], shared?: SharedPieceFlags): void {
    if (entry.layout.kind !== 'parquet') return;
    const claimed = entry.layout.rowGroups[unit]?.chunks;
    if (!claimed) return;
    let ranges = this.#chunkRanges.get(metadata);
    if (!ranges) {
      ranges = parquetChunkRanges(metadata, ref.name);
      this.#chunkRanges.set(metadata, ranges);
    }
    const fileChunks = ranges[unit];
    if (!fileChunks) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: the file has no row group ${unit}`, { shard: ref.name, path: ref.file });
    if (fileChunks.length !== claimed.length) {
      throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: the manifest disagrees with the file: layout.rowGroups[${unit}].chunks lists ${claimed.length} column chunks, the file's row group ${unit} has ${fileChunks.length}`, { shard: ref.name, field: `layout.rowGroups[${unit}].chunks` });
    }
    const first = shared ? shared.bases[ref.index]! + this.#chunkWordOf(entry.layout, unit) : 0;
    // Hot path (once per run of rows): every wanted chunk verified by some worker of this loader,
    // its range checked before that.
    if (shared) {
      let done = true;
      for (let k = 0; k < fileChunks.length && done; k++) {
        if (columns.includes(fileChunks[k]!.column) && Atomics.load(shared.words, first + k) !== PIECE_VERIFIED) done = false;
      }
      if (done) return;
    }
    const set = this.#setOf(identity);
    fileChunks.forEach((f, k) => {
      if (!columns.includes(f.column)) return;
      const key = `c${unit}:${k}`;
      if (set.has(key)) return;
      const c = claimed[k]!;
      const field = `layout.rowGroups[${unit}].chunks[${k}]`;
      if (c.column !== f.column || c.offset !== f.offset || c.bytes !== f.bytes) {
        throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: the manifest disagrees with the file: ${field} says column ${JSON.stringify(c.column)} at [${c.offset}, +${c.bytes}), the file's footer has column ${JSON.stringify(f.column)} at [${f.offset}, +${f.bytes})`, { shard: ref.name, field, column: f.column });
      }
      if (shared && Atomics.load(shared.words, first + k) === PIECE_VERIFIED) {
        set.add(key);
        return;
      }
      this.#checkPiece(fd, 0, ref, `row group ${unit} column ${f.column}`, `${field}.crc32`, f.offset, f.bytes, c.crc32, shared, first + k);
      set.add(key);
    });
  }
}
