// Page decompression: node:zlib for gzip and brotli (native), snappy.ts for snappy,
// hyparquet-compressors' public export for zstd, lz4 and lz4_raw.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { compressors as jsCompressors } from 'hyparquet-compressors';
import { PageFormatError } from './page-header.js';
import { snappyDecompress } from './snappy.js';

/** Column chunk codecs as hyparquet's metadata names them. */
export type Codec = 'UNCOMPRESSED' | 'SNAPPY' | 'GZIP' | 'LZO' | 'BROTLI' | 'LZ4' | 'ZSTD' | 'LZ4_RAW';

type Decompress = (input: Uint8Array, outputLength: number) => Uint8Array;

const table: Record<string, Decompress | undefined> = {
  ...(jsCompressors as Record<string, Decompress>),
  GZIP: (input) => new Uint8Array(gunzipSync(input)),
  BROTLI: (input) => new Uint8Array(brotliDecompressSync(input)),
  SNAPPY: snappyDecompress,
};

/** Decompresses one page body to exactly `size` bytes. */
export function decompress(codec: Codec, input: Uint8Array, size: number): Uint8Array {
  if (codec === 'UNCOMPRESSED') {
    if (input.length !== size) throw new PageFormatError(`uncompressed page has ${input.length} bytes, its header says ${size}`);
    return input;
  }
  const fn = table[codec];
  if (!fn) throw new PageFormatError(`codec ${codec} is not supported`);
  let out: Uint8Array;
  try {
    out = fn(input, size);
  } catch (err) {
    throw new PageFormatError(`${codec} page does not decompress: ${(err as Error).message}`);
  }
  if (out.length !== size) throw new PageFormatError(`${codec} page decompresses to ${out.length} bytes, its header says ${size}`);
  return out;
}
