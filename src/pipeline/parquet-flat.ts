// Fast path for fixed-shape and scalar numeric Parquet columns: decodes a column chunk's pages
// straight into one flat typed array (rows x values-per-row), with no per-row JS objects. Levels
// are decoded into byte arrays and only checked (every row has exactly its shape's values, none
// null); values come from hyparquet's page-level decoders (plain, dictionary/RLE, delta, byte
// stream split; data pages v1 and v2; every codec `compressors` knows). Anything else (nulls,
// ragged rows, types that need conversion) returns undefined and takes the generic path.
import { readSync } from 'node:fs';
import type { ColumnChunk, CompressionCodec, Compressors, FileMetaData, ParquetType, SchemaElement } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { decompressPage } from 'hyparquet/src/datapage.js';
import { deltaBinaryUnpack } from 'hyparquet/src/delta.js';
import { byteStreamSplit, readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import { readPlain } from 'hyparquet/src/plain.js';
import { getMaxDefinitionLevel, getMaxRepetitionLevel, getSchemaPath } from 'hyparquet/src/schema.js';
import type { DType } from '../dataset/types.js';
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ColumnRegion } from './batch-layout.js';
import type { ShardRef } from './decode-messages.js';

type Flat = Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;
type FlatCtor = { new (n: number): Flat; new (buffer: ArrayBufferLike, offset: number, length: number): Flat; BYTES_PER_ELEMENT: number };

/** Physical types whose values are the dtype's bytes as they are (no conversion). */
const PHYSICAL: Partial<Record<DType, { type: ParquetType; ctor: FlatCtor }>> = {
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

function bitWidth(max: number): number {
  return 32 - Math.clz32(max);
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
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, start + done);
    if (n === 0) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: file ends at ${start + done}, wanted bytes up to ${start + length}`, { shard: ref.name, path: ref.file });
    done += n;
  }
  return out;
}

/**
 * Decodes column `region.name` of row group `unit` flat, or returns undefined when the column is
 * not a plain fixed-shape/scalar numeric column without nulls (the generic path handles it), or
 * does not fit `into` when given.
 */
export function decodeFlatColumn(
  fd: number, ref: ShardRef, metadata: FileMetaData, unit: number, region: ColumnRegion, compressors: Compressors, into?: FlatTarget,
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
  const schemaPath = getSchemaPath(metadata.schema, meta.path_in_schema);
  const element = schemaPath[schemaPath.length - 1]!.element;
  if (!plainNumeric(element, region.dtype)) return undefined;
  const maxRep = getMaxRepetitionLevel(schemaPath);
  const maxDef = getMaxDefinitionLevel(schemaPath);
  if (maxRep !== (region.kind === 'fixed' ? 1 : 0)) return undefined;
  const perRow = region.rowBytes / region.elementBytes;
  const rows = Number(rg.num_rows);
  try {
    const n = rows * perRow;
    if (into && n * phys.ctor.BYTES_PER_ELEMENT > into.bytes) return undefined;
    const out = into ? new phys.ctor(into.buffer, into.offset, n) : new phys.ctor(n);
    decodeChunk(fd, ref, chunk, meta.codec, compressors, phys.type, element, maxRep, maxDef, perRow, out);
    return { bytes: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), rowBytes: region.rowBytes };
  } catch (err) {
    if (err instanceof NotFlat) return undefined;
    throw err;
  }
}

function decodeChunk(
  fd: number, ref: ShardRef, chunk: ColumnChunk, codec: CompressionCodec, compressors: Compressors, type: ParquetType,
  element: SchemaElement, maxRep: number, maxDef: number, perRow: number, out: Flat,
): void {
  const meta = chunk.meta_data!;
  const dictOffset = meta.dictionary_page_offset !== undefined ? Number(meta.dictionary_page_offset) : 0;
  const dataOffset = Number(meta.data_page_offset);
  const start = dictOffset > 0 && dictOffset < dataOffset ? dictOffset : dataOffset;
  const bytes = readChunkBytes(fd, ref, start, Number(meta.total_compressed_size));
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  let dictionary: Flat | undefined;
  let filled = 0;
  while (filled < out.length && reader.offset < bytes.length) {
    const header = parquetHeader(reader);
    const body = bytes.subarray(reader.offset, reader.offset + header.compressed_page_size);
    reader.offset += header.compressed_page_size;
    if (header.type === 'DICTIONARY_PAGE') {
      const page = decompressPage(body, header.uncompressed_page_size, codec, compressors);
      const d = readPlain({ view: new DataView(page.buffer, page.byteOffset, page.byteLength), offset: 0 }, type, header.dictionary_page_header!.num_values, element.type_length);
      dictionary = d as Flat;
      continue;
    }
    let page: Uint8Array;
    let levels: DataView;
    let levelsAt = 0;
    let numValues: number;
    let encoding: string;
    let repLength: number | undefined;
    let defLength: number | undefined;
    if (header.type === 'DATA_PAGE') {
      const h = header.data_page_header!;
      numValues = h.num_values;
      encoding = h.encoding;
      page = decompressPage(body, header.uncompressed_page_size, codec, compressors);
      levels = new DataView(page.buffer, page.byteOffset, page.byteLength);
    } else if (header.type === 'DATA_PAGE_V2') {
      const h = header.data_page_header_v2!;
      if (h.num_nulls > 0) throw new NotFlat();
      numValues = h.num_values;
      encoding = h.encoding;
      repLength = h.repetition_levels_byte_length;
      defLength = h.definition_levels_byte_length;
      levels = new DataView(body.buffer, body.byteOffset, repLength + defLength);
      const values = body.subarray(repLength + defLength);
      page = h.is_compressed === false ? values : decompressPage(values, header.uncompressed_page_size - repLength - defLength, codec, compressors);
    } else {
      continue; // index pages carry no values
    }
    if (filled + numValues > out.length) throw new NotFlat();
    const lr = { view: levels, offset: 0 };
    if (maxRep > 0) {
      const rep = new Uint8Array(numValues);
      readRleBitPackedHybrid(lr, bitWidth(maxRep), rep, repLength);
      // Fixed shape: a row starts exactly every perRow values.
      let pos = filled % perRow;
      for (let j = 0; j < numValues; j++) {
        if ((rep[j] === 0) !== (pos === 0)) throw new NotFlat();
        if (++pos === perRow) pos = 0;
      }
    }
    if (maxDef > 0) {
      const def = new Uint8Array(numValues);
      readRleBitPackedHybrid(lr, bitWidth(maxDef), def, defLength);
      for (let j = 0; j < numValues; j++) if (def[j] !== maxDef) throw new NotFlat();
    }
    levelsAt = lr.offset;
    // v1: values follow the levels in the same (decompressed) buffer; v2: they are their own.
    const vr = header.type === 'DATA_PAGE'
      ? { view: levels, offset: levelsAt }
      : { view: new DataView(page.buffer, page.byteOffset, page.byteLength), offset: 0 };
    const dst = out.subarray(filled, filled + numValues);
    if (encoding === 'PLAIN') {
      dst.set(readPlain(vr, type, numValues, element.type_length) as never);
    } else if (encoding === 'PLAIN_DICTIONARY' || encoding === 'RLE_DICTIONARY') {
      if (!dictionary) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: dictionary-encoded page without a dictionary page`, { shard: ref.name, path: ref.file });
      const width = vr.view.getUint8(vr.offset++);
      const idx = new Uint32Array(numValues);
      if (width) readRleBitPackedHybrid(vr, width, idx, vr.view.byteLength - vr.offset);
      const dict = dictionary;
      const n = dict.length;
      for (let j = 0; j < numValues; j++) {
        const k = idx[j]!;
        if (k >= n) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: dictionary index ${k} out of range (${n} entries)`, { shard: ref.name, path: ref.file });
        (dst as Int32Array)[j] = (dict as Int32Array)[k]!;
      }
    } else if (encoding === 'DELTA_BINARY_PACKED' && (type === 'INT32' || type === 'INT64')) {
      const tmp = type === 'INT32' ? new Int32Array(numValues) : new BigInt64Array(numValues);
      deltaBinaryUnpack(vr, numValues, tmp);
      dst.set(tmp as never);
    } else if (encoding === 'BYTE_STREAM_SPLIT') {
      dst.set(byteStreamSplit(vr, numValues, type, element.type_length) as never);
    } else {
      throw new NotFlat();
    }
    filled += numValues;
  }
  if (filled !== out.length) throw new GpufeedError(ErrorCodes.SHARD_CORRUPT, `shard ${ref.name}: column ${meta.path_in_schema.join('.')} has ${filled} values, expected ${out.length}`, { shard: ref.name, path: ref.file });
}
