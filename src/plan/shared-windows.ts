// Window-shuffle chunks shared by every thread of one loader. A chunk (the sorted local offsets of
// one window of key space, shuffle.ts) costs a few thousand hashes and a sort; the decode workers
// claim consecutive batches, so without sharing each of them computes every chunk of the epoch.
// With this store the first thread to need a chunk computes it and the others copy it.
//
// The store is a small direct-mapped table in shared memory. Each entry has a version word (even:
// stable, odd: being written), a key (epoch, partition, chunk) and the chunk: its first delivery
// index, its length and its offsets. Readers copy an entry and keep it only if the version did not
// change meanwhile (a seqlock); every access to shared words is an Atomics operation, so the check
// holds under the JS memory model. A thread that finds its chunk being written waits for it; one
// that finds another chunk in the entry, or waits too long, computes the chunk itself. The store
// is only an accelerator: what a thread uses is always exactly the chunk it would compute.

/** The buffers of a store, as sent to each worker (structured clone shares them). */
export interface SharedWindowBuffers {
  entries: number;
  /** Offsets an entry holds at most. */
  capacity: number;
  /** Per entry: the version word. */
  versions: SharedArrayBuffer;
  /** Per entry: epoch, partition, chunk, first delivery index, length (BigInt64). */
  headers: SharedArrayBuffer;
  /** Per entry: `capacity` Uint32 offsets. */
  offsets: SharedArrayBuffer;
}

/** A chunk as copied out of the store. */
export interface SharedChunk {
  /** Delivery index of the chunk's first sample. */
  start: number;
  offsets: Uint32Array;
}

const HEADER_WORDS = 5;
/** Most bytes of offsets a store takes; a larger window shares nothing (each thread computes). */
export const MAX_SHARED_WINDOW_BYTES = 64 * 2 ** 20;
/** How long a thread waits for another to finish writing its chunk before computing it too. */
const WAIT_MS = 50;

/**
 * Buffers for a store holding `entries` chunks of windows of `window` samples, in partitions of at
 * most `partitionSize` samples; undefined when that would pass MAX_SHARED_WINDOW_BYTES or the
 * offsets would not fit 32 bits.
 */
export function createSharedWindows(window: number, partitionSize: number, entries: number): SharedWindowBuffers | undefined {
  if (!(partitionSize > 0) || partitionSize > 2 ** 32 || entries < 1) return undefined;
  // A chunk holds the positions whose keys fall in one window of key space: they lie within
  // 2w + 2 positions (shuffle.ts), and no more than the partition has.
  const capacity = Math.min(2 * window + 8, partitionSize);
  if (entries * capacity * 4 > MAX_SHARED_WINDOW_BYTES) return undefined;
  const versions = new SharedArrayBuffer(4 * entries);
  const headers = new SharedArrayBuffer(8 * HEADER_WORDS * entries);
  // Every entry starts empty: chunk -1 matches no key.
  const h = new BigInt64Array(headers);
  for (let e = 0; e < entries; e++) h[e * HEADER_WORDS + 2] = -1n;
  return { entries, capacity, versions, headers, offsets: new SharedArrayBuffer(4 * capacity * entries) };
}

/**
 * The store for one loader's window shuffle, or undefined for other shuffles (or windows too large
 * to share). Entries: four per partition this rank reads (its current chunk, the next, and room
 * for a chunk a straddling step still reads), at most 64.
 */
export function sharedWindowsFor(options: { shuffle: string; shuffleWindow: number; partitions?: number }, worldSize: number, samples: number): SharedWindowBuffers | undefined {
  if (options.shuffle !== 'window') return undefined;
  const partitions = options.partitions ?? worldSize;
  const perRank = Math.max(1, Math.ceil(partitions / worldSize));
  return createSharedWindows(options.shuffleWindow, samples, Math.min(64, 4 * perRank));
}

export type ChunkClaim = { kind: 'hit'; chunk: SharedChunk } | { kind: 'mine'; entry: number; version: number } | { kind: 'none' };

export class SharedWindows {
  readonly entries: number;
  readonly capacity: number;
  readonly #versions: Int32Array;
  readonly #headers: BigInt64Array;
  readonly #offsets: Uint32Array;

  constructor(buffers: SharedWindowBuffers) {
    this.entries = buffers.entries;
    this.capacity = buffers.capacity;
    this.#versions = new Int32Array(buffers.versions);
    this.#headers = new BigInt64Array(buffers.headers);
    this.#offsets = new Uint32Array(buffers.offsets);
  }

  /** The entry a chunk lives in: consecutive chunks of a partition in consecutive entries. */
  entryOf(partition: number, chunk: number): number {
    return (chunk + 2 * partition) % this.entries;
  }

  #keyIs(e: number, epoch: number, partition: number, chunk: number): boolean {
    const at = e * HEADER_WORDS;
    return Atomics.load(this.#headers, at + 2) === BigInt(chunk) && Atomics.load(this.#headers, at) === BigInt(epoch) && Atomics.load(this.#headers, at + 1) === BigInt(partition);
  }

  /**
   * The first delivery index and length of a chunk if the store holds it, without copying it or
   * waiting; undefined otherwise.
   */
  peek(epoch: number, partition: number, chunk: number): { start: number; length: number } | undefined {
    if (chunk < 0) return undefined;
    const e = this.entryOf(partition, chunk);
    const v = Atomics.load(this.#versions, e);
    if ((v & 1) !== 0 || !this.#keyIs(e, epoch, partition, chunk)) return undefined;
    const at = e * HEADER_WORDS;
    const start = Number(Atomics.load(this.#headers, at + 3));
    const length = Number(Atomics.load(this.#headers, at + 4));
    return Atomics.load(this.#versions, e) === v ? { start, length } : undefined;
  }

  /**
   * The chunk, copied, when the store holds it (waiting while another thread writes it); else the
   * right to write it ('mine': compute it, then complete or abandon), or 'none' when its entry is
   * taken by another chunk (compute it, and keep it to yourself).
   */
  claim(epoch: number, partition: number, chunk: number): ChunkClaim {
    if (chunk < 0) return { kind: 'none' };
    const e = this.entryOf(partition, chunk);
    const deadline = performance.now() + WAIT_MS;
    // Bounded: each pass either returns or waits for the entry's version to change.
    for (let pass = 0; pass < 64; pass++) {
      const v = Atomics.load(this.#versions, e);
      const ours = this.#keyIs(e, epoch, partition, chunk);
      if ((v & 1) !== 0) {
        // Being written: wait when it is our chunk, else leave the entry to its writer.
        const left = deadline - performance.now();
        if (!ours || left <= 0) return { kind: 'none' };
        Atomics.wait(this.#versions, e, v, left);
        continue;
      }
      if (ours) {
        const got = this.#copy(e, v);
        if (got) return { kind: 'hit', chunk: got };
        continue;
      }
      if (Atomics.compareExchange(this.#versions, e, v, v + 1) === v) {
        const at = e * HEADER_WORDS;
        Atomics.store(this.#headers, at, BigInt(epoch));
        Atomics.store(this.#headers, at + 1, BigInt(partition));
        Atomics.store(this.#headers, at + 2, BigInt(chunk));
        return { kind: 'mine', entry: e, version: v + 1 };
      }
    }
    return { kind: 'none' };
  }

  /** Publishes the chunk a 'mine' claim computed, and wakes the threads waiting for it. */
  complete(claim: { entry: number; version: number }, start: number, offsets: Uint32Array | Float64Array): void {
    const e = claim.entry;
    const at = e * HEADER_WORDS;
    if (offsets.length > this.capacity || !(offsets instanceof Uint32Array)) {
      this.abandon(claim);
      return;
    }
    const base = e * this.capacity;
    for (let i = 0; i < offsets.length; i++) Atomics.store(this.#offsets, base + i, offsets[i]!);
    Atomics.store(this.#headers, at + 3, BigInt(start));
    Atomics.store(this.#headers, at + 4, BigInt(offsets.length));
    Atomics.store(this.#versions, e, claim.version + 1);
    Atomics.notify(this.#versions, e);
  }

  /** Gives up a 'mine' claim (the chunk could not be computed): the entry is empty again. */
  abandon(claim: { entry: number; version: number }): void {
    Atomics.store(this.#headers, claim.entry * HEADER_WORDS + 2, -1n);
    Atomics.store(this.#versions, claim.entry, claim.version + 1);
    Atomics.notify(this.#versions, claim.entry);
  }

  #copy(e: number, v: number): SharedChunk | undefined {
    const at = e * HEADER_WORDS;
    const start = Number(Atomics.load(this.#headers, at + 3));
    const length = Number(Atomics.load(this.#headers, at + 4));
    if (!(length >= 0 && length <= this.capacity)) return undefined;
    const out = new Uint32Array(length);
    const base = e * this.capacity;
    for (let i = 0; i < length; i++) out[i] = Atomics.load(this.#offsets, base + i);
    return Atomics.load(this.#versions, e) === v ? { start, offsets: out } : undefined;
  }
}
