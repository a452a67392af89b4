// Read-only file mappings and gather copies from them (mmap + memcpy): the "one copy from a
// mapping" read path. A shuffled batch's rows are one memcpy each, from the page cache's pages
// straight into a (pinned) slab, with no system call per row.
//
// A file truncated while mapped does not kill the process: the addon's copies run under a SIGBUS
// guard and check the file's size afterwards, so a copy that met the new end (a fault, or the
// zeros past it in its last page) fails with GPUFEED_SHARD_CORRUPT (details: run, fileOffset,
// signal) and the target's bytes are void. The caller names the shard (native/README.md).
import { invalidOption } from '../errors.js';
import { fromNative, loadNative } from './native.js';

/** Numbers per run in a copyRunsFromMap array: fileOffset, targetOffset, length. */
export const MAP_RUN_FIELDS = 3;

export interface MapOptions {
  /** MAP_POPULATE: fault in every page (of what the page cache holds) at map time. Default false. */
  populate?: boolean;
  /** madvise for the whole mapping. Default 'normal' (none). */
  advice?: 'normal' | 'random' | 'willneed';
}

export interface FileMap {
  /** Process-wide handle id, never reused; any thread may copy from it. */
  mapId: number;
  /** File size in bytes at map time (the mapping's length). */
  size: number;
}

export interface FileMapStatus {
  /** Live handles (mapFile calls not yet unmapped), all threads. */
  handles: number;
  /** Distinct mappings behind them (one per file), and their bytes. */
  mappings: number;
  bytes: number;
}

/** The read path of the decode workers: 'mmap' (gather copies from a mapping) or 'pread'. */
export type ReadMode = 'mmap' | 'pread';

/** GPUFEED_READ, else mmap on Linux and pread elsewhere. */
export function defaultReadMode(): ReadMode {
  const env = process.env.GPUFEED_READ?.trim().toLowerCase();
  if (env === 'pread' || env === 'mmap') return env;
  if (env) throw invalidOption('GPUFEED_READ', `must be mmap or pread, got ${JSON.stringify(process.env.GPUFEED_READ)}`);
  return process.platform === 'linux' ? 'mmap' : 'pread';
}

function checkMapId(option: string, id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0x7fffffff) {
    throw invalidOption(option, `must be a file map id (integer from 1), got ${String(id)}`);
  }
  return id;
}

function checkRuns(runs: unknown, count: unknown): void {
  if (!(runs instanceof Float64Array)) throw invalidOption('runs', `must be a Float64Array of [fileOffset, targetOffset, length] runs, got ${Object.prototype.toString.call(runs)}`);
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count * MAP_RUN_FIELDS > runs.length) {
    throw invalidOption('count', `must be an integer from 0 to ${Math.floor(runs.length / MAP_RUN_FIELDS)} (runs holds ${runs.length} numbers, ${MAP_RUN_FIELDS} per run), got ${String(count)}`);
  }
}

/** The option a native copy error is about: the map, the slab, or (by default) a run. */
function copyError(err: unknown): Error {
  const message = String((err as { message?: unknown })?.message ?? '');
  return fromNative(err, /^file map \d+ is not mapped/.test(message) ? 'mapId' : /^slab \d+ is not allocated/.test(message) ? 'slabId' : 'runs');
}

/** Maps a whole file (a path, or an open descriptor: the mapping then holds the file, the fd may be closed). */
export function mapFile(file: string | number, opts: MapOptions = {}): FileMap {
  if (typeof file === 'string') {
    if (file.length === 0 || file.includes('\0')) throw invalidOption('path', 'must be a non-empty path');
  } else if (typeof file !== 'number' || !Number.isInteger(file) || file < 0 || file > 0x7fffffff) {
    throw invalidOption('path', `must be a path or an open file descriptor, got ${String(file)}`);
  }
  if (opts.populate !== undefined && typeof opts.populate !== 'boolean') throw invalidOption('populate', `must be a boolean, got ${String(opts.populate)}`);
  const advice = opts.advice ?? 'normal';
  if (advice !== 'normal' && advice !== 'random' && advice !== 'willneed') throw invalidOption('advice', `must be normal, random or willneed, got ${String(advice)}`);
  const flags = (opts.populate ? 1 : 0) | (advice === 'random' ? 2 : advice === 'willneed' ? 4 : 0);
  try {
    return loadNative().mapFile(file, flags);
  } catch (err) {
    const e = fromNative(err, 'path');
    if (typeof file === 'string') e.details.path = file;
    throw e;
  }
}

/** Releases a handle; the mapping goes with its file's last handle (once no copy is in progress). */
export function unmapFile(mapId: number): void {
  checkMapId('mapId', mapId);
  try {
    loadNative().unmapFile(mapId);
  } catch (err) {
    throw fromNative(err, 'mapId');
  }
}

/**
 * Copies run i (`runs[3i .. 3i+2]` = fileOffset, slabOffset, length) from the mapped file into
 * slab `slabId`: one memcpy per run, one native call for all. Every run is checked against the
 * mapping and the slab before anything is copied (a bad run is GPUFEED_INVALID_OPTION naming its
 * index). Returns the bytes copied (the sum of the lengths). A file that shrank under its mapping
 * is GPUFEED_SHARD_CORRUPT (the slab's bytes are then void). Synchronous: for worker threads.
 */
export function copyRunsFromMap(mapId: number, runs: Float64Array, count: number, slabId: number): number {
  checkMapId('mapId', mapId);
  checkRuns(runs, count);
  if (typeof slabId !== 'number' || !Number.isInteger(slabId) || slabId < 1 || slabId > 0x7fffffff) {
    throw invalidOption('slabId', `must be a slab id (integer from 1), got ${String(slabId)}`, { slabId });
  }
  if (count === 0) return 0;
  try {
    return loadNative().copyRunsFromMap(mapId, runs, count, slabId);
  } catch (err) {
    throw copyError(err);
  }
}

/** copyRunsFromMap into an ordinary buffer (targetOffset counts from `target`'s first byte). */
export function copyRunsFromMapIntoBuffer(mapId: number, runs: Float64Array, count: number, target: Uint8Array): number {
  checkMapId('mapId', mapId);
  checkRuns(runs, count);
  if (!(target instanceof Uint8Array)) throw invalidOption('target', 'must be a Uint8Array');
  if (count === 0) return 0;
  try {
    return loadNative().copyRunsFromMap(mapId, runs, count, target);
  } catch (err) {
    throw copyError(err);
  }
}

/** File maps of the whole process (all threads). */
export function fileMapStatus(): FileMapStatus {
  return loadNative().mapStatus();
}
