// Decoding one Parquet page: dictionary pages into values, data pages (v1 and v2) into their
// repetition and definition levels and their non-null values, in the encodings pyarrow, DuckDB
// and Spark write. Pages are independent of each other (given the chunk's dictionary), so a
// reader can decode only the pages holding the rows it needs.
import type { LeafPath } from './column-path.js';
import { decompress, type Codec } from './codecs.js';
import { snappyDecompress } from './snappy.js';
import { bitWidthOf, levelStats, readHybrid, type LevelStats } from './hybrid-rle.js';
import { Encoding, PAGE_DATA, PAGE_DATA_V2, PageFormatError, type PageHeader } from './page-header.js';
import {
  isByteValues, readByteStreamSplit, readDeltaBinaryPacked, readDeltaByteArray, readDeltaLengthByteArray, readPlain,
  type ByteValues, type NumericValues, type PhysicalType, type Values,
} from './values.js';

/** An encoding this decoder does not implement (the caller may take another path). */
export class UnsupportedEncoding extends Error {}

export interface ChunkInfo {
  type: PhysicalType;
  typeLength: number;
  codec: Codec;
  path: LeafPath;
}

export interface DecodedPage {
  /** Level slots (values, nulls included). */
  numValues: number;
  /** Rows that start in this page. */
  numRows: number;
  /** Values that are not null (definition level at its maximum; numValues when the column has no levels). */
  nonNull: number;
  /** Repetition levels (undefined when the column has none). */
  rep: Uint8Array | undefined;
  /** Definition levels (undefined when the column has none). */
  def: Uint8Array | undefined;
  /** The non-null values, in order. */
  values: Values;
  /**
   * With `plainBytes`, PLAIN fixed-width values come back here instead, as the page's own bytes
   * (no copy to an aligned array; `values` is then empty).
   */
  plainBytes?: Uint8Array;
}

const FIXED_WIDTH: Partial<Record<PhysicalType, number>> = { INT32: 4, INT64: 8, FLOAT: 4, DOUBLE: 8 };

const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

export function decodeDictionaryPage(info: ChunkInfo, header: PageHeader, body: Uint8Array): Values {
  if (header.encoding !== Encoding.PLAIN && header.encoding !== Encoding.PLAIN_DICTIONARY) throw new UnsupportedEncoding(`dictionary page encoding ${header.encoding}`);
  const page = decompress(info.codec, body, header.uncompressedSize);
  return readPlain(page, 0, page.length, header.numValues, info.type, info.typeLength).values;
}

/** Levels of a v1 page: 4-byte length, then the hybrid runs; returns the offset after them. */
function levelsV1(page: Uint8Array, pos: number, encoding: number, max: number, n: number, out: Uint8Array, stats: LevelStats): number {
  if (encoding !== Encoding.RLE) throw new UnsupportedEncoding(`level encoding ${encoding}`);
  if (pos + 4 > page.length) throw new PageFormatError('levels length runs past the end of its page');
  const len = dv(page).getUint32(pos, true);
  const end = pos + 4 + len;
  if (end > page.length) throw new PageFormatError('levels run past the end of their page');
  readHybrid(page, pos + 4, end, bitWidthOf(max), n, out, stats);
  return end;
}

function checkMax(stats: LevelStats, max: number, what: string): void {
  if (stats.max > max) throw new PageFormatError(`${what} level ${stats.max} over the maximum ${max}`);
}

/**
 * Rows and first repetition level of a v1 data page of a repeated column, from its repetition
 * levels alone: a snappy page is decompressed only as far as those levels reach (they lead the
 * page, the values follow), so a chunk's page directory costs a fraction of decoding it. The
 * definition levels and values are checked when the page itself is decoded.
 */
export function pageRowsV1(info: ChunkInfo, header: PageHeader, body: Uint8Array): { rows: number; firstRep: number } {
  const { maxRep } = info.path;
  if (header.type !== PAGE_DATA || maxRep === 0) throw new PageFormatError('pageRowsV1 reads v1 pages of repeated columns');
  if (header.repEncoding !== Encoding.RLE) throw new UnsupportedEncoding(`level encoding ${header.repEncoding}`);
  const size = header.uncompressedSize;
  let head: Uint8Array;
  if (info.codec === 'SNAPPY') {
    if (size < 4) throw new PageFormatError('levels length runs past the end of its page');
    const len = dv(snappyDecompress(body, size, 4)).getUint32(0, true);
    head = snappyDecompress(body, size, Math.min(size, 4 + len));
  } else {
    head = decompress(info.codec, body, size);
  }
  const n = header.numValues;
  const rep = new Uint8Array(n);
  const stats = levelStats(0);
  levelsV1(head, 0, header.repEncoding, maxRep, n, rep, stats);
  checkMax(stats, maxRep, 'repetition');
  return { rows: stats.hits, firstRep: n > 0 ? rep[0]! : 0 };
}

/** Decodes a data page; `levelsOnly` skips the values (an empty array comes back for them). */
export function decodeDataPage(info: ChunkInfo, header: PageHeader, body: Uint8Array, dictionary: Values | undefined, levelsOnly = false, plainBytes = false): DecodedPage {
  const { maxDef, maxRep } = info.path;
  const n = header.numValues;
  const rep = maxRep > 0 ? new Uint8Array(n) : undefined;
  const def = maxDef > 0 ? new Uint8Array(n) : undefined;
  // Rows are the repetition levels equal to 0, non-null values the definition levels at their maximum.
  const repStats = levelStats(0);
  const defStats = levelStats(maxDef);
  let page: Uint8Array;
  let pos: number;
  if (header.type === PAGE_DATA) {
    page = decompress(info.codec, body, header.uncompressedSize);
    pos = 0;
    if (rep) pos = levelsV1(page, pos, header.repEncoding, maxRep, n, rep, repStats);
    if (def) pos = levelsV1(page, pos, header.defEncoding, maxDef, n, def, defStats);
  } else if (header.type === PAGE_DATA_V2) {
    const levelBytes = header.repLength + header.defLength;
    if (rep) readHybrid(body, 0, header.repLength, bitWidthOf(maxRep), n, rep, repStats);
    else if (header.repLength !== 0) throw new PageFormatError('repetition levels on a column without repetition');
    if (def) readHybrid(body, header.repLength, levelBytes, bitWidthOf(maxDef), n, def, defStats);
    const rest = body.subarray(levelBytes);
    page = header.isCompressed ? decompress(info.codec, rest, header.uncompressedSize - levelBytes) : rest;
    pos = 0;
  } else {
    throw new PageFormatError(`page type ${header.type} is not a data page`);
  }
  if (rep) checkMax(repStats, maxRep, 'repetition');
  if (def) checkMax(defStats, maxDef, 'definition');
  const nonNull = def ? defStats.hits : n;
  const numRows = rep ? repStats.hits : n;
  if (header.type === PAGE_DATA_V2 && header.numRows !== numRows) throw new PageFormatError(`data page v2 says ${header.numRows} rows, its levels hold ${numRows}`);
  const width = FIXED_WIDTH[info.type];
  if (plainBytes && !levelsOnly && width && header.encoding === Encoding.PLAIN) {
    if (pos + nonNull * width > page.length) throw new PageFormatError(`PLAIN ${info.type} runs past the end of its page`);
    return { numValues: n, numRows, nonNull, rep, def, values: new Uint8Array(0), plainBytes: page.subarray(pos, pos + nonNull * width) };
  }
  const values = levelsOnly ? new Uint8Array(0) : decodeValues(info, header.encoding, page, pos, nonNull, dictionary);
  return { numValues: n, numRows, nonNull, rep, def, values };
}

function decodeValues(info: ChunkInfo, encoding: number, page: Uint8Array, pos: number, n: number, dictionary: Values | undefined): Values {
  const end = page.length;
  const { type, typeLength } = info;
  switch (encoding) {
    case Encoding.PLAIN:
      return readPlain(page, pos, end, n, type, typeLength).values;
    case Encoding.PLAIN_DICTIONARY:
    case Encoding.RLE_DICTIONARY: {
      if (!dictionary) throw new PageFormatError('dictionary-encoded page without a dictionary page');
      if (n === 0) return gather(dictionary, new Uint32Array(0));
      if (pos >= end) throw new PageFormatError('dictionary indices missing');
      const width = page[pos]!;
      const idx = new Uint32Array(n);
      readHybrid(page, pos + 1, end, width, n, idx);
      return gather(dictionary, idx);
    }
    case Encoding.RLE: {
      if (type !== 'BOOLEAN') throw new UnsupportedEncoding(`RLE values of ${type}`);
      if (pos + 4 > end) throw new PageFormatError('RLE booleans length runs past the end of its page');
      const len = dv(page).getUint32(pos, true);
      if (pos + 4 + len > end) throw new PageFormatError('RLE booleans run past the end of their page');
      const out = new Uint8Array(n);
      readHybrid(page, pos + 4, pos + 4 + len, 1, n, out);
      return out;
    }
    case Encoding.DELTA_BINARY_PACKED:
      if (type !== 'INT32' && type !== 'INT64') throw new UnsupportedEncoding(`DELTA_BINARY_PACKED ${type}`);
      return readDeltaBinaryPacked(page, pos, end, n, type === 'INT64').values;
    case Encoding.DELTA_LENGTH_BYTE_ARRAY:
      if (type !== 'BYTE_ARRAY') throw new UnsupportedEncoding(`DELTA_LENGTH_BYTE_ARRAY ${type}`);
      return readDeltaLengthByteArray(page, pos, end, n).values;
    case Encoding.DELTA_BYTE_ARRAY:
      if (type !== 'BYTE_ARRAY' && type !== 'FIXED_LEN_BYTE_ARRAY') throw new UnsupportedEncoding(`DELTA_BYTE_ARRAY ${type}`);
      return readDeltaByteArray(page, pos, end, n).values;
    case Encoding.BYTE_STREAM_SPLIT:
      return readByteStreamSplit(page, pos, end, n, type, typeLength);
    default:
      throw new UnsupportedEncoding(`value encoding ${encoding}`);
  }
}

/** Values dict[idx[i]], bounds-checked. */
export function gather(dict: Values, idx: Uint32Array): Values {
  const size = isByteValues(dict) ? dict.offsets.length - 1 : dict.length;
  for (let i = 0; i < idx.length; i++) if (idx[i]! >= size) throw new PageFormatError(`dictionary index ${idx[i]} out of range (${size} entries)`);
  if (isByteValues(dict)) {
    const offsets = new Int32Array(idx.length + 1);
    let total = 0;
    for (let i = 0; i < idx.length; i++) {
      const k = idx[i]!;
      total += dict.offsets[k + 1]! - dict.offsets[k]!;
      offsets[i + 1] = total;
    }
    const bytes = new Uint8Array(total);
    for (let i = 0; i < idx.length; i++) {
      const k = idx[i]!;
      bytes.set(dict.bytes.subarray(dict.offsets[k]!, dict.offsets[k + 1]!), offsets[i]!);
    }
    return { offsets, bytes } satisfies ByteValues;
  }
  const d = dict as NumericValues;
  const out = new (d.constructor as { new (n: number): NumericValues })(idx.length);
  // Copy the stored bits as integers (a float read and written back may change a NaN's payload).
  if (d.BYTES_PER_ELEMENT === 1) {
    const src = d as Uint8Array;
    const o = out as Uint8Array;
    for (let i = 0; i < idx.length; i++) o[i] = src[idx[i]!]!;
  } else if (d.BYTES_PER_ELEMENT === 4) {
    const src = new Int32Array(d.buffer, d.byteOffset, d.length);
    const o = new Int32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < idx.length; i++) o[i] = src[idx[i]!]!;
  } else {
    const src = new Int32Array(d.buffer, d.byteOffset, d.length * 2);
    const o = new Int32Array(out.buffer, out.byteOffset, out.length * 2);
    for (let i = 0; i < idx.length; i++) {
      const k = idx[i]! * 2;
      o[2 * i] = src[k]!;
      o[2 * i + 1] = src[k + 1]!;
    }
  }
  return out;
}
