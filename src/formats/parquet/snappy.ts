// Snappy decompression (the raw format Parquet uses, no framing), in plain JS into an array of
// the page's exact size: hyparquet-compressors' WASM build grows its memory to the largest page a
// worker ever saw and keeps it, so a writer's 50 MB single-page chunk would pin 100 MB per worker.
import { PageFormatError } from './page-header.js';

/**
 * The `size` bytes `input` holds; with `stopAt` < size, only its first `stopAt` bytes (the levels
 * at the head of a page, without the values behind them), checked as far as it read.
 */
export function snappyDecompress(input: Uint8Array, size: number, stopAt = size): Uint8Array {
  let pos = 0;
  let declared = 0;
  for (let shift = 1; ; shift *= 128) {
    if (pos >= input.length || shift > 2 ** 35) throw new PageFormatError('snappy: bad length preamble');
    const b = input[pos++]!;
    declared += (b & 0x7f) * shift;
    if (b < 0x80) break;
  }
  if (declared !== size) throw new PageFormatError(`snappy: stream holds ${declared} bytes, the page header says ${size}`);
  const limit = Math.min(stopAt, size);
  const out = new Uint8Array(limit);
  let o = 0;
  const n = input.length;
  while (pos < n && o < limit) {
    const tag = input[pos++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let len = tag >>> 2;
      if (len >= 60) {
        const extra = len - 59;
        if (pos + extra > n) throw new PageFormatError('snappy: literal length past the end');
        len = 0;
        for (let k = 0; k < extra; k++) len += input[pos + k]! * 2 ** (8 * k);
        pos += extra;
      }
      len += 1;
      if (pos + len > n || o + len > size) throw new PageFormatError('snappy: literal past the end');
      const take = Math.min(len, limit - o);
      out.set(input.subarray(pos, pos + take), o);
      pos += len;
      o += take;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      if (pos + 1 > n) throw new PageFormatError('snappy: copy past the end');
      len = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | input[pos++]!;
    } else if (kind === 2) {
      if (pos + 2 > n) throw new PageFormatError('snappy: copy past the end');
      len = 1 + (tag >>> 2);
      offset = input[pos]! | (input[pos + 1]! << 8);
      pos += 2;
    } else {
      if (pos + 4 > n) throw new PageFormatError('snappy: copy past the end');
      len = 1 + (tag >>> 2);
      offset = (input[pos]! | (input[pos + 1]! << 8) | (input[pos + 2]! << 16) | (input[pos + 3]! << 24)) >>> 0;
      pos += 4;
    }
    if (offset === 0 || offset > o || o + len > size) throw new PageFormatError('snappy: bad copy');
    // A copy is at most 64 bytes: a loop costs less than a call, and handles the overlapping case
    // (offset < len repeats the last `offset` bytes) as it is.
    const stop = Math.min(o + len, limit);
    for (; o < stop; o++) out[o] = out[o - offset]!;
  }
  if (o !== limit) throw new PageFormatError(`snappy: stream ends after ${o} of ${size} bytes`);
  return out;
}
