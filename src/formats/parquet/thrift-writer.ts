// Thrift compact protocol, the writing half: what Parquet page headers and the file footer need
// (structs, i32/i64, binary/string, lists). Field ids are given in increasing order within a
// struct, as the footer and page header writers do; values are JS numbers (sizes and offsets stay
// far below 2^53).
import { ByteSink } from './byte-sink.js';

const T_I32 = 5;
const T_I64 = 6;
const T_BINARY = 8;
const T_LIST = 9;
const T_STRUCT = 12;

const utf8 = new TextEncoder();

export class CompactWriter {
  readonly out: ByteSink;
  private last = 0;
  private readonly lasts: number[] = [];

  constructor(out = new ByteSink(256)) {
    this.out = out;
  }

  private fieldHeader(id: number, type: number): void {
    const delta = id - this.last;
    if (delta > 0 && delta <= 15) this.out.byte((delta << 4) | type);
    else {
      this.out.byte(type);
      this.out.varint(zigzag(id));
    }
    this.last = id;
  }

  i32(id: number, v: number): this {
    if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new RangeError(`thrift i32 field ${id}: ${v} is not a 32-bit integer`);
    this.fieldHeader(id, T_I32);
    this.out.varint(zigzag(v));
    return this;
  }

  i64(id: number, v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`thrift i64 field ${id}: ${v} is not a safe integer`);
    this.fieldHeader(id, T_I64);
    this.out.varint(zigzag(v));
    return this;
  }

  binary(id: number, b: Uint8Array): this {
    this.fieldHeader(id, T_BINARY);
    this.out.varint(b.length);
    this.out.bytes(b);
    return this;
  }

  string(id: number, s: string): this {
    return this.binary(id, utf8.encode(s));
  }

  /** A struct field; `body` writes its fields. */
  struct(id: number, body: (w: this) => void): this {
    this.fieldHeader(id, T_STRUCT);
    this.structBody(body);
    return this;
  }

  /** A list field of i32 values. */
  listI32(id: number, values: readonly number[]): this {
    this.listHeader(id, T_I32, values.length);
    for (const v of values) this.out.varint(zigzag(v));
    return this;
  }

  /** A list field of strings. */
  listString(id: number, values: readonly string[]): this {
    this.listHeader(id, T_BINARY, values.length);
    for (const s of values) {
      const b = utf8.encode(s);
      this.out.varint(b.length);
      this.out.bytes(b);
    }
    return this;
  }

  /** A list field of structs; `body` writes one item's fields. */
  listStruct<T>(id: number, items: readonly T[], body: (w: this, item: T) => void): this {
    this.listHeader(id, T_STRUCT, items.length);
    for (const item of items) this.structBody((w) => body(w, item));
    return this;
  }

  /** Ends the outermost struct (the message itself): its stop byte. */
  end(): Uint8Array {
    this.out.byte(0);
    return this.out.finish();
  }

  private listHeader(id: number, elementType: number, size: number): void {
    this.fieldHeader(id, T_LIST);
    if (size < 15) this.out.byte((size << 4) | elementType);
    else {
      this.out.byte(0xf0 | elementType);
      this.out.varint(size);
    }
  }

  private structBody(body: (w: this) => void): void {
    this.lasts.push(this.last);
    this.last = 0;
    body(this);
    this.out.byte(0);
    this.last = this.lasts.pop()!;
  }
}

/** Zigzag mapping of a safe integer (as a non-negative number, not an int32 bit pattern). */
function zigzag(v: number): number {
  return v >= 0 ? v * 2 : -v * 2 - 1;
}
