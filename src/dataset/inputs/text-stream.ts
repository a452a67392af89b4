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
