// How footer readers reach a file: one ranged read at a time, whatever holds the bytes.
export type RangeReader = (offset: number, length: number) => Promise<Uint8Array>;

/** A RangeReader over bytes already in memory. */
export function bytesRangeReader(bytes: Uint8Array): RangeReader {
  return async (offset, length) => bytes.subarray(offset, offset + length);
}
