// Fast path for fixed-shape and scalar numeric Parquet columns: decodes a column chunk's pages
// straight into one flat typed array (rows x values-per-row), with no per-row JS objects. Pages are
// decoded by gpufeed's own page decoder (src/formats/parquet/: plain, dictionary/RLE, delta, byte
// stream split; data pages v1 and v2; every codec it knows); levels are only checked (every row has
// exactly its shape's values, none null). Anything else (nulls, ragged rows, types that need
// conversion, an encoding the decoder lacks) returns undefined and takes the generic path.
import { readFully } from '../../util/read-fully.js';
import type { ColumnChunk, FileMetaData, SchemaElement } from 'hyparquet';
import type { DType } from '../../dataset/types.js';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { leafPath } from './column-path.js';
import type { Codec } from './codecs.js';
import { PAGE_DATA, PAGE_DATA_V2, PAGE_DICTIONARY, PageFormatError, readPageHeader } from './page-header.js';
import { decodeDataPage, decodeDictionaryPage, UnsupportedEncoding, type ChunkInfo } from './pages.js';
import { isByteValues, type PhysicalType, type Values } from './values.js';
import type { ColumnRegion } from '../../pipeline/batch-layout.js';
import type { ShardRef } from '../../pipeline/decode-messages.js';

type Flat = Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;
type FlatCtor = { new (n: number): Flat; new (buffer: ArrayBufferLike, offset: number, length: number): Flat; BYTES_PER_ELEMENT: number };

/** Physical types whose values are the dtype's bytes as they are (no conversion). */
const PHYSICAL: Partial<Record<DType, { type: PhysicalType; ctor: FlatCtor }>> = {
  int32: { type: 'INT32', ctor: Int32Array as FlatCtor },
  uint32: { type: 'INT32', ctor: Uint32Array as FlatCtor },
  int64: { type: 'INT64', ctor: BigInt64Array as FlatCtor },
  uint64: { type: 'INT64', ctor: BigUint64Array as FlatCtor },
  float32: { type: 'FLOAT', ctor: Float32Array as FlatCtor },
  float64: { type: 'DOUBLE', ctor: Float64Array as FlatCtor },
};

/** Where to decode to instead of a new array: `bytes` bytes of `buffer` from `offset` (aligned to 8). */
export interface FlatTarget {
  buffer: ArrayBufferLike;
  offset: number;
  bytes: number;
}

/** Logical annotations that leave the stored bits as the value (anything else is converted). */
function plainNumeric(el: SchemaElement, dtype: DType): boolean {
  const ct = el.converted_type;
  const lt = el.logical_type;
  if (lt && lt.type !== 'INTEGER') return false;
  if (lt?.type === 'INTEGER' && (lt.bitWidth < 32 || lt.isSigned !== !dtype.startsWith('u'))) return false;
  if (ct === undefined) return true;
  return ct === 'INT_32' || ct === 'INT_64' || ct === 'UINT_32' || ct === 'UINT_64';
}

/** Why a chunk cannot take the fast path; the caller falls back to the generic decoder. */
class NotFlat extends Error {}

export interface FlatColumn {
  /** rows x perRow values, as bytes ready to copy into a slot. */
  bytes: Uint8Array;
  rowBytes: number;
}

function readChunkBytes(fd: number, ref: ShardRef, start: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const got = readFully(fd, out, start);
  if (got < length) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: file ends at ${start + got}, wanted bytes up to ${start + length}`, { shard: ref.name, path: ref.file });
  return out;
}

/**
 * Decodes column `region.name` of row group `unit` flat, or returns undefined when the column is
 * not a plain fixed-shape/scalar numeric column without nulls (the generic path handles it), or
 * does not fit `into` when given.
 */
export function decodeFlatColumn(
  fd: number, ref: ShardRef, metadata: FileMetaData, unit: number, region: ColumnRegion, into?: FlatTarget,
): FlatColumn | undefined {
  if (region.kind !== 'fixed' && region.kind !== 'scalar') return undefined;
  const phys = PHYSICAL[region.dtype];
  if (!phys) return undefined;
  const rg = metadata.row_groups[unit];
  if (!rg) return undefined;
  const chunks = rg.columns.filter((c) => c.meta_data?.path_in_schema[0] === region.name);
  if (chunks.length !== 1) return undefined;
  const chunk = chunks[0]!;
  const meta = chunk.meta_data!;
  if (meta.type !== phys.type) return undefined;
  const path = leafPath(metadata.schema, region.name);
  if (!path || path.names.join('.') !== meta.path_in_schema.join('.')) return undefined;
  const element = path.leaf;
  if (!plainNumeric(element, region.dtype)) return undefined;
  const maxRep = path.maxRep;
  // A multi-dim fixed shape may be stored as nested LISTs (pyarrow's nested fixed_size_list): one
  // repetition level per dimension, the leaf values contiguous once every level is checked.
  const nested = region.kind === 'fixed' && maxRep > 1;
  if (nested ? maxRep !== region.shape.length : maxRep !== (region.kind === 'fixed' ? 1 : 0)) return undefined;
  const perRow = region.rowBytes / region.elementBytes;
  const rows = Number(rg.num_rows);
  try {
    const n = rows * perRow;
    if (into && n * phys.ctor.BYTES_PER_ELEMENT > into.bytes) return undefined;
    const out = into ? new phys.ctor(into.buffer, into.offset, n) : new phys.ctor(n);
    const info: ChunkInfo = { type: phys.type, typeLength: element.type_length ?? 0, codec: meta.codec as Codec, path };
    decodeChunk(fd, ref, chunk, info, perRow, out, nested ? nestedRepLevels(region.shape) : undefined);
    return { bytes: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), rowBytes: region.rowBytes };
  } catch (err) {
    if (err instanceof NotFlat || err instanceof UnsupportedEncoding) return undefined;
    if (err instanceof PageFormatError) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: row group ${unit}, column ${region.name}: ${err.message}`, { shard: ref.name, path: ref.file, column: region.name });
    throw err;
  }
}

/**
 * The repetition level each value of a row must have when the shape is stored as nested LISTs:
 * 0 at the row's start, else the outermost dimension whose item starts there, plus one. With every
 * definition level at its maximum (no null or empty list anywhere), these levels mean exactly the
 * shape: [[1,2,3,4,5],[6,7,8],[9,10,11,12]] has the right total but not these levels.
 */
function nestedRepLevels(shape: readonly number[]): Uint8Array {
  const per = shape.reduce((a, b) => a * b, 1);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const out = new Uint8Array(per);
  for (let p = 1; p < per; p++) {
    let d = 0;
    while (p % strides[d]! !== 0) d++;
    out[p] = d + 1;
  }
  return out;
}

function decodeChunk(fd: number, ref: ShardRef, chunk: ColumnChunk, info: ChunkInfo, perRow: number, out: Flat, levels?: Uint8Array): void {
  const meta = chunk.meta_data!;
  const dictOffset = meta.dictionary_page_offset !== undefined ? Number(meta.dictionary_page_offset) : 0;
  const dataOffset = Number(meta.data_page_offset);
  const start = dictOffset > 0 && dictOffset < dataOffset ? dictOffset : dataOffset;
  const bytes = readChunkBytes(fd, ref, start, Number(meta.total_compressed_size));
  let dictionary: Values | undefined;
  let filled = 0;
  let at = 0;
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const width = out.BYTES_PER_ELEMENT;
  while (filled < out.length && at < bytes.length) {
    const header = readPageHeader(bytes, at);
    const bodyAt = at + header.headerSize;
    if (bodyAt + header.compressedSize > bytes.length) throw new PageFormatError('page runs past the column chunk');
    const body = bytes.subarray(bodyAt, bodyAt + header.compressedSize);
    at = bodyAt + header.compressedSize;
    if (header.type === PAGE_DICTIONARY) {
      dictionary = decodeDictionaryPage(info, header, body);
      continue;
    }
    if (header.type !== PAGE_DATA && header.type !== PAGE_DATA_V2) continue; // index pages carry no values
    if (header.type === PAGE_DATA_V2 && header.numNulls > 0) throw new NotFlat();
    const numValues = header.numValues;
    if (filled + numValues > out.length) throw new NotFlat();
    const page = decodeDataPage(info, header, body, dictionary, false, true);
    if (page.rep) {
      // Fixed shape: a row starts exactly every perRow values, so the page's rows (its repetition
      // levels equal to 0) are as many as the multiples of perRow it spans, each of them a 0.
      const rep = page.rep;
      const first = (perRow - (filled % perRow)) % perRow;
      const starts = first < numValues ? Math.floor((numValues - 1 - first) / perRow) + 1 : 0;
      if (page.numRows !== starts) throw new NotFlat();
      for (let j = first; j < numValues; j += perRow) if (rep[j] !== 0) throw new NotFlat();
      if (levels) {
        let p = filled % perRow;
        for (let j = 0; j < numValues; j++) {
          if (rep[j] !== levels[p]) throw new NotFlat();
          if (++p === perRow) p = 0;
        }
      }
    }
    // No nulls: every definition level at its maximum (the page counted them while decoding).
    if (page.def && page.nonNull !== numValues) throw new NotFlat();
    // The stored bits, as they are (uint32/uint64 share int32/int64's physical types); PLAIN
    // values straight from the page's bytes.
    if (page.plainBytes) {
      if (page.plainBytes.length !== numValues * width) throw new NotFlat();
      outBytes.set(page.plainBytes, filled * width);
    } else {
      const values = page.values;
      if (isByteValues(values) || values.BYTES_PER_ELEMENT !== width || values.length !== numValues) throw new NotFlat();
      outBytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), filled * width);
    }
    filled += numValues;
  }
  if (filled !== out.length) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: column ${meta.path_in_schema.join('.')} has ${filled} values, expected ${out.length}`, { shard: ref.name, path: ref.file });
}
