// The Parquet footer (FileMetaData, Thrift compact) and data page v1 headers, as gpufeed's writer
// fills them: the schema gpufeed maps its columns to (schema-map.ts), one ColumnMetaData per
// column chunk, key/value metadata. Field ids and enum values are those of parquet.thrift.
import type { SchemaElement } from 'hyparquet';
import { CompactWriter } from './thrift-writer.js';

const PHYSICAL_TYPE: Record<string, number> = {
  BOOLEAN: 0, INT32: 1, INT64: 2, INT96: 3, FLOAT: 4, DOUBLE: 5, BYTE_ARRAY: 6, FIXED_LEN_BYTE_ARRAY: 7,
};
const REPETITION: Record<string, number> = { REQUIRED: 0, OPTIONAL: 1, REPEATED: 2 };
const CONVERTED_TYPE: Record<string, number> = {
  UTF8: 0, MAP: 1, MAP_KEY_VALUE: 2, LIST: 3, ENUM: 4, DECIMAL: 5, DATE: 6, TIME_MILLIS: 7, TIME_MICROS: 8,
  TIMESTAMP_MILLIS: 9, TIMESTAMP_MICROS: 10, UINT_8: 11, UINT_16: 12, UINT_32: 13, UINT_64: 14,
  INT_8: 15, INT_16: 16, INT_32: 17, INT_64: 18, JSON: 19, BSON: 20, INTERVAL: 21,
};
/** LogicalType union members without parameters, by field id. */
const PLAIN_LOGICAL_TYPE: Record<string, number> = { STRING: 1, MAP: 2, LIST: 3, ENUM: 4, DATE: 6, JSON: 12, BSON: 13, UUID: 14, FLOAT16: 15 };

export const PAGE_TYPE_DATA = 0;
export const ENCODING_PLAIN = 0;
export const ENCODING_RLE = 3;

export interface ChunkMeta {
  /** Physical type name (SchemaElement.type of the leaf). */
  type: string;
  encodings: number[];
  path: string[];
  codec: number;
  /** Level slots (values, nulls and empty lists included). */
  numValues: number;
  /** Page headers included, as the format counts them. */
  uncompressedBytes: number;
  compressedBytes: number;
  /** The first (data) page; the chunk starts there. */
  dataPageOffset: number;
  dataPages: number;
}

export interface RowGroupMeta {
  columns: ChunkMeta[];
  rows: number;
  offset: number;
  compressedBytes: number;
}

export interface FileMeta {
  schema: readonly SchemaElement[];
  rows: number;
  rowGroups: readonly RowGroupMeta[];
  keyValues: readonly { key: string; value: string }[];
  createdBy: string;
}

function enumOf(table: Record<string, number>, name: string, what: string): number {
  const v = table[name];
  if (v === undefined) throw new RangeError(`parquet writer: no ${what} ${name}`);
  return v;
}

/** The serialized FileMetaData (without the length and magic that follow it in the file). */
export function encodeFileMetaData(meta: FileMeta): Uint8Array {
  const w = new CompactWriter();
  w.i32(1, 2);
  w.listStruct(2, meta.schema, (s, el) => {
    if (el.type !== undefined) s.i32(1, enumOf(PHYSICAL_TYPE, el.type, 'physical type'));
    if (el.type_length !== undefined) s.i32(2, el.type_length);
    if (el.repetition_type !== undefined) s.i32(3, enumOf(REPETITION, el.repetition_type, 'repetition'));
    s.string(4, el.name);
    if (el.num_children !== undefined) s.i32(5, el.num_children);
    if (el.converted_type !== undefined) s.i32(6, enumOf(CONVERTED_TYPE, el.converted_type, 'converted type'));
    const logical = el.logical_type;
    // Only parameterless logical types (FLOAT16 is the one schema-map.ts writes).
    if (logical) s.struct(10, (l) => l.struct(enumOf(PLAIN_LOGICAL_TYPE, logical.type, 'logical type'), () => {}));
  });
  w.i64(3, meta.rows);
  w.listStruct(4, meta.rowGroups, (g, rg) => {
    g.listStruct(1, rg.columns, (c, ch) => {
      c.i64(2, ch.dataPageOffset);
      c.struct(3, (m) => {
        m.i32(1, enumOf(PHYSICAL_TYPE, ch.type, 'physical type'));
        m.listI32(2, ch.encodings);
        m.listString(3, ch.path);
        m.i32(4, ch.codec);
        m.i64(5, ch.numValues);
        m.i64(6, ch.uncompressedBytes);
        m.i64(7, ch.compressedBytes);
        m.i64(9, ch.dataPageOffset);
        m.listStruct(13, [ch.dataPages], (e, count) => e.i32(1, PAGE_TYPE_DATA).i32(2, ENCODING_PLAIN).i32(3, count));
      });
    });
    g.i64(2, rg.columns.reduce((a, c) => a + c.uncompressedBytes, 0));
    g.i64(3, rg.rows);
    g.i64(5, rg.offset);
    g.i64(6, rg.compressedBytes);
  });
  if (meta.keyValues.length > 0) w.listStruct(5, meta.keyValues, (k, kv) => k.string(1, kv.key).string(2, kv.value));
  w.string(6, meta.createdBy);
  // Every leaf sorts by its type's order (TypeDefinedOrder), as other writers declare.
  w.listStruct(7, meta.schema.filter((el) => el.type !== undefined), (o) => o.struct(1, () => {}));
  return w.end();
}

/** A data page v1 header: PLAIN values, RLE levels. */
export function encodeDataPageHeader(uncompressedBytes: number, compressedBytes: number, numValues: number): Uint8Array {
  const w = new CompactWriter();
  w.i32(1, PAGE_TYPE_DATA);
  w.i32(2, uncompressedBytes);
  w.i32(3, compressedBytes);
  w.struct(5, (d) => d.i32(1, numValues).i32(2, ENCODING_PLAIN).i32(3, ENCODING_RLE).i32(4, ENCODING_RLE));
  return w.end();
}
