// Parquet's RLE / bit-packed hybrid encoding, the writing half (readHybrid in hybrid-rle.ts reads
// it): repetition and definition levels. A run of 8 or more equal values becomes an RLE run; the
// values between runs are bit-packed in groups of 8. A bit-packed run in the middle of the stream
// must hold whole groups, so the values before a long run are topped up to a multiple of 8 from
// the run itself; only the last group of the stream is padded (readers stop at the value count).
import type { ByteSink } from './byte-sink.js';

/** Appends the hybrid encoding of `values` (each below 2^bitWidth, bitWidth 1..8) to `out`. */
export function writeHybrid(out: ByteSink, values: Uint8Array, bitWidth: number): void {
  if (!(bitWidth >= 1 && bitWidth <= 8)) throw new RangeError(`hybrid RLE: bit width ${bitWidth} outside 1..8`);
  const n = values.length;
  let packStart = 0; // values[packStart, i) wait to be bit-packed
  let i = 0;
  while (i < n) {
    const v = values[i]!;
    let j = i + 1;
    while (j < n && values[j] === v) j++;
    const topUp = (8 - ((i - packStart) % 8)) % 8;
    if (j - i >= 8 + topUp) {
      const runStart = i + topUp;
      if (runStart > packStart) writePacked(out, values, packStart, runStart, bitWidth);
      out.varint((j - runStart) * 2);
      out.byte(v);
      packStart = j;
    }
    i = j;
  }
  if (packStart < n) writePacked(out, values, packStart, n, bitWidth);
}

/** One bit-packed run of values[start, end), least significant bit first, zero-padded to a group of 8. */
function writePacked(out: ByteSink, values: Uint8Array, start: number, end: number, bitWidth: number): void {
  const groups = Math.ceil((end - start) / 8);
  out.varint(groups * 2 + 1);
  const bytes = groups * bitWidth;
  const buf = out.reserve(bytes);
  const base = out.length;
  buf.fill(0, base, base + bytes);
  if (bitWidth === 1) {
    for (let k = start; k < end; k++) buf[base + ((k - start) >> 3)]! |= values[k]! << ((k - start) & 7);
  } else {
    let bit = 0;
    for (let k = start; k < end; k++, bit += bitWidth) {
      const v = values[k]!;
      const at = base + (bit >> 3);
      const shift = bit & 7;
      buf[at]! |= (v << shift) & 0xff;
      if (shift + bitWidth > 8) buf[at + 1]! |= v >> (8 - shift);
    }
  }
  out.length += bytes;
}
