// index.json: parse and validate (every field, errors naming the field and the file), load from a
// Store, and write it last and atomically.
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { Store } from '../storage/store.js';
import { isIntegerDType } from './dtypes.js';
import { checkRelativeKey } from './paths.js';
import {
  MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION,
  type ArrowLayout, type ColumnKind, type ColumnSpec, type DType, type LogicalType, type ManifestV1, type TimeUnit, type ParquetLayout, type ShardEntry,
  type ArrowBatchLayout, type ParquetChunkLayout, type ParquetRowGroupLayout,
} from './types.js';
import { PIECE_HASH } from './piece-checksum.js';

export { columnByName, selectColumns } from './columns.js';

const NUMERIC_DTYPES = new Set<DType>(['int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float16', 'float32', 'float64']);
const KINDS = new Set<ColumnKind>(['scalar', 'fixed', 'list', 'bytes']);
const HASH_RE = /^sha256:[0-9a-f]{64}$/;

export function isNumericDType(d: DType): boolean {
  return NUMERIC_DTYPES.has(d);
}

/** Parses and validates index.json text; `where` (path or URI) is named in every error. */
export function parseManifest(text: string, where: string): ManifestV1 {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const truncated = text.trim().length === 0 ? ' (file is empty)' : '';
    throw new GpufeedError(ErrorCodes.MANIFEST_INVALID, `${where}: not valid JSON${truncated}, the manifest may be truncated: ${(err as Error).message}`, { path: where }, { cause: err });
  }
  return validateManifest(raw, where);
}

/** Validates an already-parsed manifest object. */
export function validateManifest(raw: unknown, where: string): ManifestV1 {
  const v = new Validator(where);
  const obj = v.object(raw, '(root)');
  if (obj.format !== MANIFEST_FORMAT) v.fail('format', `must be ${JSON.stringify(MANIFEST_FORMAT)}, got ${JSON.stringify(obj.format)}`);
  if (obj.version !== MANIFEST_VERSION) v.fail('version', `must be ${MANIFEST_VERSION}, got ${JSON.stringify(obj.version)} (this gpufeed reads manifest v1)`);

  const schemaRaw = v.array(obj.schema, 'schema');
  if (schemaRaw.length === 0) v.fail('schema', 'has no columns');
  const schema = schemaRaw.map((c, i) => validateColumn(v, c, `schema[${i}]`));
  const seen = new Set<string>();
  schema.forEach((c, i) => {
    if (seen.has(c.name)) v.fail(`schema[${i}].name`, `duplicate column name ${JSON.stringify(c.name)}`);
    seen.add(c.name);
  });
  const varCols = new Set(schema.filter((c) => c.kind === 'list' || c.kind === 'bytes').map((c) => c.name));

  const shards = v.array(obj.shards, 'shards').map((s, i) => validateShard(v, s, `shards[${i}]`, varCols));
  const paths = new Set<string>();
  shards.forEach((s, i) => {
    if (paths.has(s.path)) v.fail(`shards[${i}].path`, `duplicate shard path ${JSON.stringify(s.path)}`);
    paths.add(s.path);
  });
  const rows = v.count(obj.rows, 'rows');
  const bytes = v.count(obj.bytes, 'bytes');
  const sumRows = shards.reduce((a, s) => a + s.rows, 0);
  const sumBytes = shards.reduce((a, s) => a + s.bytes, 0);
  if (rows !== sumRows) v.fail('rows', `is ${rows} but the shards hold ${sumRows} rows`);
  if (bytes !== sumBytes) v.fail('bytes', `is ${bytes} but the shards hold ${sumBytes} bytes`);

  const manifest: ManifestV1 = { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, schema, shards, rows, bytes };
  if (obj.base !== undefined) {
    const base = v.string(obj.base, 'base');
    if (base.length === 0 || base.includes('\0')) v.fail('base', `must be a folder path or URI, got ${JSON.stringify(base)}`);
    manifest.base = base;
  }
  if (obj.createdBy !== undefined) manifest.createdBy = v.string(obj.createdBy, 'createdBy');
  if (obj.createdAt !== undefined) manifest.createdAt = v.string(obj.createdAt, 'createdAt');
  if (obj.classes !== undefined) manifest.classes = v.array(obj.classes, 'classes').map((c, i) => v.string(c, `classes[${i}]`));
  return manifest;
}

function validateColumn(v: Validator, raw: unknown, at: string): ColumnSpec {
  const c = v.object(raw, at);
  const name = v.string(c.name, `${at}.name`);
  if (name.length === 0) v.fail(`${at}.name`, 'is empty');
  const colAt = `${at} (column ${JSON.stringify(name)})`;
  const dtype = v.string(c.dtype, `${colAt}.dtype`) as DType;
  if (!(dtype in DTYPE_SET)) v.fail(`${colAt}.dtype`, `unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPE_SET).join(', ')}`);
  const kind = v.string(c.kind, `${colAt}.kind`) as ColumnKind;
  if (!KINDS.has(kind)) v.fail(`${colAt}.kind`, `unknown kind ${JSON.stringify(kind)}; expected scalar, fixed, list or bytes`);
  if (typeof c.nullable !== 'boolean') v.fail(`${colAt}.nullable`, c.nullable === undefined ? 'is missing' : 'must be true or false');
  const nullable = c.nullable as boolean;
  const spec: ColumnSpec = { name, dtype, kind, nullable };

  const numericOrBool = NUMERIC_DTYPES.has(dtype) || dtype === 'bool';
  switch (kind) {
    case 'scalar':
      if (!numericOrBool) v.fail(`${colAt}.dtype`, `kind scalar needs a numeric or bool dtype, got ${dtype}`);
      break;
    case 'fixed': {
      if (!numericOrBool) v.fail(`${colAt}.dtype`, `kind fixed needs a numeric or bool dtype, got ${dtype}`);
      if (nullable) v.fail(`${colAt}.nullable`, 'fixed-shape columns cannot be nullable');
      const shape = v.array(c.shape, `${colAt}.shape`);
      if (shape.length === 0) v.fail(`${colAt}.shape`, 'must have at least one dimension');
      spec.shape = shape.map((d, i) => {
        if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1) v.fail(`${colAt}.shape[${i}]`, `must be an integer >= 1, got ${JSON.stringify(d)}`);
        return d as number;
      });
      break;
    }
    case 'list':
      if (!NUMERIC_DTYPES.has(dtype) && dtype !== 'bool') v.fail(`${colAt}.dtype`, `kind list needs a numeric or bool dtype, got ${dtype}`);
      break;
    case 'bytes':
      if (dtype !== 'string' && dtype !== 'binary') v.fail(`${colAt}.dtype`, `kind bytes needs dtype string or binary, got ${dtype}`);
      break;
  }
  if (kind !== 'fixed' && c.shape !== undefined) v.fail(`${colAt}.shape`, `only kind fixed has a shape (kind is ${kind})`);
  validateLogical(v, c, spec, colAt);
  return spec;
}

function validateShard(v: Validator, raw: unknown, at: string, varCols: Set<string>): ShardEntry {
  const s = v.object(raw, at);
  const rawPath = v.string(s.path, `${at}.path`);
  // Escaping paths get their own code: they are refused as a security matter, not a typo.
  const path = checkRelativeKey(rawPath, v.where);
  const shAt = `${at} (${path})`;
  const format = v.string(s.format, `${shAt}.format`);
  if (format !== 'arrow' && format !== 'parquet') v.fail(`${shAt}.format`, `must be "arrow" or "parquet", got ${JSON.stringify(format)}`);
  const rows = v.count(s.rows, `${shAt}.rows`);
  const bytes = v.count(s.bytes, `${shAt}.bytes`);
  const hash = v.string(s.hash, `${shAt}.hash`);
  if (!HASH_RE.test(hash)) v.fail(`${shAt}.hash`, `must be "sha256:" and 64 lowercase hex digits, got ${JSON.stringify(hash)}`);
  const layoutObj = v.object(s.layout, `${shAt}.layout`);
  let layout: ArrowLayout | ParquetLayout;
  if (format === 'arrow') {
    if (layoutObj.kind !== 'arrow') v.fail(`${shAt}.layout.kind`, `must be "arrow" for an arrow shard, got ${JSON.stringify(layoutObj.kind)}`);
    const batches = v.array(layoutObj.batches, `${shAt}.layout.batches`).map((b, i) => {
      const bAt = `${shAt}.layout.batches[${i}]`;
      const o = v.object(b, bAt);
      const batch = {
        offset: v.count(o.offset, `${bAt}.offset`),
        metadataLength: v.count(o.metadataLength, `${bAt}.metadataLength`),
        bodyLength: v.count(o.bodyLength, `${bAt}.bodyLength`),
        rows: v.count(o.rows, `${bAt}.rows`),
      } as ArrowBatchLayout;
      if (batch.offset + batch.metadataLength + batch.bodyLength > bytes) v.fail(bAt, `ends past the shard's ${bytes} bytes`);
      if (o.crc32 !== undefined) batch.crc32 = v.checksum(o.crc32, `${bAt}.crc32`);
      return batch;
    });
    const sum = batches.reduce((a, b) => a + b.rows, 0);
    if (sum !== rows) v.fail(`${shAt}.layout.batches`, `hold ${sum} rows but the shard has ${rows}`);
    layout = { kind: 'arrow', batches };
    if (layoutObj.dictionaries !== undefined) {
      layout.dictionaries = v.array(layoutObj.dictionaries, `${shAt}.layout.dictionaries`).map((d, i) => {
        const dAt = `${shAt}.layout.dictionaries[${i}]`;
        const o = v.object(d, dAt);
        const dict = {
          offset: v.count(o.offset, `${dAt}.offset`),
          metadataLength: v.count(o.metadataLength, `${dAt}.metadataLength`),
          bodyLength: v.count(o.bodyLength, `${dAt}.bodyLength`),
          crc32: v.checksum(o.crc32, `${dAt}.crc32`),
        };
        if (dict.offset + dict.metadataLength + dict.bodyLength > bytes) v.fail(dAt, `ends past the shard's ${bytes} bytes`);
        return dict;
      });
    }
    pieceChecksums(v, layoutObj, layout, `${shAt}.layout`, batches.some((b) => b.crc32 !== undefined) || (layout.dictionaries?.length ?? 0) > 0);
  } else {
    if (layoutObj.kind !== 'parquet') v.fail(`${shAt}.layout.kind`, `must be "parquet" for a parquet shard, got ${JSON.stringify(layoutObj.kind)}`);
    const rowGroups = v.array(layoutObj.rowGroups, `${shAt}.layout.rowGroups`).map((g, i) => {
      const gAt = `${shAt}.layout.rowGroups[${i}]`;
      const o = v.object(g, gAt);
      const group: ParquetRowGroupLayout = { rows: v.count(o.rows, `${gAt}.rows`), offset: v.count(o.offset, `${gAt}.offset`), bytes: v.count(o.bytes, `${gAt}.bytes`) };
      if (group.offset + group.bytes > bytes) v.fail(gAt, `ends past the shard's ${bytes} bytes`);
      if (o.chunks !== undefined) group.chunks = v.array(o.chunks, `${gAt}.chunks`).map((c, k) => validateChunk(v, c, `${gAt}.chunks[${k}]`, group));
      return group;
    });
    const sum = rowGroups.reduce((a, g) => a + g.rows, 0);
    if (sum !== rows) v.fail(`${shAt}.layout.rowGroups`, `hold ${sum} rows but the shard has ${rows}`);
    const footerOffset = v.count(layoutObj.footerOffset, `${shAt}.layout.footerOffset`);
    const footerLength = v.count(layoutObj.footerLength, `${shAt}.layout.footerLength`);
    if (footerOffset + footerLength !== bytes) v.fail(`${shAt}.layout`, `footer [${footerOffset}, ${footerOffset + footerLength}) must end at the shard's size ${bytes}`);
    layout = { kind: 'parquet', rowGroups, footerOffset, footerLength };
    pieceChecksums(v, layoutObj, layout, `${shAt}.layout`, rowGroups.some((g) => g.chunks !== undefined));
  }
  const entry: ShardEntry = { path, format, rows, bytes, hash, layout };
  if (s.maxRowBytes !== undefined) {
    const m = v.object(s.maxRowBytes, `${shAt}.maxRowBytes`);
    const out: Record<string, number> = {};
    for (const [col, n] of Object.entries(m)) {
      if (!varCols.has(col)) v.fail(`${shAt}.maxRowBytes.${col}`, 'names no variable-length column of the schema');
      out[col] = v.count(n, `${shAt}.maxRowBytes.${col}`);
    }
    entry.maxRowBytes = out;
  }
  if (s.pieceValues !== undefined) {
    const m = v.object(s.pieceValues, `${shAt}.pieceValues`);
    const pieces = layout.kind === 'arrow' ? layout.batches.length : layout.rowGroups.length;
    const out: Record<string, number[]> = {};
    for (const [col, list] of Object.entries(m)) {
      if (!varCols.has(col)) v.fail(`${shAt}.pieceValues.${col}`, 'names no variable-length column of the schema');
      const counts = v.array(list, `${shAt}.pieceValues.${col}`).map((n, k) => v.count(n, `${shAt}.pieceValues.${col}[${k}]`));
      if (counts.length !== pieces) v.fail(`${shAt}.pieceValues.${col}`, `has ${counts.length} counts, the layout ${pieces} pieces`);
      out[col] = counts;
    }
    entry.pieceValues = out;
  }
  return entry;
}

function validateChunk(v: Validator, raw: unknown, at: string, group: ParquetRowGroupLayout): ParquetChunkLayout {
  const o = v.object(raw, at);
  const chunk: ParquetChunkLayout = {
    column: v.string(o.column, `${at}.column`),
    offset: v.count(o.offset, `${at}.offset`),
    bytes: v.count(o.bytes, `${at}.bytes`),
    crc32: v.checksum(o.crc32, `${at}.crc32`),
  };
  if (chunk.offset < group.offset || chunk.offset + chunk.bytes > group.offset + group.bytes) {
    v.fail(at, `[${chunk.offset}, ${chunk.offset + chunk.bytes}) lies outside its row group [${group.offset}, ${group.offset + group.bytes})`);
  }
  return chunk;
}

/** The layout's pieceHash and footerCrc32: the algorithm must be named when any piece has a checksum. */
function pieceChecksums(v: Validator, raw: Record<string, unknown>, layout: ArrowLayout | ParquetLayout, at: string, anyPiece: boolean): void {
  if (raw.pieceHash !== undefined) {
    if (raw.pieceHash !== PIECE_HASH) v.fail(`${at}.pieceHash`, `must be ${JSON.stringify(PIECE_HASH)}, got ${JSON.stringify(raw.pieceHash)}`);
    layout.pieceHash = PIECE_HASH;
  }
  if (raw.footerCrc32 !== undefined) layout.footerCrc32 = v.checksum(raw.footerCrc32, `${at}.footerCrc32`);
  if ((anyPiece || layout.footerCrc32 !== undefined) && layout.pieceHash === undefined) v.fail(`${at}.pieceHash`, 'is missing but the layout has piece checksums');
}

const LOGICAL_SET: Record<LogicalType, true> = { decimal: true, date: true, time: true, timestamp: true, duration: true };
const UNIT_SET: Record<TimeUnit, true> = { day: true, s: true, ms: true, us: true, ns: true };

/** The optional meaning of a converted column's numbers: logical, unit, timezone, precision, scale. */
function validateLogical(v: Validator, c: Record<string, unknown>, spec: ColumnSpec, colAt: string): void {
  if (c.logical !== undefined) {
    const logical = v.string(c.logical, `${colAt}.logical`) as LogicalType;
    if (!(logical in LOGICAL_SET)) v.fail(`${colAt}.logical`, `unknown logical type ${JSON.stringify(logical)}; expected one of ${Object.keys(LOGICAL_SET).join(', ')}`);
    if (logical === 'decimal' ? spec.dtype !== 'float64' : !isIntegerDType(spec.dtype)) {
      v.fail(`${colAt}.logical`, `${logical} columns need dtype ${logical === 'decimal' ? 'float64' : 'an integer dtype'}, got ${spec.dtype}`);
    }
    spec.logical = logical;
  }
  if (c.unit !== undefined) {
    const unit = v.string(c.unit, `${colAt}.unit`) as TimeUnit;
    if (!(unit in UNIT_SET)) v.fail(`${colAt}.unit`, `unknown unit ${JSON.stringify(unit)}; expected one of ${Object.keys(UNIT_SET).join(', ')}`);
    if (spec.logical === undefined || spec.logical === 'decimal') v.fail(`${colAt}.unit`, 'only date, time, timestamp and duration columns have a unit');
    spec.unit = unit;
  }
  if (c.timezone !== undefined) {
    if (spec.logical !== 'timestamp') v.fail(`${colAt}.timezone`, 'only timestamp columns have a time zone');
    spec.timezone = v.string(c.timezone, `${colAt}.timezone`);
  }
  for (const key of ['precision', 'scale'] as const) {
    if (c[key] === undefined) continue;
    if (spec.logical !== 'decimal') v.fail(`${colAt}.${key}`, 'only decimal columns have a precision and scale');
    const n = c[key];
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) v.fail(`${colAt}.${key}`, `must be an integer, got ${JSON.stringify(n)}`);
    spec[key] = n;
  }
}

const DTYPE_SET: Record<DType, true> = {
  int8: true, uint8: true, int16: true, uint16: true, int32: true, uint32: true, int64: true, uint64: true,
  float16: true, float32: true, float64: true, bool: true, string: true, binary: true,
};

class Validator {
  constructor(readonly where: string) {}

  fail(field: string, why: string): never {
    throw new GpufeedError(ErrorCodes.MANIFEST_INVALID, `${this.where}: field ${field} ${why}`, { path: this.where, field });
  }

  object(x: unknown, field: string): Record<string, unknown> {
    if (x === undefined) this.fail(field, 'is missing');
    if (x === null || typeof x !== 'object' || Array.isArray(x)) this.fail(field, `must be an object, got ${describe(x)}`);
    return x as Record<string, unknown>;
  }

  array(x: unknown, field: string): unknown[] {
    if (x === undefined) this.fail(field, 'is missing');
    if (!Array.isArray(x)) this.fail(field, `must be an array, got ${describe(x)}`);
    return x;
  }

  string(x: unknown, field: string): string {
    if (x === undefined) this.fail(field, 'is missing');
    if (typeof x !== 'string') this.fail(field, `must be a string, got ${describe(x)}`);
    return x;
  }

  /** A 32-bit unsigned checksum. */
  checksum(x: unknown, field: string): number {
    if (x === undefined) this.fail(field, 'is missing');
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) this.fail(field, `must be an integer from 0 to 4294967295, got ${describe(x)}`);
    return x;
  }

  count(x: unknown, field: string): number {
    if (x === undefined) this.fail(field, 'is missing');
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) this.fail(field, `must be an integer >= 0, got ${describe(x)}`);
    return x;
  }
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? 'an object' : JSON.stringify(x);
}

/** Reads and validates `index.json` from a dataset store. */
export async function loadManifest(store: Store): Promise<ManifestV1> {
  const where = joinUri(store.uri, MANIFEST_FILE);
  const info = await store.head(MANIFEST_FILE);
  if (!info) {
    throw new GpufeedError(ErrorCodes.MANIFEST_NOT_FOUND, `${where}: no manifest (index.json) here; is this a gpufeed dataset? Create one with \`gpufeed prep\` or \`gpufeed index\``, { path: where });
  }
  let bytes: Uint8Array;
  try {
    bytes = await store.get(MANIFEST_FILE);
  } catch (err) {
    if ((err as { code?: string }).code === ErrorCodes.STORAGE_NOT_FOUND) {
      throw new GpufeedError(ErrorCodes.MANIFEST_NOT_FOUND, `${where}: no manifest (index.json) here`, { path: where }, { cause: err });
    }
    throw err;
  }
  return parseManifest(new TextDecoder().decode(bytes), where);
}

/** Serializes a manifest: stable key order, one shard per line block, readable in a diff. */
export function serializeManifest(manifest: ManifestV1): string {
  return `${JSON.stringify(manifest, null, 1)}\n`;
}

/**
 * Validates, then writes index.json. Call it after every shard is in place: Store.put writes a
 * temporary object and renames it, so readers see the old manifest or the new one, never half.
 */
export async function writeManifest(store: Store, manifest: ManifestV1): Promise<void> {
  const text = serializeManifest(manifest);
  validateManifest(JSON.parse(text), joinUri(store.uri, MANIFEST_FILE));
  await store.put(MANIFEST_FILE, new TextEncoder().encode(text));
}

export function joinUri(base: string, key: string): string {
  return base.endsWith('/') ? `${base}${key}` : `${base}/${key}`;
}
