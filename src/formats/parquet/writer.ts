// Parquet shards: ShardColumns encoded by gpufeed's own writer, in row groups of ~8 MiB. Every
// column chunk is PLAIN data pages v1 of ~1 MiB (each starting at a row), levels in the RLE /
// bit-packed hybrid, compressed per page (snappy by default); the schema is schema-map.ts's
// (3-level LISTs for fixed and variable lists), and gpufeed's own schema rides in the key/value
// metadata. gpufeed's columns are at most one list level deep, so levels come straight from the
// offsets and validity: no general Dremel encoding, no per-value JS objects.
import type { SchemaElement } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import { valuesPerRow } from '../../dataset/columns.js';
import type { TypedArray } from '../../dataset/dtypes.js';
import type { ColumnSpec, ParquetLayout } from '../../dataset/types.js';
import { PIECE_HASH, pieceChecksum } from '../../dataset/piece-checksum.js';
import { columnBytes, type ColumnData, type ShardColumns } from '../column-data.js';
import { parquetSchemaFor, SCHEMA_METADATA_KEY } from '../schema-map.js';
import { ByteSink } from './byte-sink.js';
import { parquetCodec, type CodecChoice } from './compression.js';
import { parquetChunkRanges, parquetLayoutFromFooter, PARQUET_MAGIC } from './file.js';
import { encodeDataPageHeader, encodeFileMetaData, ENCODING_PLAIN, ENCODING_RLE, type ChunkMeta, type RowGroupMeta } from './footer-writer.js';
import { writeHybrid } from './hybrid-rle-writer.js';

export const PARQUET_TARGET_ROW_GROUP_BYTES = 8 << 20;
/** Uncompressed value bytes per data page (a page ends at the first row boundary past it). */
export const PARQUET_TARGET_PAGE_BYTES = 1 << 20;

export interface ParquetEncodeOptions {
  /** snappy (default), gzip, zstd (where available) or none. */
  compression?: string;
  targetRowGroupBytes?: number;
  targetPageBytes?: number;
}

export interface EncodedParquetShard {
  bytes: Uint8Array;
  layout: ParquetLayout;
}

export function parquetRowGroupRows(shard: ShardColumns, opts: ParquetEncodeOptions = {}): number {
  const target = opts.targetRowGroupBytes ?? PARQUET_TARGET_ROW_GROUP_BYTES;
  const total = shard.columns.reduce((a, c) => a + columnBytes(c), 0);
  const perRow = shard.rows > 0 ? total / shard.rows : 1;
  return Math.max(1, Math.floor(target / Math.max(perRow, 1)));
}

/** The file being written: parts in order, and the offset the next one starts at. */
class FileParts {
  readonly parts: Uint8Array[] = [];
  offset = 0;

  push(b: Uint8Array): void {
    this.parts.push(b);
    this.offset += b.length;
  }

  concat(): Uint8Array {
    const out = new Uint8Array(this.offset);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

export function encodeParquetShard(schema: readonly ColumnSpec[], shard: ShardColumns, opts: ParquetEncodeOptions = {}): EncodedParquetShard {
  const codec = parquetCodec(opts.compression ?? 'snappy');
  const elements = parquetSchemaFor(schema);
  const leaves = leavesOf(schema, elements);
  const pageBytes = opts.targetPageBytes ?? PARQUET_TARGET_PAGE_BYTES;
  const file = new FileParts();
  file.push(u32le(PARQUET_MAGIC));
  const groupRows = parquetRowGroupRows(shard, opts);
  const rowGroups: RowGroupMeta[] = [];
  for (let start = 0; start < shard.rows; start += groupRows) {
    const end = Math.min(shard.rows, start + groupRows);
    const offset = file.offset;
    const columns = schema.map((col, c) => {
      const data = shard.columns[c];
      if (!data) throw new GpufeedError(ErrorCodes.INTERNAL, `shard has no data for column ${col.name}`);
      return writeChunk(file, col, leaves[c]!, data, start, end, codec, pageBytes);
    });
    rowGroups.push({ columns, rows: end - start, offset, compressedBytes: file.offset - offset });
  }
  const footer = encodeFileMetaData({
    schema: elements,
    rows: shard.rows,
    rowGroups,
    keyValues: [{ key: SCHEMA_METADATA_KEY, value: JSON.stringify(schema) }],
    createdBy: 'gpufeed',
  });
  file.push(footer);
  file.push(u32le(footer.length));
  file.push(u32le(PARQUET_MAGIC));
  const bytes = file.concat();
  const { layout } = parquetLayoutFromFooter(bytes, bytes.length);
  return { bytes, layout };
}

/** `layout` with the checksum of every column chunk and of the footer of `bytes`, the whole file. */
export function withParquetPieceChecksums(layout: ParquetLayout, bytes: Uint8Array): ParquetLayout {
  const { metadata } = parquetLayoutFromFooter(bytes, bytes.length);
  const ranges = parquetChunkRanges(metadata);
  const rowGroups = layout.rowGroups.map((g, i) => ({
    ...g,
    chunks: (ranges[i] ?? []).map((c) => ({ ...c, crc32: pieceChecksum(bytes.subarray(c.offset, c.offset + c.bytes)) })),
  }));
  return { ...layout, rowGroups, pieceHash: PIECE_HASH, footerCrc32: pieceChecksum(bytes.subarray(layout.footerOffset, layout.footerOffset + layout.footerLength)) };
}

interface Leaf {
  element: SchemaElement;
  path: string[];
  /** Highest definition level: OPTIONAL column +1, the list's REPEATED group +1. */
  maxDef: number;
  repeated: boolean;
}

/** Each column's leaf in schema-map.ts's element list (root first; a list is 3 elements). */
function leavesOf(schema: readonly ColumnSpec[], elements: readonly SchemaElement[]): Leaf[] {
  const out: Leaf[] = [];
  for (let i = 1, c = 0; c < schema.length; c++) {
    const col = schema[c]!;
    const repeated = col.kind === 'fixed' || col.kind === 'list';
    const chain = repeated ? [elements[i]!, elements[i + 1]!, elements[i + 2]!] : [elements[i]!];
    i += chain.length;
    out.push({ element: chain[chain.length - 1]!, path: chain.map((e) => e.name), maxDef: (col.nullable ? 1 : 0) + (repeated ? 1 : 0), repeated });
  }
  return out;
}

/** Bytes one value of `col` takes in a PLAIN page (byte arrays: their 4-byte length). */
function plainWidth(col: ColumnSpec): number {
  switch (col.dtype) {
    case 'bool': return 1 / 8;
    case 'int8': case 'uint8': case 'int16': case 'uint16': case 'int32': case 'uint32': case 'float32': return 4;
    case 'int64': case 'uint64': case 'float64': return 8;
    case 'float16': return 2;
    case 'string': case 'binary': return 4;
  }
}

/** One column chunk of rows [start, end): its data pages, appended to `file`. */
function writeChunk(file: FileParts, col: ColumnSpec, leaf: Leaf, data: ColumnData, start: number, end: number, codec: CodecChoice, pageBytes: number): ChunkMeta {
  const dataPageOffset = file.offset;
  const perRow = col.kind === 'fixed' ? valuesPerRow(col) : 1;
  const first = (r: number): number => (data.offsets ? data.offsets[r]! : r * perRow);
  const width = plainWidth(col);
  const isBytes = col.kind === 'bytes';
  let numValues = 0;
  let uncompressedBytes = 0;
  let dataPages = 0;
  let a = start;
  while (a < end) {
    // Rows [a, b): at least one, then up to about pageBytes of values.
    let b = a + 1;
    let bytes = (first(b) - first(a)) * (isBytes ? 1 : width) + (isBytes ? 4 : 0);
    while (b < end && bytes < pageBytes) {
      bytes += (first(b + 1) - first(b)) * (isBytes ? 1 : width) + (isBytes ? 4 : 0);
      b++;
    }
    const page = encodePageBody(col, leaf, data, a, b, first);
    const body = page.body;
    const compressed = codec.compress(body);
    const header = encodeDataPageHeader(body.length, compressed.length, page.numValues);
    file.push(header);
    file.push(compressed);
    uncompressedBytes += header.length + body.length;
    numValues += page.numValues;
    dataPages++;
    a = b;
  }
  return {
    type: leaf.element.type!,
    encodings: leaf.maxDef > 0 ? [ENCODING_PLAIN, ENCODING_RLE] : [ENCODING_PLAIN],
    path: leaf.path,
    codec: codec.codec,
    numValues,
    uncompressedBytes,
    compressedBytes: file.offset - dataPageOffset,
    dataPageOffset,
    dataPages,
  };
}

/** A v1 page body for rows [a, b): repetition levels, definition levels, PLAIN values. */
function encodePageBody(col: ColumnSpec, leaf: Leaf, data: ColumnData, a: number, b: number, first: (r: number) => number): { body: Uint8Array; numValues: number } {
  const validity = data.validity;
  const valid = (r: number): boolean => !validity || validity[r] === 1;
  const rows = b - a;
  const elements = first(b) - first(a);
  const valueBytes = col.kind === 'bytes' ? elements + 4 * rows : Math.ceil(elements * plainWidth(col));
  const out = new ByteSink(64 + valueBytes + (leaf.repeated ? elements >> 1 : rows >> 2));
  let numValues = rows;
  if (leaf.repeated) {
    let slots = 0;
    for (let r = a; r < b; r++) slots += valid(r) && first(r + 1) > first(r) ? first(r + 1) - first(r) : 1;
    const rep = new Uint8Array(slots);
    const def = new Uint8Array(slots);
    let k = 0;
    for (let r = a; r < b; r++) {
      const n = first(r + 1) - first(r);
      if (!valid(r)) k++; // null row: level 0
      else if (n === 0) def[k++] = leaf.maxDef - 1; // empty list
      else {
        def.fill(leaf.maxDef, k, k + n);
        rep.fill(1, k + 1, k + n);
        k += n;
      }
    }
    levels(out, rep, 1);
    levels(out, def, leaf.maxDef === 1 ? 1 : 2);
    numValues = slots;
  } else if (leaf.maxDef > 0) {
    const def = validity ? validity.slice(a, b) : new Uint8Array(rows).fill(1);
    levels(out, def, 1);
  }
  if (col.kind === 'bytes') plainByteArrays(out, data, a, b, valid);
  else plainValues(out, col, validRange(data.values, a, b, first, validity));
  return { body: out.finish(), numValues };
}

/** A v1 level section: its byte length (u32 LE), then the hybrid encoding. */
function levels(out: ByteSink, values: Uint8Array, bitWidth: number): void {
  const at = out.length;
  out.u32le(0);
  writeHybrid(out, values, bitWidth);
  out.patchU32le(at, out.length - at - 4);
}

/** The element values of the valid rows among [a, b) (null rows hold no values in Parquet). */
function validRange(values: TypedArray, a: number, b: number, first: (r: number) => number, validity: Uint8Array | undefined): TypedArray {
  if (!validity) return values.subarray(first(a), first(b));
  let n = 0;
  for (let r = a; r < b; r++) if (validity[r] === 1) n += first(r + 1) - first(r);
  const out = new (values.constructor as new (n: number) => TypedArray)(n);
  let k = 0;
  for (let r = a; r < b; r++) {
    if (validity[r] !== 1) continue;
    const lo = first(r);
    const hi = first(r + 1);
    if (hi - lo === 1) out[k++] = values[lo]!;
    else {
      out.set(values.subarray(lo, hi) as never, k);
      k += hi - lo;
    }
  }
  return out;
}

function plainValues(out: ByteSink, col: ColumnSpec, values: TypedArray): void {
  switch (col.dtype) {
    case 'bool': {
      // One bit per value, least significant first.
      const n = Math.ceil(values.length / 8);
      const buf = out.reserve(n);
      buf.fill(0, out.length, out.length + n);
      for (let i = 0; i < values.length; i++) if (values[i]) buf[out.length + (i >> 3)]! |= 1 << (i & 7);
      out.length += n;
      return;
    }
    case 'int8': case 'uint8': case 'int16': case 'uint16': {
      // INT32 physical: widened, sign- or zero-extended by the source array's own type.
      const wide = new Int32Array(values.length);
      wide.set(values as Int8Array);
      out.bytes(new Uint8Array(wide.buffer));
      return;
    }
    default:
      // int32, uint32 (INT32 holds its bit pattern), int64/uint64, float16 bits, float32/64: the
      // little-endian bytes as they are in memory.
      out.bytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
}

function plainByteArrays(out: ByteSink, data: ColumnData, a: number, b: number, valid: (r: number) => boolean): void {
  const o = data.offsets!;
  const bytes = data.values as Uint8Array;
  const buf = out.reserve((o[b]! - o[a]!) + 4 * (b - a));
  let p = out.length;
  for (let r = a; r < b; r++) {
    if (!valid(r)) continue;
    const lo = o[r]!;
    const hi = o[r + 1]!;
    const n = hi - lo;
    buf[p] = n & 0xff;
    buf[p + 1] = (n >>> 8) & 0xff;
    buf[p + 2] = (n >>> 16) & 0xff;
    buf[p + 3] = (n >>> 24) & 0xff;
    p += 4;
    if (n < 16) for (let i = lo; i < hi; i++) buf[p++] = bytes[i]!;
    else {
      buf.set(bytes.subarray(lo, hi), p);
      p += n;
    }
  }
  out.length = p;
}
