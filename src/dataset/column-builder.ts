// Accumulates one column's values, row by row, into the columnar buffers of a shard. Checks every
// value against the column's spec (dtype range, fixed shape, nullability) and names the file, row
// and column when one does not fit.
import { valuesPerRow } from './columns.js';
import { INT64_RANGE, INT_RANGE, isBigIntDType, TYPED_ARRAY, type TypedArray } from './dtypes.js';
import type { ColumnData } from '../formats/column-data.js';
import { badInput, type RowRef } from './row-ref.js';
import { numberToHalf } from './float16.js';
import type { ColumnSpec } from './types.js';

/** A typed array that grows by doubling. */
class Growable {
  buf: TypedArray;
  length = 0;
  constructor(private readonly ctor: (typeof TYPED_ARRAY)[keyof typeof TYPED_ARRAY], initial = 1024) {
    this.buf = new ctor(initial);
  }
  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let cap = Math.max(this.buf.length * 2, 16);
    while (cap < need) cap *= 2;
    const next = new this.ctor(cap);
    (next as Uint8Array).set(this.buf.subarray(0, this.length) as Uint8Array);
    this.buf = next;
  }
  /** The used part, copied into an exact-size buffer (so it can be transferred alone). */
  take(): TypedArray {
    const out = this.buf.slice(0, this.length) as TypedArray;
    this.length = 0;
    if (this.buf.length > 1 << 16) this.buf = new this.ctor(1024); // give back big buffers between shards
    return out;
  }
}

const utf8 = new TextEncoder();

export class ColumnBuilder {
  private values: Growable;
  private offsets: Growable | undefined;
  private validity: Growable | undefined;
  private rows = 0;
  private nulls = 0;
  private readonly perRow: number;
  private readonly isBig: boolean;
  private readonly range: [number, number] | undefined;
  private readonly isInt: boolean;

  constructor(readonly col: ColumnSpec) {
    this.values = new Growable(TYPED_ARRAY[col.dtype]);
    if (col.kind === 'list' || col.kind === 'bytes') {
      this.offsets = new Growable(Int32Array);
      this.offsets.reserve(1);
      this.offsets.buf[0] = 0;
      this.offsets.length = 1;
    }
    this.perRow = col.kind === 'fixed' ? valuesPerRow(col) : 1;
    this.isBig = isBigIntDType(col.dtype);
    this.range = INT_RANGE[col.dtype];
    this.isInt = this.range !== undefined || this.isBig;
  }

  /** Bytes held so far (values, offsets, validity). */
  get bytes(): number {
    return this.values.length * this.values.buf.BYTES_PER_ELEMENT + (this.offsets ? this.offsets.length * 4 : 0) + (this.validity?.length ?? 0);
  }

  append(value: unknown, at: RowRef): void {
    if (value === null || value === undefined) {
      this.appendNull(at);
      return;
    }
    switch (this.col.kind) {
      case 'scalar':
        this.values.reserve(1);
        this.setElement(this.values.length++, value, at);
        break;
      case 'bytes':
        this.appendBytes(value, at);
        break;
      case 'fixed':
        this.appendFixed(value, at);
        break;
      case 'list':
        this.appendList(value, at);
        break;
    }
    if (this.validity) {
      this.validity.reserve(1);
      this.validity.buf[this.validity.length++] = 1;
    }
    this.rows++;
  }

  private appendNull(at: RowRef): void {
    if (!this.col.nullable) {
      const why = this.col.kind === 'fixed'
        ? `is null or missing; fixed-shape columns cannot hold nulls (expected ${this.perRow} values, shape [${this.col.shape?.join(', ')}])`
        : 'is null or missing, but the column is not nullable (pass --nullable to allow nulls)';
      throw badInput(at, this.col.name, why);
    }
    if (!this.validity) {
      // First null: every earlier row was valid.
      this.validity = new Growable(Uint8Array, Math.max(1024, this.rows + 1));
      (this.validity.buf as Uint8Array).fill(1, 0, this.rows);
      this.validity.length = this.rows;
    }
    this.validity.reserve(1);
    this.validity.buf[this.validity.length++] = 0;
    if (this.offsets) {
      this.offsets.reserve(1);
      this.offsets.buf[this.offsets.length] = this.offsets.buf[this.offsets.length - 1]!;
      this.offsets.length++;
    } else {
      this.values.reserve(1);
      this.values.buf[this.values.length++] = (this.isBig ? 0n : 0) as never;
    }
    this.nulls++;
    this.rows++;
  }

  /** Writes one element at index i, converting and range-checking. */
  private setElement(i: number, v: unknown, at: RowRef): void {
    const buf = this.values.buf;
    const dtype = this.col.dtype;
    if ((v === null || v === undefined) && this.col.kind !== 'scalar') {
      throw badInput(at, this.col.name, `holds a null item (value ${i - this.values.length + 1} of the row); gpufeed ${this.col.kind === 'fixed' ? 'tensors' : 'lists'} carry no per-item nulls (fill or drop them)`);
    }
    if (this.isBig) {
      let b: bigint;
      if (typeof v === 'bigint') b = v;
      else if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
      else if (typeof v === 'boolean') b = v ? 1n : 0n;
      else throw badInput(at, this.col.name, `expected an integer (${dtype}), got ${show(v)}${typeof v === 'number' ? `; pass --type ${this.col.name}=float64 for fractional values` : ''}`);
      const [lo, hi] = INT64_RANGE[dtype as 'int64' | 'uint64'];
      if (b < lo || b > hi) throw badInput(at, this.col.name, `${b} is out of range for ${dtype}`);
      buf[i] = b as never;
      return;
    }
    let n: number;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'boolean') n = v ? 1 : 0;
    else if (typeof v === 'bigint') n = Number(v);
    else throw badInput(at, this.col.name, `expected ${dtype === 'bool' ? 'a boolean' : `a number (${dtype})`}, got ${show(v)}`);
    if (dtype === 'bool') {
      if (n !== 0 && n !== 1) throw badInput(at, this.col.name, `expected a boolean, got ${show(v)}`);
    } else if (dtype === 'float16') {
      n = numberToHalf(n); // stored as its 16 bits
    } else if (this.isInt) {
      const [lo, hi] = this.range!;
      if (!Number.isInteger(n)) throw badInput(at, this.col.name, `expected an integer (${dtype}), got ${show(v)}; pass --type ${this.col.name}=float64 for fractional values`);
      if (n < lo || n > hi) throw badInput(at, this.col.name, `${n} is out of range for ${dtype}; pass --type ${this.col.name}=int64 (or a wider type)`);
    }
    buf[i] = n as never;
  }

  private appendBytes(value: unknown, at: RowRef): void {
    let bytes: Uint8Array;
    if (typeof value === 'string') {
      if (this.col.dtype === 'binary') {
        // JSON and CSV have no bytes; binary columns take base64 text there.
        bytes = Buffer.from(value, 'base64');
      } else {
        // Reserve the worst case (3 bytes per UTF-16 unit) and encode in place: no temporary.
        this.values.reserve(value.length * 3);
        const dst = (this.values.buf as Uint8Array).subarray(this.values.length);
        const { written } = utf8.encodeInto(value, dst);
        this.values.length += written;
        this.pushOffset(at);
        return;
      }
    } else if (value instanceof Uint8Array) {
      bytes = value;
    } else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
      if (this.col.dtype === 'binary') throw badInput(at, this.col.name, `expected bytes, got ${show(value)}`);
      bytes = utf8.encode(String(value));
    } else {
      throw badInput(at, this.col.name, `expected a ${this.col.dtype === 'binary' ? 'binary value (base64 text in JSON)' : 'string'}, got ${show(value)}`);
    }
    this.values.reserve(bytes.length);
    (this.values.buf as Uint8Array).set(bytes, this.values.length);
    this.values.length += bytes.length;
    this.pushOffset(at);
  }

  private pushOffset(at: RowRef): void {
    const o = this.offsets!;
    if (this.values.length > 0x7fffffff) throw badInput(at, this.col.name, 'more than 2 GiB of values in one shard; use a smaller --shard-size');
    o.reserve(1);
    o.buf[o.length++] = this.values.length;
  }

  private appendFixed(value: unknown, at: RowRef): void {
    const n = this.perRow;
    const flat = flatten(value, this.col.shape!.length > 1);
    if (!flat) throw badInput(at, this.col.name, `expected an array of ${n} values (shape [${this.col.shape!.join(', ')}]), got ${show(value)}`);
    if (flat.length !== n) {
      throw badInput(at, this.col.name, `expected ${n} values (shape [${this.col.shape!.join(', ')}]), got ${flat.length}`);
    }
    this.values.reserve(n);
    this.copyElements(flat, at);
  }

  private appendList(value: unknown, at: RowRef): void {
    const flat = flatten(value, false);
    if (!flat) throw badInput(at, this.col.name, `expected an array of ${this.col.dtype}, got ${show(value)}`);
    this.values.reserve(flat.length);
    this.copyElements(flat, at);
    this.pushOffset(at);
  }

  private copyElements(src: ArrayLike<unknown>, at: RowRef): void {
    const start = this.values.length;
    const buf = this.values.buf;
    // Fast path: a typed array of the same element type (Arrow and Parquet inputs) is one memcpy.
    // (Not float16, held as bits: a typed array of values, such as a Uint16Array, is converted.)
    if (ArrayBuffer.isView(src) && src.constructor === buf.constructor && this.col.dtype !== 'float16') {
      (buf as Uint8Array).set(src as unknown as Uint8Array, start);
      this.values.length += src.length;
      return;
    }
    const len = src.length;
    if (!this.isBig && this.col.dtype !== 'bool' && this.col.dtype !== 'float16') {
      // Hot loop for JSON number arrays: check inline, defer to setElement only to report.
      const r = this.range;
      for (let k = 0; k < len; k++) {
        const x = src[k];
        if (typeof x !== 'number' || (r && (!Number.isInteger(x) || x < r[0] || x > r[1]))) this.setElement(start + k, x, at);
        else buf[start + k] = x;
      }
    } else {
      for (let k = 0; k < len; k++) this.setElement(start + k, src[k], at);
    }
    this.values.length += len;
  }

  /** The rows so far as ColumnData (exact-size buffers); the builder starts over empty. */
  finish(): ColumnData {
    const values = this.values.take();
    const data: ColumnData = { values, nullCount: this.nulls };
    if (this.offsets) {
      data.offsets = this.offsets.take() as Int32Array;
      this.offsets.reserve(1);
      this.offsets.buf[0] = 0;
      this.offsets.length = 1;
    }
    if (this.validity) {
      data.validity = this.validity.take() as Uint8Array;
      this.validity = undefined;
    }
    this.rows = 0;
    this.nulls = 0;
    return data;
  }
}

/**
 * An array-like of values from a row cell: JS arrays, typed arrays, Arrow Vectors (toArray), and,
 * for multi-dim shapes, nested arrays flattened row-major. undefined when it is not an array.
 */
function flatten(value: unknown, nested: boolean): ArrayLike<unknown> | undefined {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value as unknown as ArrayLike<unknown>;
  if (Array.isArray(value)) {
    if (nested && value.length > 0 && typeof value[0] === 'object' && value[0] !== null) {
      const out: unknown[] = [];
      const walk = (v: unknown): void => {
        const inner = Array.isArray(v) || ArrayBuffer.isView(v) ? (v as ArrayLike<unknown>) : toArrayLike(v);
        if (!inner) {
          out.push(v);
          return;
        }
        for (let i = 0; i < inner.length; i++) {
          const x = inner[i];
          if (x !== null && typeof x === 'object') walk(x);
          else out.push(x);
        }
      };
      walk(value);
      return out;
    }
    return value;
  }
  const arr = toArrayLike(value);
  if (arr && nested) return flatten(Array.from(arr as ArrayLike<unknown>), true);
  return arr;
}

function toArrayLike(value: unknown): ArrayLike<unknown> | undefined {
  if (value && typeof value === 'object' && typeof (value as { toArray?: unknown }).toArray === 'function') {
    return (value as { toArray(): ArrayLike<unknown> }).toArray();
  }
  return undefined;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'bigint') return `${v}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v && typeof v === 'object') return ArrayBuffer.isView(v) ? `a ${v.constructor.name}` : 'an object';
  return String(v);
}
