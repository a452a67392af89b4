// Decimals as float64 (the documented mapping, both routes): the nearest double to
// unscaled / 10^scale, the value Python's float(Decimal) gives. One function for prep and the
// decode workers, so the two routes agree bit for bit.

/** 2^53: below it an integer is exact as a double. */
const EXACT = 2 ** 53;

/** The nearest double to x / 10^scale (x the unscaled integer). */
export function decimalToFloat64(x: bigint, scale: number): number {
  const n = Number(x);
  // Both operands exact (|x| < 2^53, 10^s exact up to 10^22): one correctly rounded division.
  if (Number.isSafeInteger(n) && Math.abs(n) < EXACT) {
    if (scale >= 0 && scale <= 22) return n / 10 ** scale;
    if (scale < 0 && scale >= -22) return n * 10 ** -scale;
  }
  // Otherwise parse the exact decimal string: JS's number parsing rounds correctly.
  return Number(`${x}e${-scale}`);
}

/** The unscaled integer stored as `length` big-endian two's complement bytes (Parquet FIXED_LEN_BYTE_ARRAY / BYTE_ARRAY decimals). */
export function bigEndianInteger(bytes: Uint8Array, start: number, length: number): bigint {
  if (length === 0) return 0n;
  if (length <= 6) {
    // Fits a double exactly: no BigInt per byte.
    let v = 0;
    for (let i = 0; i < length; i++) v = v * 256 + bytes[start + i]!;
    if (bytes[start]! & 0x80) v -= 2 ** (8 * length);
    return BigInt(v);
  }
  let x = 0n;
  for (let i = 0; i < length; i++) x = (x << 8n) | BigInt(bytes[start + i]!);
  if (bytes[start]! & 0x80) x -= 1n << BigInt(length * 8);
  return x;
}

/** The unscaled integer stored as `length` little-endian two's complement bytes (Arrow Decimal32/64/128/256). */
export function littleEndianInteger(bytes: Uint8Array, start: number, length: number): bigint {
  let x = 0n;
  for (let i = length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[start + i]!);
  if (length > 0 && bytes[start + length - 1]! & 0x80) x -= 1n << BigInt(length * 8);
  return x;
}

/**
 * `count` Arrow decimals of `width` bytes each from src[srcStart..] into doubles at out[outStart..]
 * (bytes, little-endian float64, as the slot holds them).
 */
export function arrowDecimalsToFloat64(src: Uint8Array, srcStart: number, count: number, width: number, scale: number, out: Uint8Array, outStart: number): void {
  const view = new DataView(out.buffer, out.byteOffset + outStart, count * 8);
  const sv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let i = 0; i < count; i++) {
    const at = srcStart + i * width;
    let x: bigint;
    if (width >= 8) {
      // Fast path: the upper words are only sign extension of the low 64 bits (most values).
      const lo = sv.getBigInt64(at, true);
      let extends64 = true;
      const fill = lo < 0n ? 0xff : 0;
      for (let k = 8; k < width && extends64; k++) extends64 = src[at + k] === fill;
      x = extends64 ? lo : littleEndianInteger(src, at, width);
    } else {
      x = BigInt(width === 4 ? sv.getInt32(at, true) : Number(littleEndianInteger(src, at, width)));
    }
    view.setFloat64(i * 8, decimalToFloat64(x, scale), true);
  }
}

/** A decimal value as one of hyparquet's unannotated readings (int32 number, int64 bigint, or bytes) as a double. */
export function storedDecimalToFloat64(v: unknown, scale: number): number {
  const x = v instanceof Uint8Array ? bigEndianInteger(v, 0, v.length) : BigInt(v as number | bigint);
  return decimalToFloat64(x, scale);
}
