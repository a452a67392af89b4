// Turns a batch's sample ids into decode runs: maximal stretches of consecutive rows of one work
// unit that land in consecutive slot rows. Unshuffled batches become one run per unit touched,
// so a fixed-width column is one read per unit.
import type { ManifestV1 } from '../dataset/types.js';
import type { RowRun } from './decode-messages.js';
import type { SampleLocator } from './sample-locator.js';

export function buildRuns(ids: readonly number[], locator: SampleLocator, manifest: ManifestV1): { runs: RowRun[]; shards: number[] } {
  const runs: RowRun[] = [];
  const shards: number[] = [];
  const seen = new Set<number>();
  let cur: RowRun | undefined;
  for (let i = 0; i < ids.length; i++) {
    const loc = locator.locate(ids[i]!);
    if (cur && cur.shard === loc.shard && cur.unit === loc.unit && cur.row + cur.count === loc.row) {
      cur.count += 1;
      continue;
    }
    cur = { shard: loc.shard, unit: loc.unit, row: loc.row, count: 1, slotRow: i };
    const layout = manifest.shards[loc.shard]!.layout;
    if (layout.kind === 'arrow') {
      const b = layout.batches[loc.unit]!;
      cur.block = { offset: b.offset, metadataLength: b.metadataLength, bodyLength: b.bodyLength };
    }
    runs.push(cur);
    if (!seen.has(loc.shard)) {
      seen.add(loc.shard);
      shards.push(loc.shard);
    }
  }
  return { runs, shards };
}
