// Element types in memory: which typed array holds each dtype, and value ranges for checks.
import type { DType } from './types.js';

export type TypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

type TypedArrayCtor = { new (n: number): TypedArray; new (buf: ArrayBufferLike, offset: number, length: number): TypedArray; BYTES_PER_ELEMENT: number };

/** bool is one byte per value (0/1) in memory; float16 its 16 bits; strings and binary are raw UTF-8/bytes. */
export const TYPED_ARRAY: Record<DType, TypedArrayCtor> = {
  int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
  float16: Uint16Array, float32: Float32Array, float64: Float64Array, bool: Uint8Array, string: Uint8Array, binary: Uint8Array,
};

export function isBigIntDType(d: DType): d is 'int64' | 'uint64' {
  return d === 'int64' || d === 'uint64';
}

export function isIntegerDType(d: DType): boolean {
  return d.startsWith('int') || d.startsWith('uint');
}

/** Inclusive range of integer dtypes held as JS numbers (64-bit ones are checked as BigInt). */
export const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
};

export const INT64_RANGE: Record<'int64' | 'uint64', [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

export const ALL_DTYPES: readonly DType[] = [
  'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float16', 'float32', 'float64', 'bool', 'string', 'binary',
];
