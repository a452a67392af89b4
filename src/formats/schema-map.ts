// The type contract between shard files and the loader's decoder. Keep it exact:
// - scalar numeric -> Arrow Int8..Uint64 / Float16 / Float32 / Float64 (int64 as BigInt64); bool ->
//   Arrow Bool; Parquet: the matching physical type with INT_8/UINT_8/... converted types, float16 as
//   FIXED_LEN_BYTE_ARRAY(2) FLOAT16.
// - fixed [d0, d1, ...] -> Arrow FixedSizeList(product(shape)) with a non-nullable child (shape in
//   the manifest, also in schema metadata); Parquet: a standard 3-level LIST, product(shape) values a row
//   (read back also from pyarrow's nested LISTs of a multi-dim fixed_size_list, shape from ARROW:schema).
// - list -> Arrow List<element> (int32 offsets); Parquet LIST.
// - bytes/string -> Arrow Utf8; bytes/binary -> Arrow Binary (never dictionary-encoded);
//   Parquet BYTE_ARRAY (UTF8-annotated for strings).
// Foreign files map back through arrowLeaves / parquetLeaves: strictly for `gpufeed index` (what
// the decode workers read: adds large offsets, dates/times/timestamps/durations as their integers,
// float16, decimals as float64 (formats/decimal.ts), fixed-size binary / FIXED_LEN_BYTE_ARRAY as
// binary, Utf8View/BinaryView as string/binary, dictionaries of strings/binary/numbers decoded),
// loosely for prep inputs (also structs flattened to `parent.child`).
// Everything else is GPUFEED_UNSUPPORTED_TYPE naming the file, the column and the type.
import {
  Binary, Bool, DataType, Field, FixedSizeList, Float16, Float32, Float64, Int16, Int32, Int64, Int8, List, Schema,
  Type, Uint16, Uint32, Uint64, Uint8, Utf8,
} from 'apache-arrow';
import { Message } from 'apache-arrow/ipc/metadata/message';
import type { SchemaElement } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ColumnSpec, DType, NumericDType, TimeUnit } from '../dataset/types.js';
import { valuesPerRow } from '../dataset/columns.js';

/** Key of the schema metadata (Arrow) and key-value metadata (Parquet) holding ColumnSpec[] as JSON. */
export const SCHEMA_METADATA_KEY = 'gpufeed.schema';

export function arrowElementType(dtype: DType): DataType {
  switch (dtype) {
    case 'int8': return new Int8();
    case 'uint8': return new Uint8();
    case 'int16': return new Int16();
    case 'uint16': return new Uint16();
    case 'int32': return new Int32();
    case 'uint32': return new Uint32();
    case 'int64': return new Int64();
    case 'uint64': return new Uint64();
    case 'float16': return new Float16();
    case 'float32': return new Float32();
    case 'float64': return new Float64();
    case 'bool': return new Bool();
    case 'string': return new Utf8();
    case 'binary': return new Binary();
  }
}

export function arrowTypeFor(col: ColumnSpec): DataType {
  const element = arrowElementType(col.dtype);
  switch (col.kind) {
    case 'scalar':
    case 'bytes':
      return element;
    case 'fixed':
      return new FixedSizeList(valuesPerRow(col), new Field('item', element, false));
    case 'list':
      return new List(new Field('item', element, false));
  }
}

export function arrowSchemaFor(columns: readonly ColumnSpec[]): Schema {
  const fields = columns.map((c) => new Field(c.name, arrowTypeFor(c), c.nullable));
  return new Schema(fields, new Map([[SCHEMA_METADATA_KEY, JSON.stringify(columns)]]));
}

export interface ColumnMappingOptions {
  /**
   * Strict (the default; for `gpufeed index`): only types the decoder reads as they are on disk.
   * Loose (for prep inputs, whose values are re-encoded): also dictionary, large and temporal
   * types, mapped to their values' dtype.
   */
  strict?: boolean;
  /** Named in errors: the file the schema comes from. */
  where?: string;
}

/** Where a column's values come from: a top-level field, or a struct's child (flattened `a.b`). */
export interface ArrowLeaf {
  spec: ColumnSpec;
  /** Child indexes from the schema's fields down to the leaf: [field] or [field, child, ...]. */
  path: number[];
  type: DataType;
}

/** ColumnSpec[] for an Arrow schema; a gpufeed schema in its metadata restores multi-dim shapes. */
export function columnsFromArrowSchema(schema: Schema, opts: ColumnMappingOptions = {}): ColumnSpec[] {
  return arrowLeaves(schema, opts).map((l) => l.spec);
}

/** The columns of an Arrow schema with where each one's values sit (struct children flattened when loose). */
export function arrowLeaves(schema: Schema, opts: ColumnMappingOptions = {}): ArrowLeaf[] {
  const saved = savedSpecs(schema.metadata.get(SCHEMA_METADATA_KEY));
  const out: ArrowLeaf[] = [];
  const strict = opts.strict ?? true;
  const walk = (f: Field, name: string, path: number[], parentNullable: boolean): void => {
    const t = f.type as DataType;
    if (t.typeId === Type.Struct && !strict) {
      // A struct becomes one column per leaf, `parent.child`; a null parent makes its leaves null.
      (t.children ?? []).forEach((c, j) => walk(c, `${name}.${c.name}`, [...path, j], parentNullable || f.nullable));
      return;
    }
    const spec = columnFromArrowField(f, name, opts);
    if (parentNullable && spec.kind !== 'fixed') spec.nullable = true;
    out.push({ spec: restoreShape(spec, saved), path, type: t });
  };
  schema.fields.forEach((f, i) => walk(f, f.name, [i], false));
  return out;
}

const TIME_UNITS: readonly TimeUnit[] = ['s', 'ms', 'us', 'ns'];

/** The dtype and meaning of one Arrow scalar type; undefined when gpufeed cannot carry it. */
interface ScalarMapping {
  dtype: DType;
  logical?: Pick<ColumnSpec, 'logical' | 'unit' | 'timezone' | 'precision' | 'scale'>;
  /** Readable by the decode workers as it is on disk (`gpufeed index`). */
  inPlace: boolean;
}

function arrowScalar(t: DataType): ScalarMapping | undefined {
  const a = t as unknown as { bitWidth: number; isSigned: boolean; precision: number; unit: number; timezone?: string | null; scale: number };
  switch (t.typeId) {
    case Type.Int: return { dtype: `${a.isSigned ? 'int' : 'uint'}${a.bitWidth}` as NumericDType, inPlace: true };
    case Type.Float: return { dtype: a.precision === 0 ? 'float16' : a.precision === 1 ? 'float32' : 'float64', inPlace: true };
    case Type.Bool: return { dtype: 'bool', inPlace: true };
    case Type.Utf8: case Type.LargeUtf8: return { dtype: 'string', inPlace: true };
    case Type.Binary: case Type.LargeBinary: return { dtype: 'binary', inPlace: true };
    // Views read into offsets + values (arrow/view-columns.ts).
    case Type.Utf8View: return { dtype: 'string', inPlace: true };
    case Type.BinaryView: return { dtype: 'binary', inPlace: true };
    // Converted on the way into the slot (arrow/converted-columns.ts): offsets every n bytes.
    case Type.FixedSizeBinary: return { dtype: 'binary', inPlace: true };
    case Type.Date: return a.unit === 0
      ? { dtype: 'int32', logical: { logical: 'date', unit: 'day' }, inPlace: true }
      : { dtype: 'int64', logical: { logical: 'date', unit: 'ms' }, inPlace: true };
    case Type.Time: return { dtype: a.bitWidth === 32 ? 'int32' : 'int64', logical: { logical: 'time', unit: TIME_UNITS[a.unit]! }, inPlace: true };
    case Type.Timestamp: {
      const logical: ScalarMapping['logical'] = { logical: 'timestamp', unit: TIME_UNITS[a.unit]! };
      if (a.timezone) logical.timezone = a.timezone;
      return { dtype: 'int64', logical, inPlace: true };
    }
    case Type.Duration: return { dtype: 'int64', logical: { logical: 'duration', unit: TIME_UNITS[a.unit]! }, inPlace: true };
    // unscaled / 10^scale as the nearest double, on both routes (formats/decimal.ts).
    case Type.Decimal: return { dtype: 'float64', logical: { logical: 'decimal', precision: a.precision, scale: a.scale }, inPlace: true };
    case Type.Dictionary: {
      // Decoded on the way into the slot (arrow/dictionary-columns.ts) for plain value types.
      const valueType = (t as unknown as { dictionary: DataType }).dictionary;
      const values = arrowScalar(valueType);
      return values && { ...values, inPlace: values.inPlace && !values.logical && dictionaryValuesInPlace(valueType) };
    }
  }
  return undefined;
}

/** Dictionary value types the decoder copies as stored (arrow/dictionary-columns.ts). */
function dictionaryValuesInPlace(valueType: DataType): boolean {
  switch (valueType.typeId) {
    case Type.Utf8: case Type.Binary: case Type.LargeUtf8: case Type.LargeBinary: case Type.Int: case Type.Float: return true;
  }
  return false;
}

/** The way out that keeps every other column: a user rarely needs the one column gpufeed cannot carry. */
function dropHint(name: string): string {
  return `; or leave the column out with --drop ${name.split('.')[0]}`;
}

function columnFromArrowField(f: Field, name: string, opts: ColumnMappingOptions): ColumnSpec {
  const strict = opts.strict ?? true;
  const t = f.type as DataType;
  const unsupported = (why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ? `${opts.where}: ` : ''}column ${JSON.stringify(name)}: Arrow type ${String(t)} ${why}${dropHint(name)}`, { column: name, path: opts.where });
  const usePrep = 'is not read in place by the decoder; convert the files with `gpufeed prep` (which reads it)';
  const scalar = arrowScalar(t);
  if (scalar) {
    if (strict && !scalar.inPlace) throw unsupported(usePrep);
    const bytes = scalar.dtype === 'string' || scalar.dtype === 'binary';
    return { name, dtype: scalar.dtype, kind: bytes ? 'bytes' : 'scalar', nullable: f.nullable, ...scalar.logical };
  }
  const numericElement = (child: DataType, what: string): DType => {
    const el = arrowScalar(child);
    if (!el || el.dtype === 'string' || el.dtype === 'binary' || el.logical) throw unsupported(`is a ${what} of ${String(child)}; gpufeed carries ${what}s of numbers or bools`);
    if (strict && !el.inPlace) throw unsupported(usePrep);
    return el.dtype;
  };
  if (t.typeId === Type.FixedSizeList) {
    // Nested fixed-size lists are a multi-dim tensor; strict mode keeps to one level (the decoder's layout).
    const dims = [(t as FixedSizeList).listSize];
    let child = t.children[0]!.type as DataType;
    if (strict && child.typeId === Type.FixedSizeList) {
      throw unsupported('is a nested fixed-size list (multi-dim), which the decoder does not read in place from Arrow files (it does from Parquet); convert the files with `gpufeed prep`, which keeps the shape');
    }
    while (!strict && child.typeId === Type.FixedSizeList) {
      dims.push((child as FixedSizeList).listSize);
      child = (child as FixedSizeList).children[0]!.type as DataType;
    }
    const el = numericElement(child, 'fixed-size list');
    // Recorded non-nullable whatever the field says: the decoder treats a null there as bad input.
    return { name, dtype: el, kind: 'fixed', shape: dims, nullable: false };
  }
  if (t.typeId === Type.List || t.typeId === Type.LargeList) {
    const el = numericElement(t.children[0]!.type as DataType, 'list');
    return { name, dtype: el, kind: 'list', nullable: f.nullable };
  }
  if (t.typeId === Type.Struct) throw unsupported(`is a struct; ${strict ? 'convert the files with `gpufeed prep`, which flattens it into `parent.child` columns' : 'gpufeed flattens structs'}`);
  throw unsupported('is not supported: gpufeed carries numbers, bool, dates and times, decimals (as float64), strings, binary, lists and fixed-size lists of numbers, and structs of those (flattened by prep)');
}

// ---- Parquet ----

export function parquetSchemaFor(columns: readonly ColumnSpec[]): SchemaElement[] {
  const out: SchemaElement[] = [{ name: 'root', num_children: columns.length }];
  for (const c of columns) {
    const repetition_type = c.nullable ? 'OPTIONAL' : 'REQUIRED';
    if (c.kind === 'scalar' || c.kind === 'bytes') {
      out.push({ name: c.name, repetition_type, ...parquetLeafType(c.dtype) });
    } else {
      // Standard 3-level LIST: <name> (LIST) -> repeated group list -> required element.
      out.push(
        { name: c.name, repetition_type, converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', repetition_type: 'REQUIRED', ...parquetLeafType(c.dtype) },
      );
    }
  }
  return out;
}

function parquetLeafType(dtype: DType): Pick<SchemaElement, 'type' | 'converted_type' | 'type_length' | 'logical_type'> {
  switch (dtype) {
    case 'int8': return { type: 'INT32', converted_type: 'INT_8' };
    case 'int16': return { type: 'INT32', converted_type: 'INT_16' };
    case 'int32': return { type: 'INT32' };
    case 'uint8': return { type: 'INT32', converted_type: 'UINT_8' };
    case 'uint16': return { type: 'INT32', converted_type: 'UINT_16' };
    case 'uint32': return { type: 'INT32', converted_type: 'UINT_32' };
    case 'int64': return { type: 'INT64' };
    case 'uint64': return { type: 'INT64', converted_type: 'UINT_64' };
    case 'float16': return { type: 'FIXED_LEN_BYTE_ARRAY', type_length: 2, logical_type: { type: 'FLOAT16' } };
    case 'float32': return { type: 'FLOAT' };
    case 'float64': return { type: 'DOUBLE' };
    case 'bool': return { type: 'BOOLEAN' };
    case 'string': return { type: 'BYTE_ARRAY', converted_type: 'UTF8' };
    case 'binary': return { type: 'BYTE_ARRAY' };
  }
}

/** A Parquet column as gpufeed sees it: its spec and the group path down to it (struct parents). */
export interface ParquetLeaf {
  spec: ColumnSpec;
  /** Field names from the root's child to the column: [name] or [struct, ..., name]. */
  path: string[];
  /** The leaf element (for LIST columns, the list's element). */
  element: SchemaElement;
  /**
   * Set for pyarrow's multi-dim fixed_size_list: the LISTs nested on the way to the leaf (the
   * shape's length); readers get lists of lists per row and check every level (nested-fixed.ts).
   */
  nestedLists?: number;
}

/**
 * ColumnSpec[] for a Parquet schema (flat list of SchemaElement, root first). LIST columns become
 * `list`, or `fixed` when gpufeed's schema, or the Arrow schema pyarrow stores, says so.
 */
export function columnsFromParquetSchema(
  elements: readonly SchemaElement[],
  kvMetadata: readonly { key: string; value?: string }[] = [],
  opts: ColumnMappingOptions = {},
): ColumnSpec[] {
  return parquetLeaves(elements, kvMetadata, opts).map((l) => l.spec);
}

export function parquetLeaves(
  elements: readonly SchemaElement[],
  kvMetadata: readonly { key: string; value?: string }[] = [],
  opts: ColumnMappingOptions = {},
): ParquetLeaf[] {
  const strict = opts.strict ?? true;
  const saved = savedSpecs(kvMetadata.find((kv) => kv.key === SCHEMA_METADATA_KEY)?.value);
  const fixedSizes = arrowFixedSizeLists(kvMetadata.find((kv) => kv.key === 'ARROW:schema')?.value);
  const root = elements[0];
  if (!root) throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ?? 'parquet file'}: empty schema`, { path: opts.where });
  const out: ParquetLeaf[] = [];
  const unsupported = (name: string, why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ? `${opts.where}: ` : ''}column ${JSON.stringify(name)}: ${why}${dropHint(name)}`, { column: name, path: opts.where });
  const usePrep = 'is not read in place by the decoder; convert the files with `gpufeed prep` (which reads it)';
  const typeName = (el: SchemaElement): string => {
    const lt = el.logical_type as { type?: string; unit?: string; precision?: number; scale?: number } | undefined;
    const parts = [el.type ?? 'group'];
    if (el.type === 'FIXED_LEN_BYTE_ARRAY') parts[0] = `FIXED_LEN_BYTE_ARRAY(${el.type_length})`;
    if (lt?.type) parts.push(`${lt.type}${lt.unit ? `(${lt.unit})` : ''}${lt.type === 'DECIMAL' ? `(${lt.precision},${lt.scale})` : ''}`);
    else if (el.converted_type) parts.push(el.converted_type);
    return `Parquet type ${parts.join(' ')}`;
  };
  // Walks the subtree at elements[at]; returns the index after it.
  const walk = (at: number, path: string[], parentNullable: boolean): number => {
    const el = elements[at];
    if (!el) return at + 1;
    const name = [...path, el.name].join('.');
    const nullable = parentNullable || el.repetition_type !== 'REQUIRED';
    if (!el.num_children) {
      if (el.repetition_type === 'REPEATED') throw unsupported(name, 'is a legacy repeated primitive; gpufeed reads standard LIST columns');
      const m = parquetScalar(el);
      if (!m) throw unsupported(name, `${typeName(el)} is not supported`);
      if (strict && !m.inPlace) throw unsupported(name, `${typeName(el)} ${usePrep}`);
      out.push({ spec: { name, dtype: m.dtype, kind: m.dtype === 'string' || m.dtype === 'binary' ? 'bytes' : 'scalar', nullable, ...m.logical }, path: [...path, el.name], element: el });
      return at + 1;
    }
    let next = at + 1;
    const skip = (i: number): number => {
      const n = elements[i]?.num_children ?? 0;
      let j = i + 1;
      for (let k = 0; k < n; k++) j = skip(j);
      return j;
    };
    const isList = el.converted_type === 'LIST' || el.logical_type?.type === 'LIST';
    const isMap = el.converted_type === 'MAP' || el.converted_type === 'MAP_KEY_VALUE' || el.logical_type?.type === 'MAP';
    if (!isList && !isMap && el.repetition_type !== 'REPEATED') {
      // A struct: one column per leaf, `parent.child`.
      if (strict) throw unsupported(name, 'is a struct; convert the files with `gpufeed prep`, which flattens it into `parent.child` columns');
      for (let k = 0; k < el.num_children; k++) next = walk(next, [...path, el.name], nullable);
      return next;
    }
    // A LIST: group (LIST) -> repeated group (1 child) -> leaf; or the 2-level legacy form.
    const rep = elements[at + 1];
    let leaf: SchemaElement | undefined;
    if (isList && el.num_children === 1 && rep?.repetition_type === 'REPEATED') {
      if (rep.num_children === 1) leaf = elements[at + 2];
      else if (!rep.num_children) leaf = rep;
    }
    // Lists of lists where the Arrow schema says nested fixed-size lists (pyarrow's multi-dim
    // tensors): one `fixed` column of the full shape; the readers check every row has it.
    const dims = path.length === 0 ? fixedSizes.get(el.name) : undefined;
    let nestedLists: number | undefined;
    if (leaf?.num_children && dims && dims.length > 1) {
      const inner = nestedListLeaf(elements, at, dims.length);
      if (inner) {
        leaf = inner;
        nestedLists = dims.length;
      }
    }
    if (!leaf || leaf.num_children) {
      throw unsupported(name, `is a ${isMap ? 'map' : 'nested group (list of structs or lists)'}; gpufeed carries flat columns, structs of them, and lists of numbers`);
    }
    const m = parquetScalar(leaf);
    if (!m || m.dtype === 'string' || m.dtype === 'binary' || m.logical) throw unsupported(name, `is a list of ${typeName(leaf)}; gpufeed carries lists of numbers or bools`);
    if (strict && !m.inPlace) throw unsupported(name, `is a list of ${typeName(leaf)}, which ${usePrep.slice(3)}`);
    const spec: ColumnSpec = dims !== undefined
      ? { name, dtype: m.dtype, kind: 'fixed', shape: dims.slice(), nullable: false }
      : { name, dtype: m.dtype, kind: 'list', nullable };
    out.push({ spec, path: [...path, el.name], element: leaf, ...(nestedLists ? { nestedLists } : {}) });
    return skip(at);
  };
  let i = 1;
  for (let k = 0; k < (root.num_children ?? 0); k++) i = walk(i, [], false);
  for (const leaf of out) leaf.spec = restoreShape(leaf.spec, saved);
  return out;
}

/**
 * The leaf under `depth` nested standard 3-level LISTs starting at elements[at] (each: group LIST ->
 * repeated group of one child -> element), or undefined when the groups are laid out otherwise.
 */
function nestedListLeaf(elements: readonly SchemaElement[], at: number, depth: number): SchemaElement | undefined {
  let i = at;
  for (let d = 0; d < depth; d++) {
    const list = elements[i];
    const rep = elements[i + 1];
    const isList = list?.converted_type === 'LIST' || list?.logical_type?.type === 'LIST';
    if (!isList || list.num_children !== 1 || rep?.repetition_type !== 'REPEATED' || rep.num_children !== 1) return undefined;
    i += 2;
  }
  const leaf = elements[i];
  return leaf && !leaf.num_children ? leaf : undefined;
}

/**
 * Top-level fixed-size list columns (name -> sizes, outermost first: [3, 4] for nested lists of 3
 * lists of 4) of the Arrow schema pyarrow stores in Parquet metadata.
 */
function arrowFixedSizeLists(b64: string | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  if (!b64) return out;
  try {
    const bytes = Buffer.from(b64, 'base64');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = 0;
    if (view.getInt32(0, true) === -1) at = 4;
    const len = view.getInt32(at, true);
    const message = Message.decode(new Uint8Array(bytes.buffer, bytes.byteOffset + at + 4, len));
    if (!message.isSchema()) return out;
    for (const f of message.header().fields) {
      if (f.type.typeId !== Type.FixedSizeList) continue;
      const dims: number[] = [];
      let t = f.type as DataType;
      for (let d = 0; t.typeId === Type.FixedSizeList && d < 32; d++) {
        dims.push((t as FixedSizeList).listSize);
        t = (t as FixedSizeList).children[0]!.type as DataType;
      }
      out.set(f.name, dims);
    }
  } catch {
    // Unreadable Arrow schema: the Parquet types stand (lists stay variable-length).
  }
  return out;
}

function parquetScalar(el: SchemaElement): ScalarMapping | undefined {
  const ct = el.converted_type;
  const lt = el.logical_type as { type?: string; bitWidth?: number; isSigned?: boolean; unit?: string; isAdjustedToUTC?: boolean; precision?: number; scale?: number } | undefined;
  const unitOf = (u: string | undefined): TimeUnit => (u === 'NANOS' ? 'ns' : u === 'MICROS' ? 'us' : 'ms');
  if (ct === 'DECIMAL' || lt?.type === 'DECIMAL') {
    // Read in place unannotated and divided once (parquet/decimal-columns.ts), as prep does.
    return { dtype: 'float64', logical: { logical: 'decimal', precision: lt?.precision ?? el.precision ?? 0, scale: lt?.scale ?? el.scale ?? 0 }, inPlace: true };
  }
  if (lt?.type === 'TIMESTAMP' || ct === 'TIMESTAMP_MILLIS' || ct === 'TIMESTAMP_MICROS') {
    const unit = lt?.type === 'TIMESTAMP' ? unitOf(lt.unit) : ct === 'TIMESTAMP_MICROS' ? 'us' : 'ms';
    const utc = lt?.type === 'TIMESTAMP' ? lt.isAdjustedToUTC !== false : true;
    // Read as the stored integers (parquet/parsers.ts), in place too.
    return { dtype: 'int64', logical: { logical: 'timestamp', unit, ...(utc ? { timezone: 'UTC' } : {}) }, inPlace: true };
  }
  if (el.type === 'INT96') return { dtype: 'int64', logical: { logical: 'timestamp', unit: 'ns' }, inPlace: true };
  if (lt?.type === 'DATE' || ct === 'DATE') return { dtype: 'int32', logical: { logical: 'date', unit: 'day' }, inPlace: true };
  if (lt?.type === 'TIME' || ct === 'TIME_MILLIS' || ct === 'TIME_MICROS') {
    const unit = lt?.type === 'TIME' ? unitOf(lt.unit) : ct === 'TIME_MICROS' ? 'us' : 'ms';
    return { dtype: el.type === 'INT32' ? 'int32' : 'int64', logical: { logical: 'time', unit }, inPlace: true };
  }
  switch (el.type) {
    case 'BOOLEAN': return { dtype: 'bool', inPlace: true };
    case 'INT32':
      if (lt?.type === 'INTEGER' && lt.bitWidth) return { dtype: `${lt.isSigned === false ? 'uint' : 'int'}${lt.bitWidth}` as DType, inPlace: true };
      if (ct === 'INT_8') return { dtype: 'int8', inPlace: true };
      if (ct === 'INT_16') return { dtype: 'int16', inPlace: true };
      if (ct === 'UINT_8') return { dtype: 'uint8', inPlace: true };
      if (ct === 'UINT_16') return { dtype: 'uint16', inPlace: true };
      if (ct === 'UINT_32') return { dtype: 'uint32', inPlace: true };
      if ((ct === undefined || ct === 'INT_32') && !lt?.type) return { dtype: 'int32', inPlace: true };
      return undefined;
    case 'INT64':
      if (lt?.type === 'INTEGER' && lt.bitWidth === 64) return { dtype: lt.isSigned === false ? 'uint64' : 'int64', inPlace: true };
      if (ct === 'UINT_64') return { dtype: 'uint64', inPlace: true };
      if ((ct === undefined || ct === 'INT_64') && !lt?.type) return { dtype: 'int64', inPlace: true };
      return undefined;
    case 'FLOAT': return { dtype: 'float32', inPlace: true };
    case 'DOUBLE': return { dtype: 'float64', inPlace: true };
    case 'BYTE_ARRAY':
      if (ct === 'UTF8' || ct === 'ENUM' || lt?.type === 'STRING' || lt?.type === 'ENUM') return { dtype: 'string', inPlace: true };
      // JSON stays its text (parquet/parsers.ts).
      if (ct === 'JSON' || lt?.type === 'JSON') return { dtype: 'string', inPlace: true };
      if (ct === 'BSON' || lt?.type === 'BSON' || lt?.type === 'VARIANT' || lt?.type === 'GEOMETRY' || lt?.type === 'GEOGRAPHY') return undefined;
      return { dtype: 'binary', inPlace: true };
    case 'FIXED_LEN_BYTE_ARRAY':
      // hyparquet widens halves to numbers exactly; the decoder narrows them back to the same bits.
      if (lt?.type === 'FLOAT16') return { dtype: 'float16', inPlace: true };
      if (ct === 'INTERVAL') return undefined;
      // Read in place as binary, n bytes a value (parquet/var-column.ts).
      return { dtype: 'binary', inPlace: true };
  }
  return undefined;
}

function savedSpecs(json: string | undefined): Map<string, ColumnSpec> {
  const out = new Map<string, ColumnSpec>();
  if (!json) return out;
  try {
    const arr = JSON.parse(json) as unknown;
    if (Array.isArray(arr)) {
      for (const c of arr as ColumnSpec[]) if (c && typeof c.name === 'string') out.set(c.name, c);
    }
  } catch {
    // Foreign or damaged metadata: the file's own types still stand.
  }
  return out;
}

/** Applies a saved gpufeed shape when it agrees with the file (same dtype, same values per row). */
function restoreShape(col: ColumnSpec, saved: Map<string, ColumnSpec>): ColumnSpec {
  const s = saved.get(col.name);
  if (!s || s.kind !== 'fixed' || !Array.isArray(s.shape) || s.dtype !== col.dtype) return col;
  const n = s.shape.reduce((a, b) => a * b, 1);
  if (col.kind === 'fixed' && valuesPerRow(col) === n) return { ...col, shape: s.shape.slice() };
  if (col.kind === 'list') return { name: col.name, dtype: col.dtype, kind: 'fixed', shape: s.shape.slice(), nullable: false };
  return col;
}
