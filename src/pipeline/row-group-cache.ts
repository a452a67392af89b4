// Decoded Parquet column chunks shared by all decode workers of a loader. With a window shuffle,
// consecutive batches go to different workers and draw rows from the same few row groups; with a
// per-worker cache each worker would decode every row group of the window. Here one worker decodes
// a (shard, row group, column) chunk into a shared entry and every worker copies rows out of it.
//
// Only flat columns (parquet-flat.ts: fixed-shape and scalar numeric, no nulls) live here; anything
// else, or a chunk that does not fit an entry, takes the per-worker path (parquet-unit.ts).
//
// Entries have a fixed size (the largest flat chunk of the selected columns) and a state:
// EMPTY -> DECODING (claimed by one worker with the table lock held) -> READY (or NOT_FLAT: the
// chunk cannot decode flat; workers fall back without trying again). Readers are counted per
// entry; only an entry nobody reads, least recently used, is reused for another chunk. The lock
// only guards the table (a few word reads and writes); decoding and copying run without it.
import type { ManifestV1 } from '../dataset/types.js';
import type { OrderOptions } from '../plan/index.js';
import type { BatchLayout, ColumnRegion } from './batch-layout.js';

export const EMPTY = 0;
export const DECODING = 1;
export const READY = 2;
export const NOT_FLAT = 3;

/** Header words: the table lock, the use clock, chunk decodes (a counter for tests and stats). */
const LOCK = 0;
const CLOCK = 1;
const DECODES = 2;
const HEADER = 4;

/** Words per entry. */
const STATE = 0;
const READERS = 1;
const SHARD = 2;
const UNIT = 3;
const COLUMN = 4;
const BYTES = 5;
const LAST_USE = 6;
const ENTRY_WORDS = 8;

/** Upper bound on the shared cache's bytes. */
export const MAX_SHARED_CACHE_BYTES = 256 * 1024 * 1024;

export interface RowGroupCacheBuffers {
  entries: number;
  entryBytes: number;
  meta: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** Dtypes parquet-flat.ts can decode flat (the values are the stored bits). */
const FLAT_DTYPES = new Set(['int32', 'uint32', 'int64', 'uint64', 'float32', 'float64']);

/** Whether a column may decode flat (the chunk itself decides in the end). */
export function mayBeFlat(region: ColumnRegion): boolean {
  return (region.kind === 'fixed' || region.kind === 'scalar') && FLAT_DTYPES.has(region.dtype) && region.rowBytes > 0;
}

/**
 * Sizes a shared cache for a loader, or returns undefined when none is worth it (no Parquet shards,
 * no flat columns, or chunks too large to keep enough of them under the bound). Entries: the row
 * groups (of average size) two shuffle windows span, plus two, per flat column, plus one per
 * worker; bounded by `maxBytes`.
 */
export function planRowGroupCache(
  manifest: ManifestV1, layout: BatchLayout, order: Pick<OrderOptions, 'shuffle' | 'shuffleWindow'>, workers: number,
  maxBytes = MAX_SHARED_CACHE_BYTES,
): { entries: number; entryBytes: number } | undefined {
  const flat = layout.columns.filter(mayBeFlat);
  if (flat.length === 0) return undefined;
  let maxRows = 0;
  let rows = 0;
  let groupCount = 0;
  for (const s of manifest.shards) {
    if (s.format !== 'parquet' || s.layout.kind !== 'parquet') continue;
    for (const rg of s.layout.rowGroups) {
      if (rg.rows <= 0) continue;
      maxRows = Math.max(maxRows, rg.rows);
      rows += rg.rows;
      groupCount += 1;
    }
  }
  if (maxRows === 0) return undefined;
  const entryBytes = Math.ceil((maxRows * Math.max(...flat.map((c) => c.rowBytes))) / 8) * 8;
  // Row groups of average size (a shard's small last group counts as part of one).
  const meanRows = rows / groupCount;
  const groups = order.shuffle === 'none' ? 2 : order.shuffle === 'window' ? Math.ceil((2 * order.shuffleWindow) / meanRows) + 2 : Infinity;
  const fit = Math.floor(maxBytes / entryBytes);
  const entries = Math.min(fit, groups * flat.length + workers);
  // Too few entries to hold what the workers decode at once: the per-worker path is better.
  if (entries < workers + 2) return undefined;
  return { entries, entryBytes };
}

export function createRowGroupCache(entries: number, entryBytes: number): RowGroupCacheBuffers {
  return {
    entries, entryBytes,
    meta: new SharedArrayBuffer((HEADER + entries * ENTRY_WORDS) * 4),
    data: new SharedArrayBuffer(entries * entryBytes),
  };
}

/** What acquire found: a READY entry (read its bytes, then release it), or the chunk must be decoded elsewhere. */
export type Acquired = { entry: number; bytes: Uint8Array } | 'fallback';

/** A worker's view of a shared cache. */
export class RowGroupCache {
  readonly entries: number;
  readonly entryBytes: number;
  readonly buffers: RowGroupCacheBuffers;
  readonly #meta: Int32Array;

  constructor(buffers: RowGroupCacheBuffers) {
    this.buffers = buffers;
    this.entries = buffers.entries;
    this.entryBytes = buffers.entryBytes;
    this.#meta = new Int32Array(buffers.meta);
  }

  /** Bytes of decoded data the cache can hold (its bound). */
  get capacityBytes(): number {
    return this.buffers.data.byteLength;
  }

  /** Chunks decoded into the cache so far (by every worker). */
  get decodes(): number {
    return Atomics.load(this.#meta, DECODES);
  }

  /** Bytes held by READY entries now. */
  get usedBytes(): number {
    let n = 0;
    for (let e = 0; e < this.entries; e++) if (Atomics.load(this.#meta, this.#at(e) + STATE) === READY) n += Atomics.load(this.#meta, this.#at(e) + BYTES);
    return n;
  }

  #at(e: number): number {
    return HEADER + e * ENTRY_WORDS;
  }

  #lock(): void {
    const m = this.#meta;
    for (let spins = 0; Atomics.compareExchange(m, LOCK, 0, 1) !== 0; spins++) {
      if (spins > 64) Atomics.wait(m, LOCK, 1, 0.05);
    }
  }

  #unlock(): void {
    Atomics.store(this.#meta, LOCK, 0);
    Atomics.notify(this.#meta, LOCK, 1);
  }

  /**
   * The decoded bytes of (shard, unit, column). When no worker has them yet, this one decodes
   * them with `decode` (into the entry's memory, `entryBytes` at most; it returns the bytes
   * written, or undefined when the chunk cannot decode flat); when another worker is decoding
   * them, waits for it. 'fallback': decode it yourself (not flat, or no entry free).
   * `stopped` ends a wait early (the loader is closing).
   */
  acquire(shard: number, unit: number, column: number, decode: (into: SharedArrayBuffer, offset: number, bytes: number) => number | undefined, stopped: () => boolean): Acquired {
    const m = this.#meta;
    for (let timeout = 0.05; ; timeout = Math.min(2, timeout * 2)) {
      this.#lock();
      let found = -1;
      for (let e = 0; e < this.entries; e++) {
        const a = this.#at(e);
        if (m[a + STATE] !== EMPTY && m[a + SHARD] === shard && m[a + UNIT] === unit && m[a + COLUMN] === column) {
          found = e;
          break;
        }
      }
      if (found >= 0) {
        const a = this.#at(found);
        const state = m[a + STATE];
        if (state === READY) {
          Atomics.add(m, a + READERS, 1);
          m[a + LAST_USE] = ++m[CLOCK]!;
          this.#unlock();
          return { entry: found, bytes: new Uint8Array(this.buffers.data, found * this.entryBytes, m[a + BYTES]) };
        }
        this.#unlock();
        if (state === NOT_FLAT) return 'fallback';
        // DECODING by another worker: its decode is synchronous and waits on nothing, so it ends.
        if (stopped()) return 'fallback';
        Atomics.wait(m, a + STATE, DECODING, timeout);
        continue;
      }
      // Not here: claim the least recently used entry nobody reads (EMPTY ones first).
      let victim = -1;
      let oldest = Infinity;
      for (let e = 0; e < this.entries; e++) {
        const a = this.#at(e);
        const state = m[a + STATE];
        if (state === DECODING || Atomics.load(m, a + READERS) !== 0) continue;
        const use = state === EMPTY ? -1 : m[a + LAST_USE]!;
        if (use < oldest) {
          oldest = use;
          victim = e;
        }
      }
      if (victim < 0) {
        this.#unlock();
        return 'fallback';
      }
      const a = this.#at(victim);
      m[a + SHARD] = shard;
      m[a + UNIT] = unit;
      m[a + COLUMN] = column;
      m[a + BYTES] = 0;
      m[a + LAST_USE] = ++m[CLOCK]!;
      Atomics.store(m, a + STATE, DECODING);
      this.#unlock();
      let bytes: number | undefined;
      try {
        bytes = decode(this.buffers.data, victim * this.entryBytes, this.entryBytes);
      } catch (err) {
        this.#settle(a, EMPTY, 0);
        throw err;
      }
      if (bytes === undefined) {
        this.#settle(a, NOT_FLAT, 0);
        return 'fallback';
      }
      Atomics.add(m, DECODES, 1);
      Atomics.add(m, a + READERS, 1);
      this.#settle(a, READY, bytes);
      return { entry: victim, bytes: new Uint8Array(this.buffers.data, victim * this.entryBytes, bytes) };
    }
  }

  #settle(a: number, state: number, bytes: number): void {
    const m = this.#meta;
    this.#lock();
    m[a + BYTES] = bytes;
    Atomics.store(m, a + STATE, state);
    this.#unlock();
    Atomics.notify(m, a + STATE);
  }

  /** Done reading an entry acquire returned. */
  release(entry: number): void {
    Atomics.sub(this.#meta, this.#at(entry) + READERS, 1);
  }
}
