// CRC-32 in the addon: the piece checks of the decode workers (pipeline/piece-check.ts). zlib's
// polynomial and convention, so the value equals node:zlib's crc32 and the manifests' crc32 fields
// (dataset/piece-checksum.ts); the addon folds 64 or 256 bytes per step with carry-less multiplies
// (about 38 GB/s per core with AVX-512 on the dev host, against 4 GB/s for node:zlib's; 32 bytes
// per multiply with AVX2 and VPCLMULQDQ on CPUs without AVX-512). On the
// mmap read path it hashes a piece where it lies in the mapping, with no copy, under the same
// fault guard as the gather copies: a file truncated under it is GPUFEED_SHARD_CORRUPT.
import { invalidOption } from '../errors.js';
import { fromNative, loadNative } from './native.js';

/** The addon's implementations; 'auto' is the fastest this CPU runs. */
export const CRC32_KINDS = ['auto', 'table', 'pclmul', 'avx512', 'avx2'] as const;
export type Crc32Kind = (typeof CRC32_KINDS)[number];

function checkLength(option: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalidOption(option, `must be a non-negative safe integer, got ${String(v)}`);
  return v;
}

/**
 * zlib's crc32 of bytes [offset, offset + length) of file map `mapId`. A range outside the
 * mapping is GPUFEED_INVALID_OPTION (option range); a file that shrank under the mapping (a fault
 * while hashing, or found shorter after) is GPUFEED_SHARD_CORRUPT with fileOffset and signal; the
 * caller names the shard. Synchronous: for worker threads.
 */
export function crc32FromMap(mapId: number, offset: number, length: number): number {
  if (typeof mapId !== 'number' || !Number.isInteger(mapId) || mapId < 1 || mapId > 0x7fffffff) throw invalidOption('mapId', `must be a file map id (integer from 1), got ${String(mapId)}`);
  checkLength('offset', offset);
  checkLength('length', length);
  try {
    return loadNative().crc32FromMap(mapId, offset, length);
  } catch (err) {
    throw fromNative(err, /^file map \d+ is not mapped/.test(String((err as { message?: unknown })?.message)) ? 'mapId' : 'range');
  }
}

/** zlib's crc32(seed, bytes) in the addon, with the given implementation (one this CPU lacks is GPUFEED_INVALID_OPTION). */
export function nativeCrc32(bytes: Uint8Array, seed = 0, kind: Crc32Kind = 'auto'): number {
  if (!(bytes instanceof Uint8Array)) throw invalidOption('bytes', 'must be a Uint8Array');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw invalidOption('seed', `must be an integer from 0 to 2^32-1, got ${String(seed)}`);
  const k = CRC32_KINDS.indexOf(kind);
  if (k < 0) throw invalidOption('kind', `must be one of ${CRC32_KINDS.join(', ')}, got ${String(kind)}`);
  try {
    return loadNative().crc32(bytes, seed, k);
  } catch (err) {
    throw fromNative(err, 'kind');
  }
}

/** The implementation 'auto' picks on this CPU: 'avx512-vpclmul', 'avx2-vpclmul', 'pclmul' or 'table'. */
export function nativeCrc32Kind(): string {
  return loadNative().crc32Kind();
}
