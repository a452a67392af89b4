// Parquet page headers: Thrift compact protocol, only the fields a page decoder needs (the rest
// are skipped by type). Read from the bytes of a column chunk; throws PageFormatError on anything
// malformed, which the caller turns into a named error for its shard.

export class PageFormatError extends Error {}

/** Bounds on one page (writers use about 1 MiB; DuckDB writes a chunk as one page of up to a row group). */
const MAX_PAGE_BYTES = 1 << 30;
const MAX_PAGE_VALUES = 1 << 28;

export const PAGE_DATA = 0;
export const PAGE_INDEX = 1;
export const PAGE_DICTIONARY = 2;
export const PAGE_DATA_V2 = 3;

/** Parquet Encoding enum values. */
export const Encoding = {
  PLAIN: 0,
  PLAIN_DICTIONARY: 2,
  RLE: 3,
  BIT_PACKED: 4,
  DELTA_BINARY_PACKED: 5,
  DELTA_LENGTH_BYTE_ARRAY: 6,
  DELTA_BYTE_ARRAY: 7,
  RLE_DICTIONARY: 8,
  BYTE_STREAM_SPLIT: 9,
} as const;

export interface PageHeader {
  type: number;
  uncompressedSize: number;
  compressedSize: number;
  /** Bytes of the header itself. */
  headerSize: number;
  /** Data pages: values (leaf slots, nulls included); dictionary pages: entries. */
  numValues: number;
  encoding: number;
  /** v1: the levels' encoding (RLE, or the deprecated BIT_PACKED). */
  defEncoding: number;
  repEncoding: number;
  /** v2 only. */
  numNulls: number;
  numRows: number;
  defLength: number;
  repLength: number;
  isCompressed: boolean;
}

const T_STOP = 0, T_TRUE = 1, T_FALSE = 2, T_BYTE = 3, T_I16 = 4, T_I32 = 5, T_I64 = 6, T_DOUBLE = 7, T_BINARY = 8, T_LIST = 9, T_SET = 10, T_MAP = 11, T_STRUCT = 12;

class Compact {
  pos: number;
  constructor(readonly b: Uint8Array, start: number) {
    this.pos = start;
  }

  byte(): number {
    if (this.pos >= this.b.length) throw new PageFormatError('page header runs past the column chunk');
    return this.b[this.pos++]!;
  }

  /** Unsigned varint, up to 2^53 (sizes and counts never come near). */
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const x = this.byte();
      v += (x & 0x7f) * mul;
      if ((x & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new PageFormatError('bad varint in page header');
  }

  zigzag(): number {
    const v = this.varint();
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  skip(type: number, depth: number): void {
    if (depth > 32) throw new PageFormatError('page header nests too deep');
    switch (type) {
      case T_TRUE: case T_FALSE: return;
      case T_BYTE: this.byte(); return;
      case T_I16: case T_I32: case T_I64: this.varint(); return;
      case T_DOUBLE: this.pos += 8; return;
      case T_BINARY: {
        const n = this.varint(); // before the +=, which would read pos first
        this.pos += n;
        return;
      }
      case T_LIST: case T_SET: {
        const h = this.byte();
        const n = h >> 4 === 15 ? this.varint() : h >> 4;
        for (let i = 0; i < n; i++) this.skip(h & 0x0f, depth + 1);
        return;
      }
      case T_MAP: {
        const n = this.varint();
        if (n === 0) return;
        const kv = this.byte();
        for (let i = 0; i < n; i++) {
          this.skip(kv >> 4, depth + 1);
          this.skip(kv & 0x0f, depth + 1);
        }
        return;
      }
      case T_STRUCT: this.struct(() => false, depth + 1); return;
      default: throw new PageFormatError(`unknown Thrift type ${type} in page header`);
    }
  }

  /** Reads a struct; `field(id, type)` consumes the fields it knows and returns true. */
  struct(field: (id: number, type: number) => boolean, depth = 0): void {
    let last = 0;
    for (;;) {
      const h = this.byte();
      const type = h & 0x0f;
      if (type === T_STOP) return;
      const delta = h >> 4;
      const id = delta === 0 ? this.zigzag() : last + delta;
      last = id;
      if (!field(id, type)) this.skip(type, depth);
    }
  }
}

/** Reads the page header at `offset` of `bytes`. */
export function readPageHeader(bytes: Uint8Array, offset: number): PageHeader {
  const r = new Compact(bytes, offset);
  const h: PageHeader = {
    type: -1, uncompressedSize: -1, compressedSize: -1, headerSize: 0, numValues: -1, encoding: -1,
    defEncoding: Encoding.RLE, repEncoding: Encoding.RLE, numNulls: 0, numRows: -1, defLength: 0, repLength: 0, isCompressed: true,
  };
  const i32 = (type: number): number => {
    if (type !== T_I32) throw new PageFormatError(`page header field has Thrift type ${type}, expected i32`);
    return r.zigzag();
  };
  r.struct((id, type) => {
    switch (id) {
      case 1: h.type = i32(type); return true;
      case 2: h.uncompressedSize = i32(type); return true;
      case 3: h.compressedSize = i32(type); return true;
      case 5: // DataPageHeader
        if (type !== T_STRUCT) return false;
        r.struct((f, t) => {
          if (f === 1) h.numValues = i32(t);
          else if (f === 2) h.encoding = i32(t);
          else if (f === 3) h.defEncoding = i32(t);
          else if (f === 4) h.repEncoding = i32(t);
          else return false;
          return true;
        }, 1);
        return true;
      case 7: // DictionaryPageHeader
        if (type !== T_STRUCT) return false;
        r.struct((f, t) => {
          if (f === 1) h.numValues = i32(t);
          else if (f === 2) h.encoding = i32(t);
          else return false;
          return true;
        }, 1);
        return true;
      case 8: // DataPageHeaderV2
        if (type !== T_STRUCT) return false;
        r.struct((f, t) => {
          if (f === 1) h.numValues = i32(t);
          else if (f === 2) h.numNulls = i32(t);
          else if (f === 3) h.numRows = i32(t);
          else if (f === 4) h.encoding = i32(t);
          else if (f === 5) h.defLength = i32(t);
          else if (f === 6) h.repLength = i32(t);
          else if (f === 7 && (t === T_TRUE || t === T_FALSE)) h.isCompressed = t === T_TRUE;
          else return false;
          return true;
        }, 1);
        return true;
      default:
        return false;
    }
  });
  h.headerSize = r.pos - offset;
  // Counts and sizes size allocations: a damaged header must not ask for gigabytes.
  if (h.uncompressedSize > MAX_PAGE_BYTES || h.numValues > MAX_PAGE_VALUES || h.numRows > MAX_PAGE_VALUES || h.numNulls < 0 || h.numNulls > h.numValues) {
    throw new PageFormatError(`page header claims ${h.uncompressedSize} bytes, ${h.numValues} values, ${h.numRows} rows, ${h.numNulls} nulls`);
  }
  if (h.type < 0 || h.compressedSize < 0 || h.uncompressedSize < 0) throw new PageFormatError('page header lacks its type or sizes');
  if ((h.type === PAGE_DATA || h.type === PAGE_DATA_V2 || h.type === PAGE_DICTIONARY) && (h.numValues < 0 || h.encoding < 0)) {
    throw new PageFormatError('page header lacks its value count or encoding');
  }
  if (h.type === PAGE_DATA_V2 && (h.numRows < 0 || h.defLength < 0 || h.repLength < 0 || h.defLength + h.repLength > h.compressedSize)) {
    throw new PageFormatError('data page v2 header has bad row count or level lengths');
  }
  return h;
}
