// Parquet codecs gpufeed can write. hyparquet-writer has snappy built in; gzip comes from node:zlib;
// zstd only where node:zlib has it (Node >= 22.15), since no zstd compressor is installed.
import * as zlib from 'node:zlib';
import type { CompressionCodec } from 'hyparquet';
import { invalidOption } from '../../errors.js';

export type ParquetCompression = 'snappy' | 'zstd' | 'gzip' | 'none';
export const PARQUET_COMPRESSIONS: readonly ParquetCompression[] = ['snappy', 'zstd', 'gzip', 'none'];

type Compressor = (input: Uint8Array) => Uint8Array;

const zstdCompressSync = (zlib as unknown as { zstdCompressSync?: (b: Uint8Array) => Buffer }).zstdCompressSync;

export function zstdAvailable(): boolean {
  return typeof zstdCompressSync === 'function';
}

export interface CodecChoice {
  codec: CompressionCodec;
  compressors: Partial<Record<CompressionCodec, Compressor>>;
}

/** Validates the --compression option and returns what hyparquet-writer needs for it. */
export function parquetCodec(name: string, option = 'compression'): CodecChoice {
  switch (name) {
    case 'snappy':
      return { codec: 'SNAPPY', compressors: {} };
    case 'none':
      return { codec: 'UNCOMPRESSED', compressors: {} };
    case 'gzip':
      return { codec: 'GZIP', compressors: { GZIP: (b) => zlib.gzipSync(b, { level: 6 }) } };
    case 'zstd':
      if (!zstdCompressSync) {
        throw invalidOption(option, `zstd needs Node >= 22.15 (node:zlib zstd); this is Node ${process.versions.node}. Use snappy, gzip or none`);
      }
      return { codec: 'ZSTD', compressors: { ZSTD: (b) => zstdCompressSync(b) } };
    default:
      throw invalidOption(option, `expected one of ${PARQUET_COMPRESSIONS.join(', ')}, got ${JSON.stringify(name)}`);
  }
}
