// Loads the native addon (native/build/Release/gpufeed_native.node) once per thread, lazily, so
// that importing gpufeed never fails on a machine where only the pure-JS parts are used.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ErrorCodes, GpufeedError } from '../errors.js';
import { packageRoot } from '../package-root.js';
import type { MemoryKind, MemoryStatus } from './types.js';

export interface NativeSlab {
  id: number;
  bytes: number;
  fd: number;
  kind: MemoryKind;
  views: number;
  pinError?: string;
  cudaError?: string;
}

/** What the addon reports; the wrapper adds the page size. */
export type NativeStatus = Omit<MemoryStatus, 'pageSize'>;

/** 0: no locking, 1: mlock only, 2: CUDA registration, then mlock. */
export type PinMode = 0 | 1 | 2;

/** The addon's surface. Arguments are validated by the callers in this folder. */
export interface NativeBinding {
  pageSize(): number;
  alloc(bytes: number, pinMode: PinMode): NativeSlab;
  free(id: number): void;
  info(id: number): NativeSlab | undefined;
  status(probeCuda: boolean): NativeStatus;
  attach(id: number): ArrayBuffer;
  detach(view: ArrayBuffer): boolean;
  pread(fdOrPath: number | string, fileOffset: number, slabId: number, slabOffset: number, length: number): number;
  /** runs: [fd, fileOffset, targetOffset, length] x count; target: a slab id or a buffer. */
  preadRuns(runs: Float64Array, count: number, target: number | Uint8Array): number;
  copy(dstId: number, dstOffset: number, srcId: number, srcOffset: number, length: number): void;
  claimOnce(key: string): boolean;
  /** flags: 1 MAP_POPULATE, 2 MADV_RANDOM, 4 MADV_WILLNEED. */
  mapFile(pathOrFd: string | number, flags: number): { mapId: number; size: number };
  unmapFile(mapId: number): void;
  /**
   * runs: [fileOffset, targetOffset, length] x count; target: a slab id or a buffer. Throws code
   * GPUFEED_SHARD_CORRUPT (with run, fileOffset, signal) when the file shrank under the mapping.
   */
  copyRunsFromMap(mapId: number, runs: Float64Array, count: number, target: number | Uint8Array): number;
  mapStatus(): { handles: number; mappings: number; bytes: number };
  /** zlib's crc32 of a range of a mapping, read in place under the fault guard (map-checksum.ts). */
  crc32FromMap(mapId: number, offset: number, length: number): number;
  /** zlib's crc32(seed, bytes); kind 0 the fastest, 1 table, 2 pclmul, 3 avx512, 4 avx2 (for the tests). */
  crc32(bytes: Uint8Array, seed?: number, kind?: number): number;
  crc32Kind(): string;
  /** Whether the addon was built with libjpeg (the JPEG fast path, native/src/jpeg-crop.cc). */
  jpegCropAvailable(): boolean;
  /**
   * Decodes a JPEG's crop box resized to size x size RGB uint8 into dst (flags: 1 flip, 2 CHW).
   * Returns the DCT scaling used, 0 when the fast path does not decode this JPEG; throws code
   * GPUFEED_BAD_INPUT when it does not decode. Validated by src/transforms/jpeg-fast.ts.
   */
  jpegCropResize(input: Uint8Array, dst: Uint8Array, width: number, height: number, left: number, top: number, boxWidth: number, boxHeight: number, size: number, flags: number, maxDenom: number, denomGap: number): number;
}

let binding: NativeBinding | undefined;

export function addonPath(): string {
  return join(packageRoot(), 'native', 'build', 'Release', 'gpufeed_native.node');
}

export function loadNative(): NativeBinding {
  if (binding) return binding;
  const path = addonPath();
  try {
    binding = createRequire(join(packageRoot(), 'package.json'))(path) as NativeBinding;
  } catch (err) {
    throw new GpufeedError(
      ErrorCodes.NATIVE,
      `cannot load the native addon at ${path} (build it with \`npm install\` or \`npx node-gyp rebuild --directory native\`): ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  return binding;
}

/** Turns an error thrown by the addon (plain Error with code/slabId/syscall/errno) into a GpufeedError. */
export function fromNative(err: unknown, option?: string): GpufeedError {
  if (err instanceof GpufeedError) return err;
  const e = (err ?? {}) as { code?: unknown; message?: unknown; slabId?: unknown; syscall?: unknown; errno?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const details: Record<string, unknown> = {};
  if (typeof e.slabId === 'number') details.slabId = e.slabId;
  if (typeof e.syscall === 'string') details.syscall = e.syscall;
  if (typeof e.errno === 'number') details.errno = e.errno;
  // A failed read from a file map (the file shrank under it): the caller names the shard.
  if (e.code === ErrorCodes.SHARD_CORRUPT) {
    const f = err as { run?: unknown; fileOffset?: unknown; signal?: unknown };
    if (typeof f.run === 'number') details.run = f.run;
    if (typeof f.fileOffset === 'number') details.fileOffset = f.fileOffset;
    if (typeof f.signal === 'string') details.signal = f.signal;
    return new GpufeedError(ErrorCodes.SHARD_CORRUPT, message, details, { cause: err });
  }
  if (e.code === ErrorCodes.INVALID_OPTION) {
    if (option) details.option = option;
    return new GpufeedError(ErrorCodes.INVALID_OPTION, option ? `option ${option}: ${message}` : message, details, { cause: err });
  }
  return new GpufeedError(ErrorCodes.NATIVE, message, details, { cause: err });
}
