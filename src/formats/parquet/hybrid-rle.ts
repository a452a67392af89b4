// Parquet's RLE / bit-packed hybrid encoding (levels, dictionary indices, RLE booleans).
import { PageFormatError } from './page-header.js';

/**
 * What a caller of readHybrid learns while it decodes levels: the largest value and how many
 * values equal `key` (a definition level's maximum: the non-null values; a repetition level's 0:
 * the rows). An RLE run adds to both in one step, so a page of levels that are all one value
 * costs no pass over its values.
 */
export interface LevelStats {
  key: number;
  max: number;
  hits: number;
}

export function levelStats(key: number): LevelStats {
  return { key, max: 0, hits: 0 };
}

/**
 * Decodes `count` values of `bitWidth` bits from bytes[start, end) into `out` (from index 0);
 * returns the offset after the last run read. Values past `count` in a last bit-packed group are
 * dropped, as the format allows. With `stats`, the values' maximum and count of `stats.key` are
 * added to it.
 */
export function readHybrid(bytes: Uint8Array, start: number, end: number, bitWidth: number, count: number, out: Uint8Array | Uint16Array | Int32Array | Uint32Array, stats?: LevelStats): number {
  if (bitWidth > 32) throw new PageFormatError(`bit width ${bitWidth} over 32`);
  let pos = start;
  let n = 0;
  const byteWidth = (bitWidth + 7) >> 3;
  while (n < count) {
    if (pos >= end) throw new PageFormatError(`RLE/bit-packed data ends after ${n} of ${count} values`);
    // ULEB128 run header.
    let header = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (pos >= end || i > 5) throw new PageFormatError('bad RLE run header');
      const b = bytes[pos++]!;
      header += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) break;
      mul *= 128;
    }
    if (header % 2 === 0) {
      const run = header / 2;
      if (pos + byteWidth > end) throw new PageFormatError('RLE run value past the end');
      let v = 0;
      for (let i = 0; i < byteWidth; i++) v += bytes[pos + i]! * 2 ** (8 * i);
      pos += byteWidth;
      const stop = Math.min(count, n + run);
      out.fill(v as never, n, stop);
      if (stats && stop > n) {
        if (v > stats.max) stats.max = v;
        if (v === stats.key) stats.hits += stop - n;
      }
      n = stop;
    } else {
      const groups = (header - 1) / 2;
      const values = groups * 8;
      const bytesNeeded = groups * bitWidth;
      if (pos + bytesNeeded > end) throw new PageFormatError('bit-packed run past the end');
      const stop = Math.min(count, n + values);
      const from = n;
      if (bitWidth === 0) {
        // Dictionary indices of a one-entry dictionary (Polars writes them bit-packed, no bytes).
        out.fill(0 as never, n, stop);
        n = stop;
      } else if (bitWidth === 1) {
        for (let i = 0; n < stop; i++) out[n++] = (bytes[pos + (i >> 3)]! >> (i & 7)) & 1;
      } else if (bitWidth <= 24) {
        // shift (< 8) + width fits in the 32 bits of four bytes.
        const mask = (1 << bitWidth) - 1;
        const last = pos + bytesNeeded;
        for (let bit = 0; n < stop; bit += bitWidth) {
          const byte = pos + (bit >>> 3);
          const v = bytes[byte]! | ((byte + 1 < last ? bytes[byte + 1]! : 0) << 8) | ((byte + 2 < last ? bytes[byte + 2]! : 0) << 16) | ((byte + 3 < last ? bytes[byte + 3]! : 0) << 24);
          out[n++] = (v >>> (bit & 7)) & mask;
        }
      } else {
        const mask = bitWidth === 32 ? 0xffffffff : (1 << bitWidth) - 1;
        let bit = 0;
        for (; n < stop; bit += bitWidth) {
          // Gather up to 40 bits starting at `bit` (little-endian bit order).
          const byte = pos + (bit >>> 3);
          const shift = bit & 7;
          let v = 0;
          for (let k = 0, need = shift + bitWidth; k * 8 < need; k++) v += (bytes[byte + k] ?? 0) * 2 ** (8 * k);
          out[n++] = Math.floor(v / 2 ** shift) % 2 ** bitWidth & mask;
        }
      }
      pos += bytesNeeded;
      if (stats) {
        const key = stats.key;
        let max = stats.max;
        let hits = 0;
        for (let i = from; i < stop; i++) {
          const v = out[i]!;
          if (v > max) max = v;
          if (v === key) hits++;
        }
        stats.max = max;
        stats.hits += hits;
      }
    }
  }
  return pos;
}

export function bitWidthOf(max: number): number {
  return 32 - Math.clz32(max);
}
