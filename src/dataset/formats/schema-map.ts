// The type contract between shard files and the loader's decoder. Keep it exact:
// - scalar numeric -> Arrow Int8..Uint64 / Float32 / Float64 (int64 as BigInt64); bool -> Arrow Bool;
//   Parquet: the matching physical type with INT_8/UINT_8/... converted types.
// - fixed [d0, d1, ...] -> Arrow FixedSizeList(product(shape)) with a non-nullable child (shape in
//   the manifest, also in schema metadata); Parquet: a standard 3-level LIST, product(shape) values a row.
// - list -> Arrow List<element> (int32 offsets); Parquet LIST.
// - bytes/string -> Arrow Utf8; bytes/binary -> Arrow Binary (never dictionary-encoded);
//   Parquet BYTE_ARRAY (UTF8-annotated for strings).
// Foreign files (gpufeed index, prep inputs) map back through columnsFromArrowSchema /
// columnsFromParquetSchema.
import {
  Binary, Bool, DataType, Field, FixedSizeList, Float32, Float64, Int16, Int32, Int64, Int8, List, Schema,
  Type, Uint16, Uint32, Uint64, Uint8, Utf8,
} from 'apache-arrow';
import type { SchemaElement } from 'hyparquet';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import type { ColumnSpec, DType, NumericDType } from '../types.js';
import { valuesPerRow } from '../columns.js';

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

/** ColumnSpec[] for an Arrow schema; a gpufeed schema in its metadata restores multi-dim shapes. */
export function columnsFromArrowSchema(schema: Schema, opts: ColumnMappingOptions = {}): ColumnSpec[] {
  const saved = savedSpecs(schema.metadata.get(SCHEMA_METADATA_KEY));
  return schema.fields.map((f) => {
    const col = columnFromArrowField(f, opts);
    return restoreShape(col, saved);
  });
}

function columnFromArrowField(f: Field, opts: ColumnMappingOptions): ColumnSpec {
  const strict = opts.strict ?? true;
  const unsupported = (why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ? `${opts.where}: ` : ''}column ${JSON.stringify(f.name)}: Arrow type ${String(f.type)} ${why}`, { column: f.name, path: opts.where });
  const t = f.type as DataType;
  const scalar = arrowScalarDType(t, strict);
  if (scalar) return { name: f.name, dtype: scalar, kind: scalar === 'string' || scalar === 'binary' ? 'bytes' : 'scalar', nullable: f.nullable };
  if (t.typeId === Type.FixedSizeList) {
    const fsl = t as FixedSizeList;
    // Nested fixed-size lists are a multi-dim tensor; strict mode keeps to one level (the decoder's layout).
    const dims = [fsl.listSize];
    let child = fsl.children[0]!.type as DataType;
    while (!strict && child.typeId === Type.FixedSizeList) {
      dims.push((child as FixedSizeList).listSize);
      child = (child as FixedSizeList).children[0]!.type as DataType;
    }
    const el = arrowScalarDType(child, strict);
    if (!el || el === 'string' || el === 'binary') throw unsupported('is a fixed-size list of a non-numeric type; gpufeed carries fixed-shape numeric or bool tensors');
    // Recorded non-nullable whatever the field says: the decoder treats a null there as bad input.
    return { name: f.name, dtype: el, kind: 'fixed', shape: dims, nullable: false };
  }
  if (t.typeId === Type.List || (!strict && t.typeId === Type.LargeList)) {
    const child = (t as List).children[0]!.type as DataType;
    const el = arrowScalarDType(child, strict);
    if (!el || el === 'string' || el === 'binary') throw unsupported('is a list of a non-numeric type; gpufeed carries lists of numbers or bools');
    return { name: f.name, dtype: el, kind: 'list', nullable: f.nullable };
  }
  throw unsupported(strict ? 'is not one gpufeed reads in place (numbers, bool, utf8, binary, list, fixed-size list)' : 'cannot be converted');
}

function arrowScalarDType(t: DataType, strict: boolean): DType | undefined {
  switch (t.typeId) {
    case Type.Int: {
      const { bitWidth, isSigned } = t as unknown as { bitWidth: number; isSigned: boolean };
      return `${isSigned ? 'int' : 'uint'}${bitWidth}` as NumericDType;
    }
    case Type.Float: {
      const p = (t as unknown as { precision: number }).precision;
      if (p === 1) return 'float32';
      if (p === 2) return 'float64';
      return strict ? undefined : 'float32'; // half floats widen to float32 when re-encoded
    }
    case Type.Bool: return 'bool';
    case Type.Utf8: return 'string';
    case Type.Binary: return 'binary';
  }
  if (strict) return undefined;
  switch (t.typeId) {
    case Type.LargeUtf8: return 'string';
    case Type.LargeBinary:
    case Type.FixedSizeBinary: return 'binary';
    case Type.Dictionary: return arrowScalarDType((t as unknown as { dictionary: DataType }).dictionary, strict);
    case Type.Date: return 'int64';
    case Type.Timestamp: return 'int64';
    case Type.Time: return 'int64';
  }
  return undefined;
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

function parquetLeafType(dtype: DType): Pick<SchemaElement, 'type' | 'converted_type'> {
  switch (dtype) {
    case 'int8': return { type: 'INT32', converted_type: 'INT_8' };
    case 'int16': return { type: 'INT32', converted_type: 'INT_16' };
    case 'int32': return { type: 'INT32' };
    case 'uint8': return { type: 'INT32', converted_type: 'UINT_8' };
    case 'uint16': return { type: 'INT32', converted_type: 'UINT_16' };
    case 'uint32': return { type: 'INT32', converted_type: 'UINT_32' };
    case 'int64': return { type: 'INT64' };
    case 'uint64': return { type: 'INT64', converted_type: 'UINT_64' };
    case 'float32': return { type: 'FLOAT' };
    case 'float64': return { type: 'DOUBLE' };
    case 'bool': return { type: 'BOOLEAN' };
    case 'string': return { type: 'BYTE_ARRAY', converted_type: 'UTF8' };
    case 'binary': return { type: 'BYTE_ARRAY' };
  }
}

/**
 * ColumnSpec[] for a Parquet schema (flat list of SchemaElement, root first). LIST columns become
 * `list`, or `fixed` when gpufeed's schema in the key-value metadata says so.
 */
export function columnsFromParquetSchema(
  elements: readonly SchemaElement[],
  kvMetadata: readonly { key: string; value?: string }[] = [],
  opts: ColumnMappingOptions = {},
): ColumnSpec[] {
  const strict = opts.strict ?? true;
  const saved = savedSpecs(kvMetadata.find((kv) => kv.key === SCHEMA_METADATA_KEY)?.value);
  const root = elements[0];
  if (!root) throw new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ?? 'parquet file'}: empty schema`, { path: opts.where });
  const cols: ColumnSpec[] = [];
  let i = 1;
  const unsupported = (name: string, why: string): GpufeedError =>
    new GpufeedError(ErrorCodes.UNSUPPORTED_TYPE, `${opts.where ? `${opts.where}: ` : ''}column ${JSON.stringify(name)}: ${why}`, { column: name, path: opts.where });
  // Skips the subtree rooted at elements[i], returning the index after it.
  const skip = (at: number): number => {
    const n = elements[at]?.num_children ?? 0;
    let next = at + 1;
    for (let k = 0; k < n; k++) next = skip(next);
    return next;
  };
  for (let k = 0; k < (root.num_children ?? 0); k++) {
    const el = elements[i];
    if (!el) break;
    const nullable = el.repetition_type !== 'REQUIRED';
    if (!el.num_children) {
      if (el.repetition_type === 'REPEATED') throw unsupported(el.name, 'is a legacy repeated primitive; gpufeed reads standard LIST columns');
      const dtype = parquetLeafDType(el, strict);
      if (!dtype) throw unsupported(el.name, `Parquet type ${el.type}${el.converted_type ? ` (${el.converted_type})` : ''} is not supported`);
      cols.push({ name: el.name, dtype, kind: dtype === 'string' || dtype === 'binary' ? 'bytes' : 'scalar', nullable });
      i++;
      continue;
    }
    // A LIST: group (LIST) -> repeated group (1 child) -> leaf; or the 2-level legacy form.
    const isList = el.converted_type === 'LIST' || el.logical_type?.type === 'LIST';
    const rep = elements[i + 1];
    let leaf: SchemaElement | undefined;
    if (isList && el.num_children === 1 && rep?.repetition_type === 'REPEATED') {
      if (rep.num_children === 1) leaf = elements[i + 2];
      else if (!rep.num_children) leaf = rep;
    }
    if (!leaf || leaf.num_children) {
      throw unsupported(el.name, 'is a nested group (struct, map or list of lists); gpufeed carries flat columns and lists of numbers');
    }
    const dtype = parquetLeafDType(leaf, strict);
    if (!dtype || dtype === 'string' || dtype === 'binary') throw unsupported(el.name, 'is a list of a non-numeric type; gpufeed carries lists of numbers or bools');
    cols.push({ name: el.name, dtype, kind: 'list', nullable });
    i = skip(i);
  }
  return cols.map((c) => restoreShape(c, saved));
}

function parquetLeafDType(el: SchemaElement, strict: boolean): DType | undefined {
  const ct = el.converted_type;
  const lt = el.logical_type as { type?: string; bitWidth?: number; isSigned?: boolean } | undefined;
  switch (el.type) {
    case 'BOOLEAN': return 'bool';
    case 'INT32':
      if (lt?.type === 'INTEGER' && lt.bitWidth) return `${lt.isSigned === false ? 'uint' : 'int'}${lt.bitWidth}` as DType;
      if (ct === 'INT_8') return 'int8';
      if (ct === 'INT_16') return 'int16';
      if (ct === 'UINT_8') return 'uint8';
      if (ct === 'UINT_16') return 'uint16';
      if (ct === 'UINT_32') return 'uint32';
      if (ct === undefined || ct === 'INT_32') return 'int32';
      return strict ? undefined : 'int32'; // DATE, TIME_MILLIS, DECIMAL: raw integers when re-encoding
    case 'INT64':
      if (lt?.type === 'INTEGER' && lt.bitWidth === 64) return lt.isSigned === false ? 'uint64' : 'int64';
      if (ct === 'UINT_64') return 'uint64';
      if (ct === undefined || ct === 'INT_64') return 'int64';
      return strict ? undefined : 'int64';
    case 'FLOAT': return 'float32';
    case 'DOUBLE': return 'float64';
    case 'BYTE_ARRAY':
      if (ct === 'UTF8' || ct === 'JSON' || ct === 'ENUM' || lt?.type === 'STRING' || lt?.type === 'JSON' || lt?.type === 'ENUM') return 'string';
      if (ct === 'DECIMAL' && strict) return undefined;
      return 'binary';
    case 'FIXED_LEN_BYTE_ARRAY':
      return strict ? undefined : 'binary';
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
