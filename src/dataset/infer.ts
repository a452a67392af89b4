// Schema inference for JSON Lines and CSV inputs, from a sample of the first rows.
//
// Rules (documented in the README; `--type col=dtype`, `--shape col=AxB`, `--nullable col` override):
// - integers -> int64; any fractional number -> float64; true/false -> bool; text -> string.
// - arrays of numbers -> list; with `--shape col=...` -> fixed (nested arrays flattened row-major).
//   Array elements: integers -> int32 when every sampled value fits, else int64; any fractional
//   value -> float32 (tensors default to 32 bits); true/false -> bool.
// - a column is nullable when a sampled row holds null or lacks it (fixed columns never are).
// - CSV cells: a column is int/float/bool/list only when every non-empty sampled cell parses as
//   one; otherwise string. JSON: mixing strings and numbers is an error (use --type col=string).
// - a column that is null in every sampled row, or holds objects, needs --type.
// Later rows must fit what the sample decided; a value that does not (a float in an int column,
// a token id past int32) is a GPUFEED_BAD_INPUT error naming the file, line and the --type to use.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { INT_RANGE } from './dtypes.js';
import type { ColumnSpec, DType } from './types.js';

export interface SchemaHints {
  /** `--shape col=2048` or `3x224x224`: fixed-shape columns. */
  shapes?: Record<string, number[]>;
  /** `--type col=int32`: the (element) dtype of a column. */
  types?: Record<string, DType>;
  /** `--nullable col`: allow nulls in columns the sample shows none in. */
  nullable?: readonly string[];
}

interface Stats {
  rows: number;
  nulls: number;
  ints: number;
  floats: number;
  bools: number;
  strings: number;
  bytes: number;
  arrays: number;
  objects: number;
  intMin: number;
  intMax: number;
  bigInts: number;
  nestedArrays: number;
  el: { ints: number; floats: number; bools: number; other: number; min: number; max: number; big: number };
  firstBad?: string;
}

function newStats(): Stats {
  return {
    rows: 0, nulls: 0, ints: 0, floats: 0, bools: 0, strings: 0, bytes: 0, arrays: 0, objects: 0,
    intMin: 0, intMax: 0, bigInts: 0, nestedArrays: 0,
    el: { ints: 0, floats: 0, bools: 0, other: 0, min: 0, max: 0, big: 0 },
  };
}

function arrayLikeOf(v: unknown): ArrayLike<unknown> | undefined {
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof Uint8Array)) return v as unknown as ArrayLike<unknown>;
  return undefined;
}

function observeElements(s: Stats, arr: ArrayLike<unknown>): void {
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i];
    if (typeof x === 'number') {
      if (Number.isInteger(x)) {
        s.el.ints++;
        if (x < s.el.min) s.el.min = x;
        if (x > s.el.max) s.el.max = x;
      } else s.el.floats++;
    } else if (typeof x === 'bigint') {
      s.el.ints++;
      s.el.big++;
    } else if (typeof x === 'boolean') s.el.bools++;
    else if (Array.isArray(x) || ArrayBuffer.isView(x)) {
      s.nestedArrays++;
      observeElements(s, x as unknown as ArrayLike<unknown>);
    } else s.el.other++;
  }
}

function observe(s: Stats, v: unknown): void {
  if (v === null || v === undefined) {
    s.nulls++;
    return;
  }
  switch (typeof v) {
    case 'number':
      if (Number.isInteger(v)) {
        s.ints++;
        if (s.ints === 1 || v < s.intMin) s.intMin = v;
        if (s.ints === 1 || v > s.intMax) s.intMax = v;
      } else s.floats++;
      return;
    case 'bigint':
      s.ints++;
      s.bigInts++;
      return;
    case 'boolean':
      s.bools++;
      return;
    case 'string':
      s.strings++;
      return;
  }
  if (v instanceof Uint8Array) {
    s.bytes++;
    return;
  }
  const arr = arrayLikeOf(v);
  if (arr) {
    s.arrays++;
    observeElements(s, arr);
    return;
  }
  s.objects++;
}

/**
 * Infers the schema of `sample` (rows in input order). `csv` switches to CSV's rules (text wins
 * over numbers). `where` names the file in errors.
 */
export function inferSchema(sample: readonly Record<string, unknown>[], hints: SchemaHints, where: string, csv = false): ColumnSpec[] {
  const stats = new Map<string, Stats>();
  for (const row of sample) {
    for (const key of Object.keys(row)) if (!stats.has(key)) stats.set(key, newStats());
  }
  for (const row of sample) {
    for (const [key, s] of stats) {
      s.rows++;
      observe(s, row[key]);
    }
  }
  for (const name of [...Object.keys(hints.shapes ?? {}), ...Object.keys(hints.types ?? {})]) {
    if (!stats.has(name)) {
      throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `${where}: --shape/--type name column ${JSON.stringify(name)}, which the first ${sample.length} rows do not have; they have: ${[...stats.keys()].join(', ')}`, { column: name, path: where });
    }
  }
  return [...stats.entries()].map(([name, s]) => decide(name, s, hints, where, csv));
}

function decide(name: string, s: Stats, hints: SchemaHints, where: string, csv: boolean): ColumnSpec {
  const shape = hints.shapes?.[name];
  const forced = hints.types?.[name];
  const nullable = s.nulls > 0 || (hints.nullable ?? []).includes(name);
  const fail = (why: string, code: typeof ErrorCodes.BAD_INPUT | typeof ErrorCodes.UNSUPPORTED_TYPE = ErrorCodes.BAD_INPUT): never => {
    throw new GpufeedError(code, `${where}: column ${JSON.stringify(name)}: ${why}`, { column: name, path: where });
  };
  const scalarsSeen = s.ints + s.floats + s.bools + s.strings + s.bytes;

  if (shape) {
    if (forced === 'string' || forced === 'binary') fail(`--shape needs a numeric or bool --type, got ${forced}`);
    if (s.objects || (s.arrays === 0 && scalarsSeen > 0 && !csv)) fail('--shape is given but the sampled values are not arrays');
    return { name, dtype: forced ?? elementDType(name, s, fail), kind: 'fixed', shape: shape.slice(), nullable: false };
  }
  if (forced) {
    if (s.arrays > 0 && forced !== 'string' && forced !== 'binary') {
      if (s.nestedArrays > 0) fail(`holds nested arrays; pass --shape ${name}=AxB to store it as a fixed-shape tensor`, ErrorCodes.UNSUPPORTED_TYPE);
      return { name, dtype: forced, kind: 'list', nullable };
    }
    return { name, dtype: forced, kind: forced === 'string' || forced === 'binary' ? 'bytes' : 'scalar', nullable };
  }
  if (s.objects > 0) fail('holds JSON objects; gpufeed columns are numbers, bools, strings or arrays of numbers (flatten it, or pass --type ' + name + '=string to keep the JSON text)', ErrorCodes.UNSUPPORTED_TYPE);
  if (s.arrays > 0) {
    if (scalarsSeen > 0 && !(csv && s.strings === 0)) fail(`mixes arrays with single values in the first ${s.rows} rows`);
    if (s.nestedArrays > 0) fail(`holds nested arrays; pass --shape ${name}=AxB to store it as a fixed-shape tensor`, ErrorCodes.UNSUPPORTED_TYPE);
    return { name, dtype: elementDType(name, s, fail), kind: 'list', nullable };
  }
  if (s.strings > 0 || s.bytes > 0) {
    if (!csv && s.ints + s.floats + s.bools > 0) fail(`mixes text with numbers or booleans in the first ${s.rows} rows; pass --type ${name}=string to keep them as text`);
    return { name, dtype: s.strings === 0 ? 'binary' : 'string', kind: 'bytes', nullable };
  }
  if (s.bools > 0) {
    if (s.ints + s.floats > 0) fail(`mixes booleans with numbers in the first ${s.rows} rows; pass --type ${name}=<dtype>`);
    return { name, dtype: 'bool', kind: 'scalar', nullable };
  }
  if (s.floats > 0) return { name, dtype: 'float64', kind: 'scalar', nullable };
  if (s.ints > 0) return { name, dtype: 'int64', kind: 'scalar', nullable };
  return fail(`is null or missing in all of the first ${s.rows} rows, so its type cannot be inferred; pass --type ${name}=<dtype>`);
}

function elementDType(name: string, s: Stats, fail: (why: string) => never): DType {
  const e = s.el;
  if (e.other > 0) fail('arrays hold values other than numbers and booleans');
  if (e.bools > 0 && e.ints + e.floats > 0) fail('arrays mix booleans and numbers');
  if (e.bools > 0) return 'bool';
  if (e.floats > 0) return 'float32';
  if (e.ints > 0) {
    const [lo, hi] = INT_RANGE.int32!;
    return e.big === 0 && e.min >= lo && e.max <= hi ? 'int32' : 'int64';
  }
  return fail(`arrays are empty in all sampled rows, so their element type cannot be inferred; pass --type ${name}=<dtype>`);
}

/** Applies --shape/--type/--nullable to a schema a file declares (Parquet, Arrow inputs). */
export function applyHints(columns: readonly ColumnSpec[], hints: SchemaHints, where: string): ColumnSpec[] {
  const names = new Set(columns.map((c) => c.name));
  for (const name of [...Object.keys(hints.shapes ?? {}), ...Object.keys(hints.types ?? {})]) {
    if (!names.has(name)) {
      throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `${where}: --shape/--type name column ${JSON.stringify(name)}, which the file does not have; it has: ${[...names].join(', ')}`, { column: name, path: where });
    }
  }
  return columns.map((c) => {
    const out: ColumnSpec = { ...c };
    const shape = hints.shapes?.[c.name];
    const forced = hints.types?.[c.name];
    if (forced) {
      if ((forced === 'string' || forced === 'binary') !== (c.kind === 'bytes')) {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${where}: column ${JSON.stringify(c.name)}: --type ${forced} does not fit its ${c.kind} ${c.dtype} values`, { column: c.name, path: where });
      }
      out.dtype = forced;
    }
    if (shape) {
      if (c.kind !== 'fixed' && c.kind !== 'list') {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${where}: column ${JSON.stringify(c.name)}: --shape needs a list column, this one is ${c.kind} ${c.dtype}`, { column: c.name, path: where });
      }
      out.kind = 'fixed';
      out.shape = shape.slice();
      out.nullable = false;
    }
    if ((hints.nullable ?? []).includes(c.name) && out.kind !== 'fixed') out.nullable = true;
    return out;
  });
}
