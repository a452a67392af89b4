// The decode worker's image step. The slot's layout has each transformed column as a fixed-shape
// tensor region; its encoded bytes are first read (by the same shard readers as every column) into
// a worker-local staging slab, then decoded one image at a time straight into the slot's rows.
// The staging slab starts at most STAGING_START_BYTES and grows to what a batch needs, so memory
// stays bounded by the largest batch of encoded images, never by the dataset.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { allocSlab, freeSlab, slabView, type SlabInfo } from '../memory/index.js';
import { computeBatchLayout, resizeVarRegions, varRegionNeeds, type BatchLayout, type ColumnRegion } from '../pipeline/batch-layout.js';
import type { ManifestV1 } from '../dataset/types.js';
import { badImage, configureSharp, decodeIntoRow, type ImageWhere } from './image-decode.js';
import type { ResolvedImageTransform } from './image-options.js';

/** What the loader sends the workers about images (DecodeLoopTask.images). */
export interface ImageTask {
  transforms: ResolvedImageTransform[];
  /** The loader's seed: crops are a function of (seed, epoch, sample id). */
  seed: number;
}

/** Reads the rows of the batch being decoded, for `layout`'s columns, into slab `slabId`. */
export type FillRaw = (slabId: number, layout: BatchLayout) => Promise<{ bytesRead: number; needs?: Record<string, number> }>;

const STAGING_START_BYTES = 32 * 1024 * 1024;
const FALLBACK_ROW_BYTES = 256 * 1024;

export class ImageStage {
  readonly #task: ImageTask;
  readonly #manifest: ManifestV1;
  readonly #outputs: Set<string>;
  /** First global sample id of each shard. */
  readonly #shardStarts: number[];
  #raw: BatchLayout;
  #staging: SlabInfo | undefined;
  /** Images decoded, decoded at reduced size (shrink-on-load, DCT scaling), and by the JPEG fast path; for tests and stats. */
  decoded = 0;
  reduced = 0;
  native = 0;

  constructor(task: ImageTask, manifest: ManifestV1, batchSize: number) {
    configureSharp();
    this.#task = task;
    this.#manifest = manifest;
    this.#outputs = new Set(task.transforms.map((t) => t.output));
    let start = 0;
    this.#shardStarts = manifest.shards.map((s) => {
      const at = start;
      start += s.rows;
      return at;
    });
    const sources = task.transforms.map((t) => t.source);
    const full = varRegionNeeds(manifest, sources, batchSize, FALLBACK_ROW_BYTES);
    const room = Object.fromEntries(Object.entries(full).map(([k, v]) => [k, Math.min(v, STAGING_START_BYTES)]));
    this.#raw = computeBatchLayout(manifest, sources, batchSize, FALLBACK_ROW_BYTES, room);
  }

  /** `layout` without the transformed columns: what the shard readers fill in the slot itself. */
  readLayout(layout: BatchLayout): BatchLayout {
    return { ...layout, columns: layout.columns.filter((c) => !this.#outputs.has(c.name)) };
  }

  #stagingSlab(): SlabInfo {
    if (!this.#staging || this.#staging.bytes < this.#raw.slotBytes) {
      if (this.#staging) freeSlab(this.#staging.id);
      this.#staging = undefined;
      // Worker-local and read by no one else: not page-locked.
      this.#staging = allocSlab(this.#raw.slotBytes, { pin: false });
    }
    return this.#staging;
  }

  /**
   * Decodes the images of the batch `ids` (epoch `epoch`) into slab `slabId`, laid out as
   * `layout`. Returns the encoded bytes read.
   */
  async fill(slabId: number, layout: BatchLayout, ids: ArrayLike<number>, epoch: number, fillRaw: FillRaw): Promise<number> {
    let staging = this.#stagingSlab();
    let got = await fillRaw(staging.id, this.#raw);
    if (got.needs) {
      // A batch of larger images than the staging slab holds: grow it to this batch's need.
      const grown: Record<string, number> = {};
      for (const [k, v] of Object.entries(got.needs)) grown[k] = Math.ceil(v * 1.25);
      this.#raw = resizeVarRegions(this.#raw, grown);
      staging = this.#stagingSlab();
      got = await fillRaw(staging.id, this.#raw);
      if (got.needs) throw new GpufeedError(ErrorCodes.INTERNAL, 'the image staging slab was grown for its batch and still does not hold it');
    }
    const raw = new Uint8Array(slabView(staging.id), 0, this.#raw.slotBytes);
    const slot = new Uint8Array(slabView(slabId), 0, layout.slotBytes);
    for (let k = 0; k < this.#task.transforms.length; k++) {
      const t = this.#task.transforms[k]!;
      const src = this.#raw.columns[k]!;
      const dst = layout.columns.find((c) => c.name === t.output);
      if (!dst || dst.rowBytes <= 0) throw new GpufeedError(ErrorCodes.INTERNAL, `the batch layout has no tensor region for image column ${t.output}`);
      const offsets = new Int32Array(raw.buffer, raw.byteOffset + src.offsetsOffset, ids.length + 1);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        const start = offsets[i]!;
        const end = offsets[i + 1]!;
        const present = src.validOffset < 0 || raw[src.validOffset + i] === 1;
        try {
          if (!present || end <= start) throw new Error(present ? 'the image is empty (0 bytes)' : 'the image is null');
          const input = Buffer.from(raw.buffer, raw.byteOffset + src.valuesOffset + start, end - start);
          const { reduced, native } = await decodeIntoRow(input, t, this.#task.seed, epoch, id, slot.subarray(dst.valuesOffset + i * dst.rowBytes, dst.valuesOffset + (i + 1) * dst.rowBytes));
          this.decoded += 1;
          if (reduced) this.reduced += 1;
          if (native) this.native += 1;
        } catch (err) {
          throw badImage(await this.#where(t, id, i, fillRaw), err);
        }
      }
    }
    return got.bytesRead;
  }

  /** Shard, row and (when the dataset has a path column) path of batch row `i`, for an error. */
  async #where(t: ResolvedImageTransform, id: number, i: number, fillRaw: FillRaw): Promise<ImageWhere> {
    let shard = 0;
    while (shard + 1 < this.#shardStarts.length && this.#shardStarts[shard + 1]! <= id) shard += 1;
    const where: ImageWhere = { shard: this.#manifest.shards[shard]?.path ?? String(shard), row: id - this.#shardStarts[shard]!, sampleId: id, column: t.source.name };
    if (!t.pathColumn) return where;
    // The path column is read only now, for the message: a failing batch is rare.
    let slab: SlabInfo | undefined;
    try {
      const layout = computeBatchLayout(this.#manifest, [t.pathColumn], this.#raw.batchSize, 4096);
      slab = allocSlab(layout.slotBytes, { pin: false });
      const got = await fillRaw(slab.id, layout);
      if (!got.needs) {
        const region: ColumnRegion = layout.columns[0]!;
        const bytes = new Uint8Array(slabView(slab.id), 0, layout.slotBytes);
        const offsets = new Int32Array(bytes.buffer, bytes.byteOffset + region.offsetsOffset, i + 2);
        where.path = Buffer.from(bytes.buffer, bytes.byteOffset + region.valuesOffset + offsets[i]!, offsets[i + 1]! - offsets[i]!).toString('utf8');
      }
    } catch {
      // The error names shard and row already; a path that cannot be read is left out.
    } finally {
      if (slab) freeSlab(slab.id);
    }
    return where;
  }

  close(): void {
    if (this.#staging) freeSlab(this.#staging.id);
    this.#staging = undefined;
  }
}
