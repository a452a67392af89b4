// Public shapes of the memory subsystem. Slabs are named by id: threads and processes exchange
// ids and offsets, never buffers.

/** How a slab's pages are held: registered with CUDA, mlock'ed, or ordinary pageable memory. */
export type MemoryKind = 'cuda' | 'mlock' | 'pageable';

export interface SlabInfo {
  /** Process-wide id, never reused within a process. */
  id: number;
  /** Size in bytes, a multiple of the page size. */
  bytes: number;
  /** memfd descriptor; another process maps the slab by opening `/proc/<pid>/fd/<fd>`. */
  fd: number;
  /** This process's pid, for the `/proc/<pid>/fd/<fd>` path. */
  pid: number;
  kind: MemoryKind;
  /** `kind !== 'pageable'`. */
  pinned: boolean;
  /** Why locking was refused, when it was asked for and `pinned` is false. */
  pinError?: string;
  /** Why CUDA registration failed when the driver was present (the slab then fell back to mlock). */
  cudaError?: string;
}

export interface AllocOptions {
  /** Page-lock the slab. Default: true, unless the environment sets `GPUFEED_PIN=0`. */
  pin?: boolean;
  /** Try CUDA host registration first. Default: true, unless `GPUFEED_CUDA=0`. */
  cuda?: boolean;
}

export interface MemoryStatus {
  /** Live (not freed) slabs, their bytes, and how many of those bytes are page-locked. */
  slabs: number;
  bytes: number;
  pinnedBytes: number;
  /** Freed slabs still mapped because some thread has not detached its view yet. */
  pendingSlabs: number;
  pendingBytes: number;
  /** Attached views, all threads together. */
  views: number;
  /** libcuda.so.1 opened, cuInit succeeded and device 0's primary context is retained. */
  cudaAvailable: boolean;
  cudaError?: string;
  /** RLIMIT_MEMLOCK soft limit in bytes; null when unlimited. */
  memlockLimit: number | null;
  pageSize: number;
}
