// Maps global sample ids (shard order, then row order) to the work unit that holds them: the
// shard, its Arrow record batch or Parquet row group, and the row inside that unit.
import { ErrorCodes, GpufeedError } from '../errors.js';
import type { ManifestV1 } from '../dataset/types.js';

export interface SampleLocation {
  shard: number;
  unit: number;
  row: number;
}

function upperBound(starts: Float64Array, x: number): number {
  // Index of the last start <= x.
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export class SampleLocator {
  readonly total: number;
  readonly #shardStarts: Float64Array;
  readonly #unitStarts: Float64Array[];

  constructor(manifest: ManifestV1) {
    const n = manifest.shards.length;
    this.#shardStarts = new Float64Array(n);
    this.#unitStarts = [];
    let total = 0;
    manifest.shards.forEach((shard, i) => {
      this.#shardStarts[i] = total;
      total += shard.rows;
      const units = shard.layout.kind === 'arrow' ? shard.layout.batches : shard.layout.rowGroups;
      const starts = new Float64Array(units.length);
      let r = 0;
      units.forEach((u, k) => {
        starts[k] = r;
        r += u.rows;
      });
      if (r !== shard.rows) {
        throw new GpufeedError(ErrorCodes.MANIFEST_INVALID, `shard ${shard.path}: its units hold ${r} rows, the manifest says ${shard.rows}`, { shard: shard.path });
      }
      this.#unitStarts.push(starts);
    });
    this.total = total;
  }

  locate(id: number): SampleLocation {
    return this.locateInto(id, { shard: 0, unit: 0, row: 0 });
  }

  /** locate, written into `out` (per-row callers reuse one object). */
  locateInto(id: number, out: SampleLocation): SampleLocation {
    if (!(id >= 0 && id < this.total)) throw new GpufeedError(ErrorCodes.INTERNAL, `sample id ${id} outside [0, ${this.total})`);
    const shard = upperBound(this.#shardStarts, id);
    const inShard = id - this.#shardStarts[shard]!;
    const units = this.#unitStarts[shard]!;
    const unit = upperBound(units, inShard);
    out.shard = shard;
    out.unit = unit;
    out.row = inShard - units[unit]!;
    return out;
  }
}
