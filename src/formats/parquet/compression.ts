// Parquet codecs gpufeed can write: snappy (its own compressor, snappy-compress.ts), gzip from
// node:zlib, zstd only where node:zlib has it (Node >= 22.15), since no zstd compressor is
// installed.
import * as zlib from 'node:zlib';
import { invalidOption } from '../../errors.js';
import { snappyCompress } from './snappy-compress.js';

export type ParquetCompression = 'snappy' | 'zstd' | 'gzip' | 'none';
export const PARQUET_COMPRESSIONS: readonly ParquetCompression[] = ['snappy', 'zstd', 'gzip', 'none'];

/** Parquet's CompressionCodec enum (the footer's ColumnMetaData.codec). */
export const Codec = { UNCOMPRESSED: 0, SNAPPY: 1, GZIP: 2, ZSTD: 6 } as const;

const zstdCompressSync = (zlib as unknown as { zstdCompressSync?: (b: Uint8Array) => Buffer }).zstdCompressSync;

export function zstdAvailable(): boolean {
  return typeof zstdCompressSync === 'function';
}

export interface CodecChoice {
  /** The CompressionCodec enum value the footer records. */
  codec: number;
  /** Compresses one page body (identity for none). */
  compress: (input: Uint8Array) => Uint8Array;
}

/** Validates the --compression option and returns the codec the writer records and applies. */
export function parquetCodec(name: string, option = 'compression'): CodecChoice {
  switch (name) {
    case 'snappy':
      return { codec: Codec.SNAPPY, compress: snappyCompress };
    case 'none':
      return { codec: Codec.UNCOMPRESSED, compress: (b) => b };
    case 'gzip':
      return { codec: Codec.GZIP, compress: (b) => zlib.gzipSync(b, { level: 6 }) };
    case 'zstd':
      if (!zstdCompressSync) {
        throw invalidOption(option, `zstd needs Node >= 22.15 (node:zlib zstd); this is Node ${process.versions.node}. Use snappy, gzip or none`);
      }
      return { codec: Codec.ZSTD, compress: (b) => zstdCompressSync(b) };
    default:
      throw invalidOption(option, `expected one of ${PARQUET_COMPRESSIONS.join(', ')}, got ${JSON.stringify(name)}`);
  }
}
