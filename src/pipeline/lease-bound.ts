// How many shards one loader can hold leased at once, for the cache budget check (cache/budget.ts):
// the distinct shards of any run of consecutive steps that can be in flight together (the ring's
// slots, plus one a worker may lease ahead), plus the idle leases the lease table keeps for reuse.
// Read from the plan of the epoch the loader starts in and the start of the next (the batches in
// flight across the boundary); other epochs shuffle the same way, so their windows are alike.
import type { RankEpochPlan } from '../plan/index.js';

export interface LeaseBoundInput {
  plan: (epoch: number) => RankEpochPlan;
  shardOf: (sampleId: number) => number;
  shardCount: number;
  startEpoch: number;
  /** Epochs the loader runs (Infinity for endless). */
  epochs: number;
  /** Steps that can be in flight at once. */
  window: number;
  /** Idle leases kept on top of those in use. */
  idle: number;
  /** Stop scanning after this many samples (huge epochs): the bound then comes from what was read. */
  maxSamples?: number;
}

export function maxLeasedShards(i: LeaseBoundInput): number {
  const cap = i.shardCount;
  if (cap === 0) return 1;
  const maxSamples = i.maxSamples ?? 1 << 21;
  const window = Math.max(1, i.window);
  // Distinct shards per step, in order, across the start epoch and the first `window` steps of the next.
  const stepShards: number[][] = [];
  const inWindow = new Map<number, number>();
  let best = 0;
  let samples = 0;
  const push = (ids: readonly number[]): void => {
    const distinct = [...new Set(ids.map(i.shardOf))];
    stepShards.push(distinct);
    for (const s of distinct) inWindow.set(s, (inWindow.get(s) ?? 0) + 1);
    if (stepShards.length > window) {
      for (const s of stepShards[stepShards.length - window - 1]!) {
        const n = inWindow.get(s)! - 1;
        if (n === 0) inWindow.delete(s);
        else inWindow.set(s, n);
      }
    }
    best = Math.max(best, inWindow.size);
    samples += ids.length;
  };
  const first = i.plan(i.startEpoch);
  for (let step = 0; step < first.steps && samples < maxSamples && best < cap; step++) push(first.batchIds(step));
  if (i.startEpoch + 1 < i.epochs && samples < maxSamples && best < cap) {
    const next = i.plan(i.startEpoch + 1);
    for (let step = 0; step < Math.min(window, next.steps) && best < cap; step++) push(next.batchIds(step));
  }
  return Math.max(1, Math.min(cap, best + i.idle));
}
