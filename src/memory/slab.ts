// The slab API: allocate, view, detach, free, and fill slabs. Validation lives here (messages name
// the argument and the slab id); the addon trusts what it gets, apart from memory-safety checks.
//
// Lifetime: a slab's memory is unmapped once it is freed AND every thread that attached a view has
// detached it (detachSlab, freeSlab in that thread, or the thread's exit). Until then views stay
// valid, so a worker never reads unmapped memory; but a freed slab's bytes are no longer owned.
import { constants as bufferConstants } from 'node:buffer';
import { ErrorCodes, invalidOption } from '../errors.js';
import { fromNative, loadNative, type NativeSlab, type PinMode } from './native.js';
import type { AllocOptions, MemoryStatus, SlabInfo } from './types.js';

// One view per slab per thread. Kept on globalThis (which is per thread) rather than in module
// state, so two copies of this module in one thread (src/ under tsx and dist/) share it.
const VIEWS_KEY = Symbol.for('gpufeed.memory.views');
function views(): Map<number, ArrayBuffer> {
  const g = globalThis as { [VIEWS_KEY]?: Map<number, ArrayBuffer> };
  return (g[VIEWS_KEY] ??= new Map());
}

const MAX_SLAB_ID = 0x7fffffff;

function checkSlabId(option: string, id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > MAX_SLAB_ID) {
    throw invalidOption(option, `must be a slab id (integer from 1), got ${String(id)}`, { slabId: id });
  }
  return id;
}

function checkUint(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidOption(option, `must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

function envOff(name: string): boolean {
  const v = process.env[name];
  return v !== undefined && /^(0|false|off|no)$/i.test(v.trim());
}

function toInfo(s: NativeSlab): SlabInfo {
  const info: SlabInfo = { id: s.id, bytes: s.bytes, fd: s.fd, pid: process.pid, kind: s.kind, pinned: s.kind !== 'pageable' };
  if (s.pinError !== undefined) info.pinError = s.pinError;
  if (s.cudaError !== undefined) info.cudaError = s.cudaError;
  return info;
}

/** The page size slabs are rounded to. */
export function pageSize(): number {
  return loadNative().pageSize();
}

/**
 * Largest slab: one view must cover it, and Node 20 caps an ArrayBuffer over external memory at
 * buffer.constants.MAX_LENGTH (4 GiB).
 */
export function maxSlabBytes(): number {
  const page = pageSize();
  return Math.floor(Math.min(bufferConstants.MAX_LENGTH, Number.MAX_SAFE_INTEGER) / page) * page;
}

/** Allocates a shared-memory slab of at least `bytes` (rounded up to the page size), page-locked unless told otherwise. */
export function allocSlab(bytes: number, opts: AllocOptions = {}): SlabInfo {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 1) {
    throw invalidOption('bytes', `must be a positive safe integer, got ${String(bytes)}`);
  }
  if (opts === null || typeof opts !== 'object') throw invalidOption('opts', 'must be an object');
  if (opts.pin !== undefined && typeof opts.pin !== 'boolean') throw invalidOption('pin', `must be a boolean, got ${String(opts.pin)}`);
  if (opts.cuda !== undefined && typeof opts.cuda !== 'boolean') throw invalidOption('cuda', `must be a boolean, got ${String(opts.cuda)}`);
  const native = loadNative();
  const page = native.pageSize();
  const rounded = Math.ceil(bytes / page) * page;
  const max = maxSlabBytes();
  if (rounded > max) throw invalidOption('bytes', `${bytes} exceeds the largest slab, ${max} bytes`, { max });

  // Explicit options win over the environment, which is the user's switch for a whole job.
  const pin = opts.pin ?? !envOff('GPUFEED_PIN');
  const cuda = opts.cuda ?? !envOff('GPUFEED_CUDA');
  const mode: PinMode = !pin ? 0 : cuda ? 2 : 1;

  let slab: NativeSlab;
  try {
    slab = native.alloc(rounded, mode);
  } catch (err) {
    throw fromNative(err, 'bytes');
  }
  const info = toInfo(slab);
  if (pin && !info.pinned && native.claimOnce('pinned-fallback')) {
    // Once per process (the claim is native, shared by all threads): the job still runs, slower.
    process.emitWarning(`gpufeed: slab memory could not be page-locked, using pageable memory (${info.pinError ?? 'unknown reason'}); raise \`ulimit -l\` or grant CAP_IPC_LOCK, or set GPUFEED_PIN=0 to silence this`, {
      code: 'GPUFEED_PINNED_FALLBACK',
    });
  }
  if (info.cudaError !== undefined && native.claimOnce('cuda-register-failed')) {
    process.emitWarning(`gpufeed: CUDA host registration failed, slabs fall back to mlock (${info.cudaError})`, { code: 'GPUFEED_CUDA_REGISTER_FAILED' });
  }
  return info;
}

/**
 * This thread's view of a slab: the whole slab as one ArrayBuffer over the shared mapping (no
 * copy), attached on first use and cached. Another thread calls slabView with the same id to get
 * its own view of the same bytes.
 */
export function slabView(id: number): ArrayBuffer {
  checkSlabId('id', id);
  const cache = views();
  const cached = cache.get(id);
  // A zero-length cached view was detached behind our back (e.g. transferred); attach afresh.
  if (cached && cached.byteLength > 0) return cached;
  let view: ArrayBuffer;
  try {
    view = loadNative().attach(id);
  } catch (err) {
    throw fromNative(err, 'id');
  }
  cache.set(id, view);
  return view;
}

/**
 * Drops this thread's view of a slab (a no-op when there is none). The ArrayBuffer and every typed
 * array over it become zero-length at once; the memory goes when the slab is freed and no thread
 * holds a view.
 */
export function detachSlab(id: number): void {
  checkSlabId('id', id);
  const cache = views();
  const view = cache.get(id);
  if (!view) return;
  cache.delete(id);
  try {
    loadNative().detach(view);
  } catch (err) {
    throw fromNative(err, 'id');
  }
}

/**
 * Frees a slab: new views can no longer be attached, and this thread's own view is detached.
 * Views other threads still hold stay valid until they detach (or exit).
 */
export function freeSlab(id: number): void {
  checkSlabId('id', id);
  try {
    loadNative().free(id);
  } catch (err) {
    throw fromNative(err, 'id');
  }
  detachSlab(id);
}

/** A live slab's description; undefined once freed (or for an id never allocated). */
export function slabInfo(id: number): SlabInfo | undefined {
  checkSlabId('id', id);
  const s = loadNative().info(id);
  return s ? toInfo(s) : undefined;
}

/** Totals over the whole process (all threads). The first call may initialise CUDA. */
export function memoryStatus(): MemoryStatus {
  const native = loadNative();
  // Probing means cuInit; skip it where the user turned pinning or CUDA off.
  const probe = !envOff('GPUFEED_PIN') && !envOff('GPUFEED_CUDA');
  const st = native.status(probe);
  const out: MemoryStatus = {
    slabs: st.slabs,
    bytes: st.bytes,
    pinnedBytes: st.pinnedBytes,
    pendingSlabs: st.pendingSlabs,
    pendingBytes: st.pendingBytes,
    views: st.views,
    cudaAvailable: st.cudaAvailable,
    memlockLimit: st.memlockLimit,
    pageSize: native.pageSize(),
  };
  if (st.cudaError !== undefined) out.cudaError = st.cudaError;
  else if (!probe) out.cudaError = 'not probed: GPUFEED_PIN=0 or GPUFEED_CUDA=0';
  return out;
}

function liveSlab(option: string, id: number): NativeSlab {
  const s = loadNative().info(id);
  if (!s) throw invalidOption(option, `slab ${id} is not allocated (already freed, or never allocated)`, { slabId: id });
  return s;
}

function checkRange(slab: NativeSlab, offOption: string, offset: number, length: number): void {
  if (offset + length > slab.bytes) {
    throw invalidOption(offOption, `range [${offset}, ${offset + length}) is outside slab ${slab.id} (${slab.bytes} bytes)`, {
      slabId: slab.id,
      range: [offset, offset + length],
    });
  }
}

/**
 * Reads `length` bytes of a file, from `fileOffset`, straight into a slab at `slabOffset`: one copy,
 * kernel to (pinned) memory. `file` is an open descriptor or a path. Returns the bytes read, fewer
 * than `length` only at end of file. Synchronous: call it from a worker thread.
 */
export function preadIntoSlab(file: number | string, fileOffset: number, slabId: number, slabOffset: number, length: number): number {
  if (typeof file === 'string') {
    if (file.length === 0 || file.includes('\0')) throw invalidOption('file', 'must be a non-empty path');
  } else if (typeof file !== 'number' || !Number.isInteger(file) || file < 0 || file > 0x7fffffff) {
    throw invalidOption('fd', `must be an open file descriptor or a path, got ${String(file)}`);
  }
  checkUint('fileOffset', fileOffset);
  checkSlabId('slabId', slabId);
  checkUint('slabOffset', slabOffset);
  checkUint('length', length);
  checkRange(liveSlab('slabId', slabId), 'slabOffset', slabOffset, length);
  if (length === 0) return 0;
  try {
    return loadNative().pread(file, fileOffset, slabId, slabOffset, length);
  } catch (err) {
    const e = fromNative(err, 'slabId');
    if (e.code === ErrorCodes.NATIVE && typeof file === 'string') e.details.path = file;
    throw e;
  }
}

/** Numbers per run in a preadRuns array: fd, fileOffset, targetOffset, length. */
export const PREAD_RUN_FIELDS = 4;

function checkRuns(runs: unknown, count: unknown): number {
  if (!(runs instanceof Float64Array)) throw invalidOption('runs', `must be a Float64Array of [fd, fileOffset, targetOffset, length] runs, got ${Object.prototype.toString.call(runs)}`);
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count * PREAD_RUN_FIELDS > runs.length) {
    throw invalidOption('count', `must be an integer from 0 to ${Math.floor(runs.length / PREAD_RUN_FIELDS)} (runs holds ${runs.length} numbers, ${PREAD_RUN_FIELDS} per run), got ${String(count)}`);
  }
  return count;
}

/**
 * Many reads in one native call: run i (`runs[4i .. 4i+3]` = fd, fileOffset, slabOffset, length)
 * reads `length` bytes of file `fd` at `fileOffset` into the slab at `slabOffset`, kernel to slab,
 * one copy. Every run is checked against the slab before anything is read (a bad run throws
 * GPUFEED_INVALID_OPTION naming its index). Returns the bytes read: less than the sum of the
 * lengths only when a run reached end of file, where reading stopped (see shortRun). Synchronous:
 * call it from a worker thread. The array shape is checked here; the addon checks every value.
 */
export function preadRunsIntoSlab(runs: Float64Array, count: number, slabId: number): number {
  checkRuns(runs, count);
  checkSlabId('slabId', slabId);
  if (count === 0) return 0;
  try {
    return loadNative().preadRuns(runs, count, slabId);
  } catch (err) {
    throw fromNative(err, 'runs');
  }
}

/** preadRunsIntoSlab into an ordinary buffer (targetOffset counts from `target`'s first byte). */
export function preadRunsIntoBuffer(runs: Float64Array, count: number, target: Uint8Array): number {
  checkRuns(runs, count);
  if (!(target instanceof Uint8Array)) throw invalidOption('target', 'must be a Uint8Array');
  if (count === 0) return 0;
  try {
    return loadNative().preadRuns(runs, count, target);
  } catch (err) {
    throw fromNative(err, 'runs');
  }
}

/**
 * After a preadRuns call returned `got` bytes: the index of the run that ended short (it reached
 * end of file), or -1 when every run was read in full.
 */
export function shortRun(runs: Float64Array, count: number, got: number): number {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    sum += runs[i * PREAD_RUN_FIELDS + 3]!;
    if (sum > got) return i;
  }
  return -1;
}

/** memmove between two slabs, or within one (overlap allowed), without a view in this thread. */
export function copySlab(dstId: number, dstOffset: number, srcId: number, srcOffset: number, length: number): void {
  checkSlabId('dstId', dstId);
  checkUint('dstOffset', dstOffset);
  checkSlabId('srcId', srcId);
  checkUint('srcOffset', srcOffset);
  checkUint('length', length);
  checkRange(liveSlab('dstId', dstId), 'dstOffset', dstOffset, length);
  checkRange(liveSlab('srcId', srcId), 'srcOffset', srcOffset, length);
  if (length === 0) return;
  try {
    loadNative().copy(dstId, dstOffset, srcId, srcOffset, length);
  } catch (err) {
    throw fromNative(err, 'dstId');
  }
}
