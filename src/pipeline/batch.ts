// A batch as the consumer sees it: typed-array views over one slot of pinned memory. Views are
// made once per slot and narrowed to the batch's rows; nothing here copies batch bytes.
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { DType } from '../dataset/types.js';
import type { BatchLayout, ColumnRegion } from './batch-layout.js';

export type NumericArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

/** A variable-length column in Arrow's layout: row i is values[offsets[i] .. offsets[i+1]). */
export interface VarColumn {
  offsets: Int32Array;
  values: NumericArray;
}

export type ColumnData = NumericArray | VarColumn;

type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): NumericArray; BYTES_PER_ELEMENT: number };

export const ARRAY_CTORS: Record<DType, ArrayCtor> = {
  int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, float16: Uint16Array, float32: Float32Array, float64: Float64Array,
  bool: Uint8Array, string: Uint8Array, binary: Uint8Array,
};

export function isVarColumn(c: ColumnData): c is VarColumn {
  return (c as VarColumn).offsets !== undefined;
}

/** Builds the views of a batch of `rows` rows over a slot. */
export function columnViews(buffer: ArrayBuffer, layout: BatchLayout, rows: number): { columns: Record<string, ColumnData>; valid: Record<string, Uint8Array> } {
  const columns: Record<string, ColumnData> = {};
  const valid: Record<string, Uint8Array> = {};
  for (const r of layout.columns) {
    columns[r.name] = columnView(buffer, r, rows);
    if (r.validOffset >= 0) valid[r.name] = new Uint8Array(buffer, r.validOffset, rows);
  }
  return { columns, valid };
}

function columnView(buffer: ArrayBuffer, r: ColumnRegion, rows: number): ColumnData {
  const Ctor = ARRAY_CTORS[r.dtype];
  if (r.offsetsOffset >= 0) {
    const offsets = new Int32Array(buffer, r.offsetsOffset, rows + 1);
    const end = offsets[rows] ?? 0;
    return { offsets, values: new Ctor(buffer, r.valuesOffset, end) };
  }
  return new Ctor(buffer, r.valuesOffset, (rows * r.rowBytes) / r.elementBytes);
}

const EMPTY: readonly number[] = Object.freeze([]);

export interface BatchInit {
  epoch: number;
  step: number;
  ids: readonly number[];
  /** Rows whose values are copies of other rows (quarantine.ts); empty when none. */
  quarantined?: readonly number[];
  slabId: number;
  layout: BatchLayout;
  buffer: ArrayBuffer;
  release: () => void;
  /** Packed batches (packed-loader.ts): where each row's tokens came from. */
  pack?: { segments: number[][]; streams?: number[][] };
  /** Mixtures: the stream of each row. */
  stream?: Int32Array;
}

export class Batch {
  readonly epoch: number;
  /** Step within the epoch on this rank, from 0. */
  readonly step: number;
  /** Global sample ids, in row order. */
  readonly ids: readonly number[];
  /**
   * Row indices (ascending) whose sample was quarantined (onCorrupt 'skip'): the row holds a copy of
   * another row of this batch (README, "Quarantine"), its id stays the planned sample's. Empty when none.
   */
  readonly quarantined: readonly number[];
  /** Rows in this batch (the last batch of an epoch may hold fewer than batchSize). */
  readonly size: number;
  /** Mixtures: per row, the index of the stream (the dataset in Loader.open's array) it came from; undefined for one dataset. */
  readonly stream: Int32Array | undefined;
  /** Fixed-width columns: one contiguous [size, ...shape] array; variable-length: offsets + values. */
  readonly columns: Record<string, ColumnData>;
  /** Nullable columns: 1 where the row has a value, 0 where it is null. */
  readonly valid: Record<string, Uint8Array>;
  /** Where the batch lives, for consumers in another thread or process. */
  readonly slabId: number;
  readonly layout: BatchLayout;
  /**
   * Packed batches only: per row, its segments as [documentId, tokenOffset, count, ...] (document
   * -1: padding), in row order: which tokens of which documents the row holds. Packed mixtures
   * add `streams`: per row, the stream of each segment (-1 for padding).
   */
  readonly pack: { readonly segments: readonly (readonly number[])[]; readonly streams?: readonly (readonly number[])[] } | undefined;
  #release: (() => void) | undefined;
  #retained = false;

  constructor(init: BatchInit) {
    this.epoch = init.epoch;
    this.step = init.step;
    this.ids = init.ids;
    this.quarantined = init.quarantined ?? EMPTY;
    this.size = init.ids.length;
    this.stream = init.stream;
    this.slabId = init.slabId;
    this.layout = init.layout;
    this.pack = init.pack;
    const { columns, valid } = columnViews(init.buffer, init.layout, this.size);
    this.columns = columns;
    this.valid = valid;
    this.#release = init.release;
  }

  /** Shape of a fixed-width column: [size, ...shape]. */
  shape(column: string): number[] {
    const r = this.layout.columns.find((c) => c.name === column);
    if (!r) throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `batch has no column ${column}`, { column });
    return [this.size, ...r.shape];
  }

  /** Keeps the batch past the next iteration; the caller then must call release(). */
  retain(): this {
    this.#retained = true;
    return this;
  }

  get released(): boolean {
    return this.#release === undefined;
  }

  /** Returns the slot to the ring. The views must not be used afterwards. Idempotent. */
  release(): void {
    const r = this.#release;
    this.#release = undefined;
    r?.();
  }

  /** @internal called by the loader when the consumer asks for the next batch. */
  releaseUnlessRetained(): void {
    if (!this.#retained) this.release();
  }
}
