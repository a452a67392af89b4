// How many shard files a decode worker keeps open (and mapped), from the plan: enough for the
// shards a window shuffle reads at once, so a worker does not close a shard it needs again a few
// batches later (each reopen maps the file afresh, and every page it touches then faults in
// again), and few enough that mapped pages (counted in RSS while mapped) stay bounded whatever
// the dataset size. Mappings are shared by the loader's workers (one per file per process).
import type { OrderOptions } from '../plan/index.js';

/** Fewest open shards: a manifest-order read needs one or two, a window edge one more. */
export const MIN_OPEN_SHARDS = 4;
/** Most open shards, whatever the plan. */
export const MAX_OPEN_SHARDS = 16;
/** Most bytes of shard files open at once (a bound that only matters for large shards). */
export const MAX_OPEN_SHARD_BYTES = 512 * 2 ** 20;

export function openShardBound(shards: readonly { rows: number; bytes: number }[], order: Pick<OrderOptions, 'shuffle' | 'shuffleWindow'>): number {
  const n = shards.length;
  if (n === 0) return MIN_OPEN_SHARDS;
  let rows = 0;
  let bytes = 0;
  for (const s of shards) {
    rows += s.rows;
    bytes += s.bytes;
  }
  const meanRows = Math.max(1, rows / n);
  // A window shuffle of w samples delivers, at any time, from about 2w consecutive samples of
  // the shard-shuffled sequence (plan/shuffle.ts): 2w / rows-per-shard + 2 shards, one more for
  // a step that straddles. 'naive' reads every shard all the time: no bound avoids reopening.
  const live = order.shuffle === 'window' ? Math.ceil((2 * order.shuffleWindow) / meanRows) + 3 : order.shuffle === 'naive' ? n : 2;
  const byBytes = Math.max(1, Math.floor(MAX_OPEN_SHARD_BYTES / Math.max(1, bytes / n)));
  return Math.max(MIN_OPEN_SHARDS, Math.min(live, n, MAX_OPEN_SHARDS, byBytes));
}
