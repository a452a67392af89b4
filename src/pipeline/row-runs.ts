// Turns a batch's sample ids into decode runs: maximal stretches of consecutive rows of one work
// unit that land in consecutive slot rows. Unshuffled batches become one run per unit touched,
// so a fixed-width column is one read per unit. Runs travel to the worker packed in one
// Float64Array (RUN_FIELDS numbers each): one buffer to clone instead of an object per run.
import type { ManifestV1 } from '../dataset/types.js';
import { RUN_FIELDS, type RowRun } from './decode-messages.js';
import type { SampleLocation, SampleLocator } from './sample-locator.js';

/** Runs are built here, then copied out at their length: one allocation per batch, not two. Grows only. */
let building = new Float64Array(256 * RUN_FIELDS);

export function buildRuns(ids: readonly number[], locator: SampleLocator, manifest: ManifestV1): { runs: Float64Array; shards: number[] } {
  if (building.length < ids.length * RUN_FIELDS) building = new Float64Array(ids.length * RUN_FIELDS * 2);
  const packed = building;
  const shards: number[] = [];
  let n = 0;
  let at = -RUN_FIELDS;
  const loc: SampleLocation = { shard: 0, unit: 0, row: 0 };
  for (let i = 0; i < ids.length; i++) {
    locator.locateInto(ids[i]!, loc);
    if (n > 0 && packed[at] === loc.shard && packed[at + 1] === loc.unit && packed[at + 2]! + packed[at + 3]! === loc.row) {
      packed[at + 3]! += 1;
      continue;
    }
    at += RUN_FIELDS;
    n += 1;
    packed[at] = loc.shard;
    packed[at + 1] = loc.unit;
    packed[at + 2] = loc.row;
    packed[at + 3] = 1;
    packed[at + 4] = i;
    const layout = manifest.shards[loc.shard]!.layout;
    if (layout.kind === 'arrow') {
      const b = layout.batches[loc.unit]!;
      packed[at + 5] = b.offset;
      packed[at + 6] = b.metadataLength;
      packed[at + 7] = b.bodyLength;
    } else {
      packed[at + 5] = -1;
    }
    if (!hasShard(shards, loc.shard)) shards.push(loc.shard);
  }
  return { runs: packed.slice(0, n * RUN_FIELDS), shards };
}

/** `shards.includes(shard)` as a loop over the few shards of a batch (the builtin call was a hot spot). */
function hasShard(shards: readonly number[], shard: number): boolean {
  for (let i = 0; i < shards.length; i++) if (shards[i] === shard) return true;
  return false;
}

/** Run `i` of a packed array, written into `out` (reused: no object per run). */
export function readRun(packed: Float64Array, i: number, out: RowRun): RowRun {
  const at = i * RUN_FIELDS;
  out.shard = packed[at]!;
  out.unit = packed[at + 1]!;
  out.row = packed[at + 2]!;
  out.count = packed[at + 3]!;
  out.slotRow = packed[at + 4]!;
  if (packed[at + 5]! >= 0) {
    const block = out.block ?? (out.block = { offset: 0, metadataLength: 0, bodyLength: 0 });
    block.offset = packed[at + 5]!;
    block.metadataLength = packed[at + 6]!;
    block.bodyLength = packed[at + 7]!;
  } else {
    delete out.block;
  }
  return out;
}

export function runCount(packed: Float64Array): number {
  return packed.length / RUN_FIELDS;
}
