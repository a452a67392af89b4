// Decoded Parquet column pieces shared by all decode workers of a loader. With a window shuffle,
// consecutive batches go to different workers and draw rows from the same few row groups; with a
// per-worker cache each worker would decode every row group of the window. Here one worker decodes
// a piece (a flat column chunk, or one page of a variable-length column) into a shared entry and
// every worker copies rows out of it.
//
// Each entry takes exactly the bytes of its own piece from one shared arena (a small 8 KB label
// chunk takes 8 KB, not the size of the largest chunk). The arena's size comes from the plan (what
// a shuffle window keeps live: its row groups x the selected columns) within the loader's
// `decodeCacheBytes` budget (planDecodeCache).
//
// Entries have a state: EMPTY -> DECODING (claimed by one worker with the table lock held) -> READY
// (or NOT_FLAT: the piece cannot decode here; workers fall back without trying again). Readers are
// counted per entry; only an entry nobody reads, least recently used, is evicted to make room. The
// lock only guards the table (word reads and writes, a scan of the extents on a miss); decoding and
// copying run without it.
import type { FileMetaData } from 'hyparquet';
import type { ManifestV1, ParquetLayout } from '../../dataset/types.js';
import type { OrderOptions } from '../../plan/index.js';
import { isVariableLength, type BatchLayout, type ColumnRegion } from '../../pipeline/batch-layout.js';

export const EMPTY = 0;
export const DECODING = 1;
export const READY = 2;
export const NOT_FLAT = 3;

/** Header words: the table lock, the use clock, piece decodes, evictions (counters for tests and stats). */
const LOCK = 0;
const CLOCK = 1;
const DECODES = 2;
const EVICTIONS = 3;
const HEADER = 4;

/** Words per entry. */
const STATE = 0;
const READERS = 1;
const SHARD = 2;
const UNIT = 3;
const COLUMN = 4;
const PART = 5;
const OFFSET = 6;
const SIZE = 7;
const BYTES = 8;
const LAST_USE = 9;
const ENTRY_WORDS = 10;

const columnIds = new WeakMap<FileMetaData, Map<string, number>>();

/**
 * The cache's key for column `name` of a shard: the position of its first column chunk in the
 * file's row groups (the file's leaf order), or -1 when the file has none. A property of the file,
 * so the same in every batch layout (a slot's, an image stage's staging one, a one-off) and every
 * worker; a column's index in a layout is not (two layouts' column 0 are different columns).
 */
export function cacheColumnId(metadata: FileMetaData, name: string): number {
  let ids = columnIds.get(metadata);
  if (!ids) columnIds.set(metadata, (ids = new Map()));
  let id = ids.get(name);
  if (id === undefined) {
    id = metadata.row_groups[0]?.columns.findIndex((c) => c.meta_data?.path_in_schema[0] === name) ?? -1;
    ids.set(name, id);
  }
  return id;
}

/** Default budget of the shared cache: what the plan needs, up to this. */
export const DEFAULT_DECODE_CACHE_BYTES = 1024 * 1024 * 1024;

/** Arena offsets are 8-aligned so every typed array can view an entry. */
const ALIGN = 8;
const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

export interface RowGroupCacheBuffers {
  /** Table slots. */
  entries: number;
  /** Arena bytes. */
  arenaBytes: number;
  meta: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** Dtypes parquet-flat.ts can decode flat (the values are the stored bits). */
const FLAT_DTYPES = new Set(['int32', 'uint32', 'int64', 'uint64', 'float32', 'float64']);

/** Whether a column may decode flat (the chunk itself decides in the end). */
export function mayBeFlat(region: ColumnRegion): boolean {
  return (region.kind === 'fixed' || region.kind === 'scalar') && FLAT_DTYPES.has(region.dtype) && region.rowBytes > 0;
}

/** Whether a column's pieces can be shared at all: flat chunks, or pages of variable-length columns. */
export function mayShare(region: ColumnRegion): boolean {
  return mayBeFlat(region) || isVariableLength(region.kind);
}

export interface DecodeCachePlan {
  entries: number;
  arenaBytes: number;
  /** Bytes the plan keeps live at once (may exceed arenaBytes). */
  needBytes: number;
  /** Set when the working set does not fit the budget: say so once. */
  warning?: string;
}

/**
 * Sizes the shared cache for a loader, or returns undefined when there is nothing to share (no
 * Parquet shards, no shareable columns). The working set: the row groups (of average size) two
 * shuffle windows span, plus two per worker (one it reads, one it reads ahead), never more than
 * the dataset has, times the decoded bytes of a row of the selected columns (variable-length ones
 * estimated from maxRowBytes and the column's compressed bytes per row). The arena is that, bounded by `budget`; the table has a slot per piece
 * (pages of variable-length columns counted generously) and never limits what the arena can hold.
 */
export function planDecodeCache(
  manifest: ManifestV1, layout: BatchLayout, order: Pick<OrderOptions, 'shuffle' | 'shuffleWindow'>, workers: number,
  budget = DEFAULT_DECODE_CACHE_BYTES,
): DecodeCachePlan | undefined {
  const shared = layout.columns.filter(mayShare);
  if (shared.length === 0) return undefined;
  let rows = 0;
  let groupCount = 0;
  let maxRows = 0;
  let bytes = 0;
  const varRowBytes = new Map<string, number>();
  for (const s of manifest.shards) {
    if (s.format !== 'parquet' || s.layout.kind !== 'parquet') continue;
    for (const rg of s.layout.rowGroups) {
      if (rg.rows <= 0) continue;
      rows += rg.rows;
      groupCount += 1;
      maxRows = Math.max(maxRows, rg.rows);
    }
    bytes += s.bytes;
    for (const c of shared) {
      if (!isVariableLength(c.kind)) continue;
      // Decoded bytes per row: no more than the largest row; the column's own compressed bytes per
      // row x 4 as a guess of the mean (the estimate only sizes the arena; entries take what they
      // need). The whole shard's bytes per row stand in only where the layout has no per-chunk
      // sizes: they count every other column too (a short text column beside 8 KiB token rows
      // was sized at 32 KiB a row, an arena that held the whole dataset).
      const perRow = Math.min(s.maxRowBytes?.[c.name] ?? Infinity, (4 * columnBytes(s.layout, c.name, s.bytes)) / Math.max(1, s.rows)) + 4;
      varRowBytes.set(c.name, Math.max(varRowBytes.get(c.name) ?? 0, Number.isFinite(perRow) ? perRow : 64));
    }
  }
  if (groupCount === 0) return undefined;
  const meanRows = rows / groupCount;
  const windowGroups = order.shuffle === 'none' ? 2 : order.shuffle === 'window' ? Math.ceil((2 * order.shuffleWindow) / meanRows) + 2 : groupCount;
  // One more row group per worker for a worker's read ahead (parquet-unit.ts) beside the one it reads.
  const groups = Math.min(groupCount, windowGroups + 2 * workers);
  const rowBytes = shared.reduce((a, c) => a + (isVariableLength(c.kind) ? varRowBytes.get(c.name) ?? 64 : c.rowBytes), 0);
  const needBytes = alignUp(Math.ceil(groups * Math.max(meanRows, Math.min(maxRows, meanRows * 2)) * rowBytes));
  // Pages: a few per variable-length column chunk, bounded by the compressed bytes (>= 8 KiB a page).
  const varColumns = shared.filter((c) => isVariableLength(c.kind)).length;
  const pagesPerChunk = varColumns === 0 ? 0 : Math.min(4096, Math.ceil(bytes / groupCount / (8 * 1024)) + 1);
  const entries = Math.max(16, Math.min(1 << 16, groups * (shared.length - varColumns + varColumns * pagesPerChunk) + 2 * workers));
  const arenaBytes = Math.max(ALIGN, Math.min(needBytes, alignUp(budget)));
  const plan: DecodeCachePlan = { entries, arenaBytes, needBytes };
  if (needBytes > budget) {
    plan.warning = `gpufeed: the shuffle plan keeps about ${mib(needBytes)} of decoded Parquet columns live (${groups} row groups x ${shared.length} columns), more than decodeCacheBytes (${mib(budget)}); pieces that do not fit are decoded again when they are needed. Raise the loader option decodeCacheBytes, shrink shuffleWindow or select fewer columns.`;
  }
  return plan;
}

/** Compressed bytes of a column's chunks in a Parquet shard (`whole` when the layout does not list chunks). */
function columnBytes(layout: ParquetLayout, column: string, whole: number): number {
  let n = 0;
  for (const rg of layout.rowGroups) {
    if (!rg.chunks) return whole;
    for (const c of rg.chunks) if (c.column === column) n += c.bytes;
  }
  return n;
}

function mib(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(0)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

export function createRowGroupCache(entries: number, arenaBytes: number): RowGroupCacheBuffers {
  return {
    entries, arenaBytes,
    meta: new SharedArrayBuffer((HEADER + entries * ENTRY_WORDS) * 4),
    data: new SharedArrayBuffer(alignUp(arenaBytes)),
  };
}

/** What acquire found: the piece's bytes (entry -1: decoded for this caller only, nothing to release), or decode it elsewhere. */
export type Acquired = { entry: number; bytes: Uint8Array } | 'fallback';

/** Where a decode with a known size writes. */
export interface DecodeTarget {
  buffer: SharedArrayBuffer;
  offset: number;
  bytes: number;
}

/**
 * How to decode a piece. With `size`, the decoder writes into the entry (`into`, `size` bytes) and
 * returns the bytes written; without, it decodes into its own memory and returns the bytes, which
 * the cache copies into an entry of exactly that size. Either returns undefined when the piece
 * cannot decode this way.
 */
export type PieceDecoder =
  | { size: number; decode: (into: DecodeTarget) => number | undefined }
  | { size?: undefined; decode: () => Uint8Array | SizedPiece | undefined };

/** A piece decoded as far as its size: `write` fills `bytes` bytes of `into` (saves a copy of a large piece). */
export interface SizedPiece {
  bytes: number;
  write: (into: Uint8Array) => void;
}

function materialize(p: Uint8Array | SizedPiece): Uint8Array {
  if (p instanceof Uint8Array) return p;
  const out = new Uint8Array(p.bytes);
  p.write(out);
  return out;
}

/**
 * What acquire does when another worker is decoding the piece: wait (undefined), give up
 * ('never': 'fallback' at once, for a read ahead), or run this first, once, then wait.
 */
export type Waiting = undefined | 'never' | (() => void);

/** A worker's view of a shared cache. */
export class RowGroupCache {
  readonly entries: number;
  readonly buffers: RowGroupCacheBuffers;
  readonly #meta: Int32Array;
  /** Per column, the last piece too large for the arena, decoded for this worker alone (one each at most). */
  readonly #own = new Map<number, { key: string; bytes: Uint8Array }>();
  /** Piece key -> the entry this worker last found it in (checked before use: entries are reused). */
  readonly #hints = new Map<string, number>();

  constructor(buffers: RowGroupCacheBuffers) {
    this.buffers = buffers;
    this.entries = buffers.entries;
    this.#meta = new Int32Array(buffers.meta);
  }

  /** Bytes of decoded data the cache can hold (its bound). */
  get capacityBytes(): number {
    return this.buffers.arenaBytes;
  }

  /** Pieces decoded into the cache so far (by every worker). */
  get decodes(): number {
    return Atomics.load(this.#meta, DECODES);
  }

  /** Entries evicted to make room so far. */
  get evictions(): number {
    return Atomics.load(this.#meta, EVICTIONS);
  }

  /** Bytes held by READY entries now. */
  get usedBytes(): number {
    // Under the table lock: unlocked, a scan could count an entry, then (past an eviction that
    // gave its extent to a later entry) that later entry too, and read more than the arena holds.
    this.#lock();
    try {
      let n = 0;
      for (let e = 0; e < this.entries; e++) if (Atomics.load(this.#meta, this.#at(e) + STATE) === READY) n += Atomics.load(this.#meta, this.#at(e) + BYTES);
      return n;
    } finally {
      this.#unlock();
    }
  }

  #at(e: number): number {
    return HEADER + e * ENTRY_WORDS;
  }

  // The table lock: 0 free, 1 held, 2 held with a waiter. An unlock wakes a thread only when one
  // may be waiting (a wake is a system call; taken on every cache hit, it cost 7-8% of a worker).
  #lock(): void {
    const m = this.#meta;
    for (let spins = 0; spins < 64; spins++) if (Atomics.compareExchange(m, LOCK, 0, 1) === 0) return;
    // Contended: say so (2) before sleeping; the timeout bounds a wait whatever happens.
    while (Atomics.exchange(m, LOCK, 2) !== 0) Atomics.wait(m, LOCK, 2, 1);
  }

  #unlock(): void {
    if (Atomics.exchange(this.#meta, LOCK, 0) === 2) Atomics.notify(this.#meta, LOCK, 1);
  }

  #matches(e: number, shard: number, unit: number, column: number, part: number): boolean {
    const m = this.#meta;
    const a = this.#at(e);
    return m[a + STATE] !== EMPTY && m[a + SHARD] === shard && m[a + UNIT] === unit && m[a + COLUMN] === column && m[a + PART] === part;
  }

  /** Lock held. Where this worker last found the piece is checked first (a table can hold thousands of pages). */
  #find(shard: number, unit: number, column: number, part: number, key: string): number {
    const hint = this.#hints.get(key);
    if (hint !== undefined && this.#matches(hint, shard, unit, column, part)) return hint;
    for (let e = 0; e < this.entries; e++) {
      if (this.#matches(e, shard, unit, column, part)) {
        if (this.#hints.size >= 4 * this.entries) this.#hints.clear();
        this.#hints.set(key, e);
        return e;
      }
    }
    return -1;
  }

  /** The entry unread and least recently used, or -1. EMPTY slots first when `emptyFirst`. */
  #victim(emptyFirst: boolean, withBytes: boolean): number {
    const m = this.#meta;
    let victim = -1;
    let oldest = Infinity;
    for (let e = 0; e < this.entries; e++) {
      const a = this.#at(e);
      const state = m[a + STATE]!;
      if (state === EMPTY) {
        if (emptyFirst) return e;
        continue;
      }
      if (state === DECODING || Atomics.load(m, a + READERS) !== 0) continue;
      if (withBytes && m[a + SIZE] === 0) continue;
      if (m[a + LAST_USE]! < oldest) {
        oldest = m[a + LAST_USE]!;
        victim = e;
      }
    }
    return victim;
  }

  /** First gap of `size` bytes between the extents of live entries, or -1. Lock held. */
  #gap(size: number): number {
    const m = this.#meta;
    const extents: [number, number][] = [];
    for (let e = 0; e < this.entries; e++) {
      const a = this.#at(e);
      if (m[a + STATE] !== EMPTY && m[a + SIZE]! > 0) extents.push([m[a + OFFSET]!, m[a + SIZE]!]);
    }
    extents.sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [off, len] of extents) {
      if (off - at >= size) return at;
      at = Math.max(at, off + len);
    }
    return this.buffers.arenaBytes - at >= size ? at : -1;
  }

  /** Room for `size` bytes: evicts unread entries, least recently used first. -1 when it cannot. Lock held. */
  #allocate(size: number): number {
    if (size > this.buffers.arenaBytes) return -1;
    for (;;) {
      const at = this.#gap(size);
      if (at >= 0) return at;
      const v = this.#victim(false, true);
      if (v < 0) return -1;
      Atomics.store(this.#meta, this.#at(v) + STATE, EMPTY);
      Atomics.add(this.#meta, EVICTIONS, 1);
    }
  }

  /**
   * A piece this worker acquired before from table slot `entry`, read again: counts a reader (to
   * release as after acquire) and returns the piece's offset in the arena, or -1 when the slot
   * holds something else now (then acquire it). Saves the key and lookup of acquire for a caller
   * that reads one piece run after run.
   */
  reacquire(entry: number, shard: number, unit: number, column: number, part: number): number {
    if (entry < 0 || entry >= this.entries) return -1;
    const m = this.#meta;
    this.#lock();
    const a = this.#at(entry);
    if (!this.#matches(entry, shard, unit, column, part) || m[a + STATE] !== READY) {
      this.#unlock();
      return -1;
    }
    Atomics.add(m, a + READERS, 1);
    m[a + LAST_USE] = ++m[CLOCK]!;
    const offset = m[a + OFFSET]!;
    this.#unlock();
    return offset;
  }

  /**
   * The decoded bytes of piece (shard, unit, column, part). When no worker has them yet, this one
   * decodes them with `piece`; when another worker is decoding them, waits for it. When the arena
   * has no room (everything in it is being read), a piece decoded into this caller's memory comes
   * back with entry -1 (and is kept for this worker until the next such piece of its column). 'fallback': the piece cannot decode this way (or no room for a piece of
   * known size): decode it yourself. `stopped` ends a wait early (the loader is closing).
   */
  acquire(shard: number, unit: number, column: number, part: number, piece: PieceDecoder, stopped: () => boolean, waiting?: Waiting): Acquired {
    const m = this.#meta;
    const key = `${shard}:${unit}:${column}:${part}`;
    const own = this.#own.get(column);
    if (own?.key === key) return { entry: -1, bytes: own.bytes };
    for (let timeout = 0.05; ; timeout = Math.min(2, timeout * 2)) {
      this.#lock();
      const found = this.#find(shard, unit, column, part, key);
      if (found >= 0) {
        const a = this.#at(found);
        const state = m[a + STATE];
        if (state === READY) {
          Atomics.add(m, a + READERS, 1);
          m[a + LAST_USE] = ++m[CLOCK]!;
          this.#unlock();
          return { entry: found, bytes: new Uint8Array(this.buffers.data, m[a + OFFSET]!, m[a + BYTES]) };
        }
        this.#unlock();
        if (state === NOT_FLAT) return 'fallback';
        // DECODING by another worker: its decode is synchronous and waits on nothing, so it ends.
        if (stopped() || waiting === 'never') return 'fallback';
        if (typeof waiting === 'function') {
          // Work for the time it would wait (once): a piece the plan needs next, say.
          const work = waiting;
          waiting = undefined;
          work();
          continue;
        }
        Atomics.wait(m, a + STATE, DECODING, timeout);
        continue;
      }
      // Not here: claim a table slot (EMPTY first, else the least recently used unread entry).
      const slot = this.#victim(true, false);
      let offset = 0;
      const size = piece.size === undefined ? 0 : alignUp(piece.size);
      if (slot >= 0 && m[this.#at(slot) + STATE] !== EMPTY) {
        Atomics.store(m, this.#at(slot) + STATE, EMPTY);
        Atomics.add(m, EVICTIONS, 1);
      }
      if (slot >= 0 && size > 0) offset = this.#allocate(size);
      if (slot < 0 || offset < 0) {
        this.#unlock();
        if (piece.size !== undefined) return 'fallback';
        const decoded = piece.decode();
        if (!decoded) return 'fallback';
        const mine = materialize(decoded);
        this.#own.set(column, { key, bytes: mine });
        return { entry: -1, bytes: mine };
      }
      const a = this.#at(slot);
      this.#hints.set(key, slot);
      m[a + SHARD] = shard;
      m[a + UNIT] = unit;
      m[a + COLUMN] = column;
      m[a + PART] = part;
      m[a + OFFSET] = offset;
      m[a + SIZE] = size;
      m[a + BYTES] = 0;
      m[a + LAST_USE] = ++m[CLOCK]!;
      Atomics.store(m, a + STATE, DECODING);
      this.#unlock();
      if (piece.size !== undefined) {
        let bytes: number | undefined;
        try {
          bytes = piece.decode({ buffer: this.buffers.data, offset, bytes: size });
        } catch (err) {
          this.#settle(a, EMPTY, 0);
          throw err;
        }
        if (bytes === undefined) {
          this.#settle(a, NOT_FLAT, 0, 0);
          return 'fallback';
        }
        Atomics.add(m, DECODES, 1);
        Atomics.add(m, a + READERS, 1);
        this.#settle(a, READY, bytes);
        return { entry: slot, bytes: new Uint8Array(this.buffers.data, offset, bytes) };
      }
      let own: Uint8Array | SizedPiece | undefined;
      try {
        own = piece.decode();
      } catch (err) {
        this.#settle(a, EMPTY, 0);
        throw err;
      }
      if (own === undefined) {
        this.#settle(a, NOT_FLAT, 0, 0);
        return 'fallback';
      }
      Atomics.add(m, DECODES, 1);
      // Now the size is known: room for it (the slot is DECODING, so nobody evicts it meanwhile).
      const length = own instanceof Uint8Array ? own.byteLength : own.bytes;
      this.#lock();
      const at = this.#allocate(alignUp(length));
      if (at < 0) {
        m[a + BYTES] = 0;
        m[a + SIZE] = 0;
        Atomics.store(m, a + STATE, EMPTY);
        this.#unlock();
        Atomics.notify(m, a + STATE);
        const mine = materialize(own);
        this.#own.set(column, { key, bytes: mine });
        return { entry: -1, bytes: mine };
      }
      m[a + OFFSET] = at;
      m[a + SIZE] = alignUp(length);
      this.#unlock();
      const view = new Uint8Array(this.buffers.data, at, length);
      try {
        if (own instanceof Uint8Array) view.set(own);
        else own.write(view);
      } catch (err) {
        this.#settle(a, EMPTY, 0);
        throw err;
      }
      Atomics.add(m, a + READERS, 1);
      this.#settle(a, READY, length);
      return { entry: slot, bytes: view };
    }
  }

  #settle(a: number, state: number, bytes: number, size?: number): void {
    const m = this.#meta;
    this.#lock();
    m[a + BYTES] = bytes;
    if (size !== undefined) m[a + SIZE] = size;
    Atomics.store(m, a + STATE, state);
    this.#unlock();
    Atomics.notify(m, a + STATE);
  }

  /** Done reading an entry acquire returned (entry -1: nothing to do). */
  release(entry: number): void {
    if (entry >= 0) Atomics.sub(this.#meta, this.#at(entry) + READERS, 1);
  }
}
