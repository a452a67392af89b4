// Parquet value encodings, decoded into typed arrays (numbers, bools) or Arrow-style byte arrays
// (offsets + bytes): PLAIN, DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY,
// BYTE_STREAM_SPLIT. Dictionary indices and levels are hybrid-rle.ts. Every read is bounds-checked
// and throws PageFormatError, never reads past its page.
import { PageFormatError } from './page-header.js';

export type PhysicalType = 'BOOLEAN' | 'INT32' | 'INT64' | 'INT96' | 'FLOAT' | 'DOUBLE' | 'BYTE_ARRAY' | 'FIXED_LEN_BYTE_ARRAY';

/** Variable-length values: value i is bytes[offsets[i], offsets[i+1]). */
export interface ByteValues {
  offsets: Int32Array;
  bytes: Uint8Array;
}

export type NumericValues = Int32Array | BigInt64Array | Float32Array | Float64Array | Uint8Array;
export type Values = NumericValues | ByteValues;

export function isByteValues(v: Values): v is ByteValues {
  return !ArrayBuffer.isView(v);
}

function need(end: number, pos: number, n: number, what: string): void {
  if (pos + n > end) throw new PageFormatError(`${what} runs past the end of its page`);
}

const WIDTH: Record<string, number> = { INT32: 4, INT64: 8, FLOAT: 4, DOUBLE: 8 };

function fixedArray(type: PhysicalType, raw: Uint8Array, n: number): NumericValues {
  // Copy to an aligned buffer (page offsets are arbitrary), then view it.
  const copy = raw.slice();
  switch (type) {
    case 'INT32': return new Int32Array(copy.buffer, 0, n);
    case 'INT64': return new BigInt64Array(copy.buffer, 0, n);
    case 'FLOAT': return new Float32Array(copy.buffer, 0, n);
    case 'DOUBLE': return new Float64Array(copy.buffer, 0, n);
    default: throw new PageFormatError(`no fixed width for ${type}`);
  }
}

/** PLAIN: `n` values from bytes[pos, end); returns the values and the offset after them. */
export function readPlain(bytes: Uint8Array, pos: number, end: number, n: number, type: PhysicalType, typeLength = 0): { values: Values; end: number } {
  if (type === 'BOOLEAN') {
    const len = Math.ceil(n / 8);
    need(end, pos, len, 'PLAIN booleans');
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (bytes[pos + (i >> 3)]! >> (i & 7)) & 1;
    return { values: out, end: pos + len };
  }
  if (type === 'BYTE_ARRAY') {
    const offsets = new Int32Array(n + 1);
    // First pass: lengths (bounds-checked); second: one copy of the value bytes.
    let at = pos;
    let total = 0;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) {
      need(end, at, 4, 'PLAIN byte array length');
      const len = dv.getUint32(at, true);
      at += 4;
      need(end, at, len, 'PLAIN byte array');
      at += len;
      total += len;
      offsets[i + 1] = total;
    }
    const out = new Uint8Array(total);
    at = pos;
    for (let i = 0; i < n; i++) {
      const len = offsets[i + 1]! - offsets[i]!;
      out.set(bytes.subarray(at + 4, at + 4 + len), offsets[i]!);
      at += 4 + len;
    }
    return { values: { offsets, bytes: out }, end: at };
  }
  if (type === 'FIXED_LEN_BYTE_ARRAY') {
    if (!(typeLength > 0)) throw new PageFormatError('FIXED_LEN_BYTE_ARRAY without a type length');
    need(end, pos, n * typeLength, 'PLAIN fixed-length byte arrays');
    const offsets = new Int32Array(n + 1);
    for (let i = 0; i <= n; i++) offsets[i] = i * typeLength;
    return { values: { offsets, bytes: bytes.slice(pos, pos + n * typeLength) }, end: pos + n * typeLength };
  }
  const w = WIDTH[type];
  if (!w) throw new PageFormatError(`PLAIN ${type} is not supported`);
  need(end, pos, n * w, `PLAIN ${type}`);
  return { values: fixedArray(type, bytes.subarray(pos, pos + n * w), n), end: pos + n * w };
}

/** BYTE_STREAM_SPLIT: byte k of value i sits at k * n + i. */
export function readByteStreamSplit(bytes: Uint8Array, pos: number, end: number, n: number, type: PhysicalType, typeLength = 0): Values {
  const w = type === 'FIXED_LEN_BYTE_ARRAY' ? typeLength : WIDTH[type];
  if (!w) throw new PageFormatError(`BYTE_STREAM_SPLIT ${type} is not supported`);
  need(end, pos, n * w, 'BYTE_STREAM_SPLIT values');
  const out = new Uint8Array(n * w);
  for (let k = 0; k < w; k++) {
    const src = pos + k * n;
    for (let i = 0; i < n; i++) out[i * w + k] = bytes[src + i]!;
  }
  if (type === 'FIXED_LEN_BYTE_ARRAY') {
    const offsets = new Int32Array(n + 1);
    for (let i = 0; i <= n; i++) offsets[i] = i * w;
    return { offsets, bytes: out };
  }
  return fixedArray(type, out, n);
}

class Cursor {
  constructor(readonly bytes: Uint8Array, public pos: number, readonly end: number) {}

  byte(): number {
    if (this.pos >= this.end) throw new PageFormatError('delta header runs past the end of its page');
    return this.bytes[this.pos++]!;
  }

  uvar(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new PageFormatError('bad varint in delta header');
  }

  /** Zigzag varint as a BigInt (64-bit first values and min deltas). */
  zigzag64(): bigint {
    let v = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return (v >> 1n) ^ -(v & 1n);
      shift += 7n;
    }
    throw new PageFormatError('bad varint in delta header');
  }
}

/** Unsigned `width`-bit value at bit `bit` from byte `base` (little-endian bit order). */
function bitsAt(bytes: Uint8Array, base: number, bit: number, width: number): number {
  let v = 0;
  const first = base + Math.floor(bit / 8);
  const shift = bit % 8;
  for (let k = 0; k * 8 < shift + width; k++) v += (bytes[first + k] ?? 0) * 2 ** (8 * k);
  return Math.floor(v / 2 ** shift) % 2 ** width;
}

function bitsAt64(bytes: Uint8Array, base: number, bit: number, width: number): bigint {
  if (width <= 32) return BigInt(bitsAt(bytes, base, bit, width));
  const lo = bitsAt(bytes, base, bit, 32);
  const hi = bitsAt(bytes, base, bit + 32, width - 32);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * DELTA_BINARY_PACKED: `n` values (Int32Array for INT32, BigInt64Array for INT64, wrapping as the
 * writer's arithmetic does); returns them and the offset after the last miniblock holding values.
 */
export function readDeltaBinaryPacked(bytes: Uint8Array, pos: number, end: number, n: number, is64: boolean): { values: Int32Array | BigInt64Array; end: number } {
  const c = new Cursor(bytes, pos, end);
  const blockSize = c.uvar();
  const miniblocks = c.uvar();
  const total = c.uvar();
  const first = c.zigzag64();
  if (blockSize === 0 || blockSize % 128 !== 0 || miniblocks === 0 || blockSize % miniblocks !== 0 || (blockSize / miniblocks) % 32 !== 0) {
    throw new PageFormatError(`bad DELTA_BINARY_PACKED block (${blockSize} values, ${miniblocks} miniblocks)`);
  }
  if (total < n) throw new PageFormatError(`DELTA_BINARY_PACKED holds ${total} values, the page needs ${n}`);
  const perMini = blockSize / miniblocks;
  const out32 = is64 ? undefined : new Int32Array(n);
  const out64 = is64 ? new BigInt64Array(n) : undefined;
  if (n === 0) return { values: out32 ?? out64!, end: c.pos };
  let prev64 = first;
  let prev32 = Number(BigInt.asIntN(32, first));
  if (out32) out32[0] = prev32;
  else out64![0] = BigInt.asIntN(64, first);
  let got = 1;
  // Values the stream holds (total), not only those this page reads: the end offset depends on them.
  let left = total - 1;
  while (left > 0) {
    const minDelta = c.zigzag64();
    const min32 = Number(BigInt.asIntN(32, minDelta));
    if (c.pos + miniblocks > c.end) throw new PageFormatError('DELTA_BINARY_PACKED bit widths run past the end of its page');
    const widths = bytes.subarray(c.pos, c.pos + miniblocks);
    c.pos += miniblocks;
    for (let m = 0; m < miniblocks && left > 0; m++) {
      const w = widths[m]!;
      if (w > (is64 ? 64 : 32)) throw new PageFormatError(`DELTA_BINARY_PACKED bit width ${w}`);
      const len = (perMini * w) / 8;
      if (c.pos + len > c.end) throw new PageFormatError('DELTA_BINARY_PACKED miniblock runs past the end of its page');
      const take = Math.min(perMini, left);
      for (let i = 0; i < take; i++) {
        if (got < n) {
          if (out32) {
            const d = w === 0 ? 0 : bitsAt(bytes, c.pos, i * w, w);
            prev32 = (prev32 + min32 + d) | 0;
            out32[got] = prev32;
          } else {
            const d = w === 0 ? 0n : bitsAt64(bytes, c.pos, i * w, w);
            prev64 = BigInt.asIntN(64, prev64 + minDelta + d);
            out64![got] = prev64;
          }
        }
        got++;
      }
      left -= take;
      c.pos += len;
    }
  }
  return { values: out32 ?? out64!, end: c.pos };
}

function lengthsOf(values: Int32Array | BigInt64Array): Int32Array {
  if (values instanceof Int32Array) return values;
  throw new PageFormatError('byte array lengths must be INT32');
}

/** DELTA_LENGTH_BYTE_ARRAY: delta-packed lengths, then the bytes one after another. */
export function readDeltaLengthByteArray(bytes: Uint8Array, pos: number, end: number, n: number): { values: ByteValues; end: number } {
  const lens = readDeltaBinaryPacked(bytes, pos, end, n, false);
  const lengths = lengthsOf(lens.values);
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const l = lengths[i]!;
    if (l < 0) throw new PageFormatError(`negative byte array length ${l}`);
    total += l;
    offsets[i + 1] = total;
  }
  need(end, lens.end, total, 'DELTA_LENGTH_BYTE_ARRAY bytes');
  return { values: { offsets, bytes: bytes.slice(lens.end, lens.end + total) }, end: lens.end + total };
}

/** DELTA_BYTE_ARRAY: value i is the first prefix[i] bytes of value i-1, then its suffix. */
export function readDeltaByteArray(bytes: Uint8Array, pos: number, end: number, n: number): { values: ByteValues; end: number } {
  const pre = readDeltaBinaryPacked(bytes, pos, end, n, false);
  const prefixes = lengthsOf(pre.values);
  const suffixes = readDeltaLengthByteArray(bytes, pre.end, end, n);
  const so = suffixes.values.offsets;
  const offsets = new Int32Array(n + 1);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const p = prefixes[i]!;
    const prevLen = i === 0 ? 0 : offsets[i]! - offsets[i - 1]!;
    if (p < 0 || p > prevLen) throw new PageFormatError(`DELTA_BYTE_ARRAY prefix ${p} longer than the previous value (${prevLen})`);
    total += p + so[i + 1]! - so[i]!;
    offsets[i + 1] = total;
  }
  const out = new Uint8Array(total);
  for (let i = 0; i < n; i++) {
    const p = prefixes[i]!;
    const at = offsets[i]!;
    if (p > 0) out.copyWithin(at, offsets[i - 1]!, offsets[i - 1]! + p);
    out.set(suffixes.values.bytes.subarray(so[i]!, so[i + 1]!), at + p);
  }
  return { values: { offsets, bytes: out }, end: suffixes.end };
}
