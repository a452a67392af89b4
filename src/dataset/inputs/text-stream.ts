// Opens a text input as a byte stream, gunzipping `.gz`, and counts the raw bytes read.
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { ErrorCodes, GpufeedError } from '../../errors.js';
import type { InputFile } from './source.js';

export interface CountingStream {
  stream: AsyncIterable<Buffer>;
  bytesRead(): number;
}

export function openTextStream(file: InputFile): CountingStream {
  const raw = createReadStream(file.path, { highWaterMark: 1 << 20 });
  let read = 0;
  raw.on('data', (chunk: Buffer | string) => {
    read += chunk.length;
  });
  let stream: Readable = raw;
  if (file.gzip) {
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    stream = raw.pipe(gunzip);
  }
  const wrapped = async function* (): AsyncIterable<Buffer> {
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR' || code === 'ERR_INVALID_ARG_TYPE') {
        throw new GpufeedError(ErrorCodes.BAD_INPUT, `${file.path}: not valid gzip data (${(err as Error).message})`, { path: file.path }, { cause: err });
      }
      throw err;
    } finally {
      raw.destroy();
    }
  };
  return { stream: wrapped(), bytesRead: () => read };
}

/**
 * Byte offset of the first byte in `buf[start, end)` that is not part of valid UTF-8 (overlong
 * forms, surrogates and values past U+10FFFF included), or -1. A sequence cut off by `end` counts
 * as invalid: callers pass whole lines or a whole chunk tail they know is complete.
 */
export function firstInvalidUtf8(buf: Uint8Array, start = 0, end = buf.length): number {
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return i;
    if (i + need >= end) return i;
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}
