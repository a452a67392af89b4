// A naive loader, the baseline of "what you would write by hand": on the main thread, read each
// Arrow shard whole, decode it with apache-arrow, and copy each sample's tokens into a batch
// buffer row by row. Same sample order as gpufeed (the same plan functions).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tableFromIPC, type Table } from 'apache-arrow';
import type { ManifestV1 } from '../src/dataset/index.js';
import { planRankEpoch, resolveOrderOptions, resolveWorld, type OrderOptions } from '../src/plan/index.js';
import { SampleLocator } from '../src/pipeline/sample-locator.js';

export interface NaiveResult { bytes: number; seconds: number; bytes_per_s: number; batches: number }

export function naiveArrowLoader(dir: string, manifest: ManifestV1, order: Partial<OrderOptions>, seqLen: number, maxSeconds: number): NaiveResult {
  const world = resolveWorld({ rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 });
  const opts = resolveOrderOptions(order, world);
  const plan = planRankEpoch(manifest.shards.map((s) => ({ rows: s.rows, bytes: s.bytes })), world, opts, 0);
  const locator = new SampleLocator(manifest);
  // Decoded shards kept by the naive loader: two, like a simple LRU would.
  const tables = new Map<number, Table>();
  const table = (shard: number): Table => {
    let t = tables.get(shard);
    if (t) {
      tables.delete(shard);
      tables.set(shard, t);
      return t;
    }
    t = tableFromIPC(readFileSync(join(dir, manifest.shards[shard]!.path)));
    tables.set(shard, t);
    if (tables.size > 2) tables.delete(tables.keys().next().value!);
    return t;
  };
  const out = new Int32Array(opts.batchSize * seqLen);
  let bytes = 0;
  let batches = 0;
  const t0 = performance.now();
  for (let step = 0; step < plan.steps; step++) {
    const ids = plan.batchIds(step);
    for (let i = 0; i < ids.length; i++) {
      const loc = locator.locate(ids[i]!);
      const rb = table(loc.shard).batches[loc.unit]!;
      const row = rb.getChild('input_ids')!.get(loc.row) as { toArray(): Int32Array };
      out.set(row.toArray(), i * seqLen);
    }
    bytes += ids.length * seqLen * 4;
    batches++;
    if ((performance.now() - t0) / 1e3 >= maxSeconds) break;
  }
  const seconds = (performance.now() - t0) / 1e3;
  return { bytes, seconds, bytes_per_s: bytes / seconds, batches };
}
