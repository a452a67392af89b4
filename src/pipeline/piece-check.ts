// A decode worker's checks of the shards it reads (DESIGN.md, "Trust"): when it opens a shard, the
// manifest's claims against the file's own footer (shard-truth.ts) and the footer's checksum; as
// it first reads a piece (an Arrow record batch, a Parquet column chunk), that piece's checksum,
// before any row of it reaches a batch. A piece is hashed once per worker per file: the verified
// set is keyed by the file's identity (device, inode, size, mtime), so a shuffled epoch that
// revisits a batch, or a shard closed and reopened, costs no second hash.
import { closeSync, fstatSync, openSync, readSync, statSync, type BigIntStats } from 'node:fs';
import type { FileMetaData } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { parquetChunkRanges, type ParquetChunkRange } from '../formats/parquet/chunk-ranges.js';
import type { RangeReader } from '../formats/range-reader.js';
import { formatChecksum, pieceChecksum } from '../dataset/piece-checksum.js';
import type { ColumnSpec, ManifestV1, ParquetLayout, ShardEntry } from '../dataset/types.js';
import type { ShardRef } from './decode-messages.js';

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

function readFully(fd: number, ref: ShardRef, out: Uint8Array, position: number): void {
  let done = 0;
  while (done < out.length) {
    const n = readSync(fd, out, done, out.length - done, position + done);
    if (n === 0) throw shortRead(ref, position, out.length, done);
    done += n;
  }
}

/** Ranged reads of an open shard file, for the footer readers. */
export function fdRangeReader(fd: number, ref: ShardRef): RangeReader {
  return async (offset, length) => {
    const out = new Uint8Array(length);
    readFully(fd, ref, out, offset);
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
 * Pieces verified by any worker of one loader: one Int32 word per piece of the manifest (1 once a
 * worker has checked it), shared by the loader's workers, so a dataset is hashed about once per
 * loader rather than once per worker. Words are set only after a piece matched.
 */
export interface SharedPieceFlags {
  words: Int32Array;
  /** First word of each shard (manifest order): its Arrow batches, or its Parquet chunks row group by row group. */
  bases: number[];
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

/** One worker's piece checksum checks, with its set of verified pieces per file. */
export class PieceVerifier {
  readonly #verified = new Map<string, Set<string>>();
  readonly #chunkRanges = new WeakMap<FileMetaData, ParquetChunkRange[][]>();
  #scratch = new Uint8Array(1 << 20);
  /** Pieces hashed so far (each at most once per file). */
  hashed = 0;
  /** Bytes hashed so far. */
  hashedBytes = 0;

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

  #hash(fd: number, ref: ShardRef, offset: number, length: number): number {
    if (this.#scratch.length < length) this.#scratch = new Uint8Array(Math.max(length, this.#scratch.length * 2));
    const buf = this.#scratch.subarray(0, length);
    readFully(fd, ref, buf, offset);
    this.hashed += 1;
    this.hashedBytes += length;
    return pieceChecksum(buf);
  }

  #mismatch(ref: ShardRef, piece: string, field: string, offset: number, length: number, got: number, want: number): GpufeedError {
    return new GpufeedError(
      ErrorCodes.HASH_MISMATCH,
      `shard ${ref.name}: ${piece} (bytes [${offset}, ${offset + length})) checksums to ${formatChecksum(got)}, the manifest's ${field} is ${formatChecksum(want)}; the shard is damaged (gpufeed verify checks the whole file)`,
      { shard: ref.name, path: ref.file, piece, field },
    );
  }

  /** Record batch `unit` of an Arrow shard, metadata and body, before its rows are read. */
  arrowBatch(fd: number, identity: string, ref: ShardRef, entry: ShardEntry, unit: number, shared?: SharedPieceFlags): void {
    if (entry.layout.kind !== 'arrow') return;
    const b = entry.layout.batches[unit];
    if (!b || b.crc32 === undefined) return;
    // Hot path (once per run of rows): a piece any worker of this loader verified is done.
    const word = shared ? shared.bases[ref.index]! + unit : -1;
    if (shared && Atomics.load(shared.words, word) === 1) return;
    const set = this.#setOf(identity);
    const key = `b${unit}`;
    if (set.has(key)) return;
    const length = b.metadataLength + b.bodyLength;
    const got = this.#hash(fd, ref, b.offset, length);
    if (got !== b.crc32) throw this.#mismatch(ref, `record batch ${unit}`, `layout.batches[${unit}].crc32`, b.offset, length, got, b.crc32);
    set.add(key);
    if (shared) Atomics.store(shared.words, word, 1);
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
        if (columns.includes(fileChunks[k]!.column) && Atomics.load(shared.words, first + k) !== 1) done = false;
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
      if (shared && Atomics.load(shared.words, first + k) === 1) {
        set.add(key);
        return;
      }
      const got = this.#hash(fd, ref, f.offset, f.bytes);
      if (got !== c.crc32) throw this.#mismatch(ref, `row group ${unit} column ${f.column}`, `${field}.crc32`, f.offset, f.bytes, got, c.crc32);
      set.add(key);
      if (shared) Atomics.store(shared.words, first + k, 1);
    });
  }
}
