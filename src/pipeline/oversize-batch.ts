// A batch whose variable-length rows do not fit a ring slot (memory-budget.ts sizes slots from
// typical rows) is decoded again, exactly, into a one-off slab sized for it, and the consumer gets
// that slab instead of the slot; it is freed when the batch is released. Rare by design, so the
// simplest bounded scheme: a worker allocates a one-off slab only once every earlier batch has
// been handed to the consumer, and only while all one-off slabs together stay within what
// memoryBytes leaves beyond the ring. One batch alone larger than that is an error that names its
// largest row. Worker side; the consumer side is in loader.ts.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { allocSlab, detachSlab, freeSlab, slabView } from '../memory/index.js';
import type { ManifestV1 } from '../dataset/types.js';
import { resizeVarRegions, type BatchLayout } from './batch-layout.js';
import type { ControlBlock } from './control-block.js';
import type { SampleLocator } from './sample-locator.js';

export interface OversizeInput {
  control: ControlBlock;
  seq: number;
  /** The ring slot's slab the batch was first decoded into (its offsets are complete). */
  slotSlabId: number;
  layout: BatchLayout;
  /** Bytes each variable-length column of this batch needs. */
  needs: Record<string, number>;
  ids: ArrayLike<number>;
  /** Bytes all one-off slabs may take at once (memoryBytes - the ring). */
  limit: number;
  pin: boolean | undefined;
  manifest: ManifestV1;
  locator: SampleLocator;
}

export interface OneOffSlab {
  slabId: number;
  bytes: number;
  layout: BatchLayout;
}

/** The column that overflows its region most, and the largest row of it in the batch. */
function largestRow(input: OversizeInput): { column: string; row: number; bytes: number } {
  const { layout, needs, ids } = input;
  let column = layout.columns[0]!;
  let worst = 0;
  for (const r of layout.columns) {
    const need = needs[r.name];
    if (need === undefined || r.offsetsOffset < 0) continue;
    if (need / r.valuesBytes > worst) {
      worst = need / r.valuesBytes;
      column = r;
    }
  }
  const offsets = new Int32Array(slabView(input.slotSlabId), column.offsetsOffset, ids.length + 1);
  let row = 0;
  let elems = -1;
  for (let i = 0; i < ids.length; i++) {
    const n = offsets[i + 1]! - offsets[i]!;
    if (n > elems) {
      elems = n;
      row = i;
    }
  }
  return { column: column.name, row, bytes: Math.max(0, elems) * column.elementBytes };
}

function tooLarge(input: OversizeInput, slotBytes: number): GpufeedError {
  const { column, row, bytes } = largestRow(input);
  const id = input.ids[row]!;
  const at = input.locator.locate(id);
  const shard = input.manifest.shards[at.shard]!.path;
  return new GpufeedError(
    ErrorCodes.INVALID_OPTION,
    `column ${column}: sample ${id} (shard ${shard}, record batch/row group ${at.unit}, row ${at.row}) holds ${bytes} bytes; its batch of ${input.ids.length} rows needs ${slotBytes} bytes, ` +
      `more than the ${input.limit} bytes memoryBytes leaves beyond the batch slots; raise memoryBytes (or lower batchSize or slots)`,
    { option: 'memoryBytes', column, shard, sampleId: id, rowBytes: bytes, needBytes: slotBytes, limitBytes: input.limit },
  );
}

/**
 * Waits for this batch's turn and room, then allocates its one-off slab (counted in the control
 * block). Blocks this worker thread; nothing else is pending in it while it decodes a batch.
 */
function reserve(input: OversizeInput, bytes: number): void {
  const { control, seq } = input;
  for (let timeoutMs = 0.05; ; timeoutMs = Math.min(5, timeoutMs * 2)) {
    if (control.stopped) throw new GpufeedError(ErrorCodes.CLOSED, 'loader is closed');
    const gen = control.consumerGen;
    if (control.consumed >= seq) {
      if (control.reserveOneOff(bytes, input.limit)) return;
      // The consumer waits for this very batch, and only batches it retained hold one-off memory:
      // waiting longer would never end.
      if (control.waitingFor === seq) {
        throw new GpufeedError(
          ErrorCodes.INVALID_OPTION,
          `batch ${seq} needs a one-off slot of ${bytes} bytes, but retained batches hold ${control.oneOffBytes} of the ${input.limit} bytes memoryBytes leaves for them; release them or raise memoryBytes`,
          { option: 'memoryBytes', needBytes: bytes, limitBytes: input.limit },
        );
      }
    }
    control.waitConsumerChange(gen, timeoutMs);
  }
}

/**
 * Decodes the batch again with `fill` into a one-off slab sized for it. On error nothing is left
 * allocated or counted.
 */
export async function decodeOversize<T>(input: OversizeInput, fill: (slabId: number, layout: BatchLayout) => Promise<T & { needs?: Record<string, number> }>): Promise<OneOffSlab & { result: T }> {
  const layout = resizeVarRegions(input.layout, input.needs);
  if (layout.slotBytes > input.limit) throw tooLarge(input, layout.slotBytes);
  reserve(input, layout.slotBytes);
  let slabId = 0;
  try {
    slabId = allocSlab(layout.slotBytes, input.pin === undefined ? {} : { pin: input.pin }).id;
    const result = await fill(slabId, layout);
    if (result.needs) throw new GpufeedError(ErrorCodes.INTERNAL, `batch ${input.seq} did not fit the one-off slot sized for it`);
    // The consumer attaches its own view; this thread's view must not keep the memory alive.
    detachSlab(slabId);
    return { slabId, bytes: layout.slotBytes, layout, result };
  } catch (err) {
    if (slabId) freeSlab(slabId);
    input.control.releaseOneOff(layout.slotBytes);
    throw err;
  }
}
