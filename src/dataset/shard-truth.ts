// The file is the truth, the manifest a claim about it (DESIGN.md, "Trust"). Before any row of a
// shard is delivered, and in `gpufeed verify`, the manifest's schema, row count and layout are
// compared with what the file's own footer and record batch metadata say. A disagreement is
// GPUFEED_SHARD_CORRUPT naming the shard and the manifest field; a checksum that disagrees is
// GPUFEED_HASH_MISMATCH. Wrong dtypes, shapes or counts would otherwise decode into wrong values.
import { ErrorCodes, GpufeedError, type ErrorCode } from '../errors.js';
import { valuesPerRow } from './columns.js';
import type { RangeReader } from '../formats/range-reader.js';
import { readIndexLayout } from './index-layout.js';
import { formatChecksum } from './piece-checksum.js';
import type { ArrowLayout, ColumnSpec, ParquetLayout, ShardEntry, ShardFormat } from './types.js';

/** What a shard file says about itself. */
export interface ShardFileFacts {
  columns: ColumnSpec[];
  rows: number;
  layout: ArrowLayout | ParquetLayout;
  /** Absent for an Arrow IPC stream, which has no footer. */
  footerCrc32?: number;
}

/**
 * Reads a shard's facts from its footer or stream messages (and, with pieceChecksums, every
 * piece's checksum), mapping only `columns` (the manifest's): a column the dataset left out may
 * be of a type gpufeed cannot carry.
 */
export async function readShardFacts(read: RangeReader, size: number, format: ShardFormat, where: string, pieceChecksums: boolean, columns: readonly ColumnSpec[]): Promise<ShardFileFacts> {
  const info = await readIndexLayout(format, read, size, where, {}, { pieceChecksums, onlyColumns: new Set(columns.map((c) => c.name)) });
  const facts: ShardFileFacts = { columns: info.columns, rows: info.rows, layout: info.layout };
  if (info.footerCrc32 !== undefined) facts.footerCrc32 = info.footerCrc32;
  return facts;
}

export interface TruthOptions {
  /** Compare the footer checksum with the manifest's (when it has one). */
  footerChecksum?: boolean;
  /** Compare every piece checksum with the manifest's (facts read with pieceChecksums). */
  pieceChecksums?: boolean;
}

/**
 * Throws when the manifest's claims about `entry` disagree with the file. `schema` is the
 * manifest's: every column in it must be in the file with the same dtype, kind, values per row
 * and shape, and a column the file may hold nulls in must be nullable in the manifest.
 */
export function checkShardAgainstFile(entry: ShardEntry, schema: readonly ColumnSpec[], file: ShardFileFacts, opts: TruthOptions = {}): void {
  const fail = (field: string, why: string, code: ErrorCode = ErrorCodes.SHARD_CORRUPT, extra: Record<string, unknown> = {}): never => {
    throw new GpufeedError(code, `shard ${entry.path}: the manifest disagrees with the file: ${field} ${why}`, { shard: entry.path, field, ...extra });
  };
  const layout = entry.layout;
  if (opts.footerChecksum && layout.footerCrc32 !== undefined && layout.footerCrc32 !== file.footerCrc32) {
    const got = file.footerCrc32 === undefined ? 'the file has no footer' : `the file's footer checksums to ${formatChecksum(file.footerCrc32)}`;
    fail('layout.footerCrc32', `is ${formatChecksum(layout.footerCrc32)}, ${got} (the footer is damaged, or the manifest is)`, ErrorCodes.HASH_MISMATCH, { piece: 'footer' });
  }
  const fileCols = new Map(file.columns.map((c) => [c.name, c]));
  schema.forEach((col, i) => {
    const at = `schema[${i}] (column ${JSON.stringify(col.name)})`;
    const f = fileCols.get(col.name);
    if (!f) fail(at, `is not in the file, whose columns are ${file.columns.map((c) => c.name).join(', ')}`, ErrorCodes.SHARD_CORRUPT, { column: col.name });
    const c = f!;
    if (c.dtype !== col.dtype) fail(`${at}.dtype`, `says ${col.dtype}, the file's column is ${c.dtype}`, ErrorCodes.SHARD_CORRUPT, { column: col.name });
    // A Parquet list declared fixed-shape (`gpufeed index --shape`) is checked row by row where it
    // is decoded (each row must have exactly the shape's values); an Arrow list never is.
    const listAsFixed = entry.format === 'parquet' && col.kind === 'fixed' && c.kind === 'list';
    if (c.kind !== col.kind && !listAsFixed) fail(`${at}.kind`, `says ${col.kind}, the file's column is ${c.kind}`, ErrorCodes.SHARD_CORRUPT, { column: col.name });
    if (col.kind === 'fixed' && !listAsFixed) {
      const want = valuesPerRow(c);
      // Values per row decide where rows start; a different split of the same count into
      // dimensions (`index --shape emb=2x2` over a fixed-size list of 4) is a reshape, not damage.
      if (valuesPerRow(col) !== want) {
        fail(`${at}.shape`, `says [${col.shape!.join(', ')}], the file's rows are [${c.shape!.join(', ')}] (${want} values)`, ErrorCodes.SHARD_CORRUPT, { column: col.name });
      }
    }
    if (c.nullable && !col.nullable && col.kind !== 'fixed') {
      fail(`${at}.nullable`, 'says false, the file\'s column may hold nulls (they would be delivered as values)', ErrorCodes.SHARD_CORRUPT, { column: col.name });
    }
  });
  if (file.rows !== entry.rows) fail('rows', `says ${entry.rows}, the file holds ${file.rows}`);
  if (layout.kind !== file.layout.kind) fail('layout.kind', `says ${layout.kind}, the file is ${file.layout.kind}`);
  if (layout.kind === 'arrow') checkArrowLayout(layout, file.layout as ArrowLayout, fail, opts.pieceChecksums ?? false);
  else checkParquetLayout(layout, file.layout as ParquetLayout, fail, opts.pieceChecksums ?? false);
}

type Fail = (field: string, why: string, code?: ErrorCode, extra?: Record<string, unknown>) => never;

function checkArrowLayout(claim: ArrowLayout, file: ArrowLayout, fail: Fail, checksums: boolean): void {
  if (claim.batches.length !== file.batches.length) fail('layout.batches', `lists ${claim.batches.length} record batches, the file's footer ${file.batches.length}`);
  claim.batches.forEach((b, i) => {
    const f = file.batches[i]!;
    for (const key of ['offset', 'metadataLength', 'bodyLength', 'rows'] as const) {
      if (b[key] !== f[key]) fail(`layout.batches[${i}].${key}`, `says ${b[key]}, the file's record batch ${i} has ${f[key]}`, ErrorCodes.SHARD_CORRUPT, { piece: `record batch ${i}` });
    }
    if (checksums && b.crc32 !== undefined && b.crc32 !== f.crc32) {
      fail(`layout.batches[${i}].crc32`, `is ${formatChecksum(b.crc32)}, record batch ${i} checksums to ${formatChecksum(f.crc32 ?? 0)}`, ErrorCodes.HASH_MISMATCH, { piece: `record batch ${i}` });
    }
  });
}

function checkParquetLayout(claim: ParquetLayout, file: ParquetLayout, fail: Fail, checksums: boolean): void {
  if (claim.footerOffset !== file.footerOffset || claim.footerLength !== file.footerLength) {
    fail('layout.footerOffset', `says the footer is [${claim.footerOffset}, +${claim.footerLength}), the file's is [${file.footerOffset}, +${file.footerLength})`);
  }
  if (claim.rowGroups.length !== file.rowGroups.length) fail('layout.rowGroups', `lists ${claim.rowGroups.length} row groups, the file's footer ${file.rowGroups.length}`);
  claim.rowGroups.forEach((g, i) => {
    const f = file.rowGroups[i]!;
    for (const key of ['rows', 'offset', 'bytes'] as const) {
      if (g[key] !== f[key]) fail(`layout.rowGroups[${i}].${key}`, `says ${g[key]}, the file's row group ${i} has ${f[key]}`, ErrorCodes.SHARD_CORRUPT, { piece: `row group ${i}` });
    }
    if (!g.chunks) return;
    // Chunk ranges are in the file's facts only when read with checksums (verify); the decode
    // workers check each chunk's range as they first read it (piece-check.ts).
    const fileChunks = f.chunks;
    if (fileChunks && g.chunks.length !== fileChunks.length) fail(`layout.rowGroups[${i}].chunks`, `lists ${g.chunks.length} column chunks, the file's row group ${i} has ${fileChunks.length}`);
    g.chunks.forEach((c, k) => {
      const fc = fileChunks?.[k];
      if (!fc) return;
      const at = `layout.rowGroups[${i}].chunks[${k}]`;
      if (c.column !== fc.column || c.offset !== fc.offset || c.bytes !== fc.bytes) {
        fail(at, `says column ${JSON.stringify(c.column)} at [${c.offset}, +${c.bytes}), the file's row group ${i} has column ${JSON.stringify(fc.column)} at [${fc.offset}, +${fc.bytes})`, ErrorCodes.SHARD_CORRUPT, { piece: `row group ${i} column ${c.column}`, column: c.column });
      }
      if (checksums && fc.crc32 !== undefined && c.crc32 !== fc.crc32) {
        fail(`${at}.crc32`, `is ${formatChecksum(c.crc32)}, row group ${i} column ${c.column} checksums to ${formatChecksum(fc.crc32)}`, ErrorCodes.HASH_MISMATCH, { piece: `row group ${i} column ${c.column}`, column: c.column });
      }
    });
  });
}

