// Property tests of the distributed sample order over random (seeded) manifests: exactly once per
// epoch (with declared padding or dropping), equal steps, determinism, exact resume with the same
// and another world size, locality, and per-epoch reshuffling.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import {
  type OrderOptions,
  planRankEpoch,
  resolveOrderOptions,
  type ResumeState,
  resumePoint,
  resumeState,
  type ShardSize,
  type ShuffleAlgo,
  type World,
} from '../../src/plan/index.js';
import { mulberry32 } from '../helpers/seeded-random.js';

/** The tests' own generator, independent of the code under test. */
const rng = mulberry32;
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** A random manifest: varied shard sizes, tiny and empty shards, sometimes one huge shard. */
function randomShards(r: () => number): ShardSize[] {
  const kind = int(r, 0, 3);
  if (kind === 0) return [{ rows: int(r, 1, 3000), bytes: 0 }].map((s) => ({ ...s, bytes: s.rows * 100 }));
  const count = int(r, 1, 60);
  const shards: ShardSize[] = [];
  for (let i = 0; i < count; i++) {
    const rows = kind === 1 ? int(r, 0, 4) : kind === 2 ? int(r, 1, 120) : r() < 0.1 ? int(r, 500, 1500) : int(r, 0, 40);
    shards.push({ rows, bytes: rows * 100 });
  }
  if (shards.every((s) => s.rows === 0)) shards.push({ rows: 5, bytes: 500 });
  return shards;
}

const totalRows = (shards: readonly ShardSize[]): number => shards.reduce((a, s) => a + s.rows, 0);

function world(rank: number, worldSize: number): World {
  return { rank, worldSize, localRank: 0, localWorldSize: 1 };
}

/** Partition counts valid for a world size and global batch. */
function validPartitions(worldSize: number, globalBatch: number): number[] {
  const out = new Set<number>([worldSize]);
  for (const p of [1, 2, 4, worldSize * 2, worldSize * 4]) {
    if ((p % worldSize === 0 || worldSize % p === 0) && p <= globalBatch) out.add(p);
  }
  return [...out].filter((p) => p <= globalBatch);
}

interface Case {
  shards: ShardSize[];
  worldSize: number;
  options: OrderOptions;
  label: string;
}

/** One of the three epoch endings, a third of the time each. */
function endMode(u: number): { dropLast: boolean; pad: boolean } {
  return u < 1 / 3 ? { dropLast: true, pad: false } : u < 2 / 3 ? { dropLast: false, pad: true } : { dropLast: false, pad: false };
}

function randomCase(r: () => number): Case {
  const shards = randomShards(r);
  const worldSize = int(r, 1, 16);
  const batchSize = pick(r, [1, 2, 3, 5, 8, 16]);
  const shuffle = pick(r, ['none', 'window', 'naive'] as const);
  const partitions = pick(r, validPartitions(worldSize, batchSize * worldSize));
  const options = resolveOrderOptions(
    { batchSize, seed: int(r, 0, 1e9), shuffle, shuffleWindow: int(r, 1, 400), partitions, ...endMode(r()), epochs: 3 },
    world(0, worldSize),
  );
  const label = `N=${totalRows(shards)} shards=${shards.length} W=${worldSize} B=${batchSize} P=${partitions} ${shuffle}/${options.shuffleWindow} dropLast=${options.dropLast} pad=${options.pad}`;
  return { shards, worldSize, options, label };
}

/** Every rank's batches for one epoch: batches[rank][step]. */
function epochBatches(c: Case, epoch: number, worldSize = c.worldSize, options = c.options): number[][][] {
  return Array.from({ length: worldSize }, (_, rank) => {
    const plan = planRankEpoch(c.shards, world(rank, worldSize), options, epoch);
    return Array.from({ length: plan.steps }, (_, step) => plan.batchIds(step));
  });
}

function counts(ids: Iterable<number>): Map<number, number> {
  const m = new Map<number, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

const CASES = 120;

describe('planRankEpoch properties over random manifests', () => {
  it('delivers each sample exactly once per epoch across ranks (padding or dropping as declared), in equal steps', () => {
    const r = rng(1);
    for (let k = 0; k < CASES; k++) {
      const c = randomCase(r);
      const n = totalRows(c.shards);
      const g = c.options.batchSize * c.worldSize;
      const batches = epochBatches(c, 0);
      const steps = batches[0]!.length;
      assert.equal(steps, c.options.dropLast ? Math.floor(n / g) : Math.ceil(n / g), c.label);
      for (const rankBatches of batches) {
        assert.equal(rankBatches.length, steps, `equal steps: ${c.label}`);
        rankBatches.forEach((b, step) => {
          if (c.options.pad || c.options.dropLast || step < steps - 1) assert.equal(b.length, c.options.batchSize, `full batches: ${c.label}`);
          else assert.ok(b.length <= c.options.batchSize, `last batch at most full: ${c.label}`);
        });
      }
      const seen = counts(batches.flat(2));
      for (const id of seen.keys()) assert.ok(Number.isInteger(id) && id >= 0 && id < n, `id ${id} in range: ${c.label}`);
      if (c.options.dropLast) {
        for (const [id, times] of seen) assert.equal(times, 1, `id ${id} at most once: ${c.label}`);
        assert.equal(seen.size, steps * g, c.label);
        assert.ok(n - seen.size < g, `fewer than a global batch dropped: ${c.label}`);
      } else if (c.options.pad) {
        assert.equal(seen.size, n, `every sample delivered: ${c.label}`);
        const extra = steps * g - n;
        assert.ok(extra >= 0 && extra < g, `padding below one global batch: ${c.label}`);
      } else {
        for (const [id, times] of seen) assert.equal(times, 1, `id ${id} exactly once: ${c.label}`);
        assert.equal(seen.size, n, `every sample delivered: ${c.label}`);
      }
    }
  });

  it('is deterministic and random access: any step, any order, a fresh plan, the same ids', () => {
    const r = rng(2);
    for (let k = 0; k < 40; k++) {
      const c = randomCase(r);
      const rank = int(r, 0, c.worldSize - 1);
      const a = planRankEpoch(c.shards, world(rank, c.worldSize), c.options, 1);
      const b = planRankEpoch(c.shards.map((s) => ({ ...s })), world(rank, c.worldSize), { ...c.options }, 1);
      const forward = Array.from({ length: a.steps }, (_, s) => a.batchIds(s));
      for (let s = b.steps - 1; s >= 0; s--) assert.deepEqual(b.batchIds(s), forward[s], c.label);
      if (a.steps > 0) assert.deepEqual(a.batchIds(0), forward[0], c.label);
    }
  });

  it('resumes exactly from a state at a random step, with the same and another world size', () => {
    const r = rng(3);
    let elastic = 0;
    for (let k = 0; k < CASES; k++) {
      const c = randomCase(r);
      const g = c.options.batchSize * c.worldSize;
      const epoch = int(r, 0, 2);
      const full = epochBatches(c, epoch);
      const steps = full[0]!.length;
      const stepsDone = int(r, 0, steps);

      // The state is global: every rank computes the same one; it survives JSON.
      const states = Array.from({ length: c.worldSize }, (_, rank) =>
        resumeState(c.shards, world(rank, c.worldSize), c.options, epoch, stepsDone));
      for (const s of states) assert.deepEqual(s, states[0], c.label);
      const saved = JSON.parse(JSON.stringify(states[0])) as ResumeState;

      // Another world size with the same global batch and partitions (when the constraint allows).
      const partitions = c.options.partitions ?? c.worldSize;
      const candidates = [1, 2, 3, 4, 6, 8, 12, 16].filter(
        (w) => g % w === 0 && (partitions % w === 0 || w % partitions === 0),
      );
      const worldSize2 = pick(r, candidates.length ? candidates : [c.worldSize]);
      if (worldSize2 !== c.worldSize) elastic++;
      // Endless epochs: a state at the end of the last epoch would be refused (resume-state.test.ts).
      const options2 = resolveOrderOptions({ ...c.options, batchSize: g / worldSize2, partitions, epochs: Infinity }, world(0, worldSize2));

      const before = full.flatMap((rankBatches) => rankBatches.slice(0, stepsDone).flat());
      const after: number[] = [];
      for (let rank = 0; rank < worldSize2; rank++) {
        const point = resumePoint(saved, c.shards, world(rank, worldSize2), options2);
        if (stepsDone === steps) {
          assert.deepEqual(point, { epoch: epoch + 1, step: 0 }, c.label);
          continue;
        }
        assert.deepEqual(point, { epoch, step: stepsDone }, c.label);
        const plan = planRankEpoch(c.shards, world(rank, worldSize2), options2, point.epoch);
        assert.equal(plan.steps, steps, c.label);
        for (let s = point.step; s < plan.steps; s++) after.push(...plan.batchIds(s));
      }
      // before + after is the epoch, as a multiset: none twice beyond the declared padding, none lost.
      assert.deepEqual(counts([...before, ...after]), counts(full.flat(2)), `${c.label} resumed at ${stepsDone}/${steps} on W=${worldSize2}`);
      if (!c.options.pad) assert.equal(new Set([...before, ...after]).size, before.length + after.length, c.label);
    }
    assert.ok(elastic > CASES / 3, `enough cases change the world size (${elastic})`);
  });

  it('gives the same global batches for every world size with the same global batch and partitions', () => {
    const shards = Array.from({ length: 23 }, (_, i) => ({ rows: 17 + ((i * 37) % 29), bytes: 1 }));
    for (const shuffle of ['none', 'window', 'naive'] as const) {
      const globalBatches = [1, 2, 4, 8].map((w) => {
        const o = resolveOrderOptions({ batchSize: 16 / w, partitions: 4, shuffle, shuffleWindow: 30, seed: 5 }, world(0, w));
        const c: Case = { shards, worldSize: w, options: o, label: '' };
        const b = epochBatches(c, 0);
        return b[0]!.map((_, step) => b.flatMap((rankBatches) => rankBatches[step]!));
      });
      for (const gb of globalBatches.slice(1)) assert.deepEqual(gb, globalBatches[0], shuffle);
    }
  });

  it('reshuffles every epoch and every seed (window, naive); none keeps manifest order', () => {
    const shards = Array.from({ length: 50 }, (_, i) => ({ rows: 40 + (i % 7), bytes: 1 }));
    for (const shuffle of ['window', 'naive'] as const) {
      const o = resolveOrderOptions({ batchSize: 32, shuffle, shuffleWindow: 100, seed: 1, epochs: Infinity }, world(0, 2));
      const first = (opts: OrderOptions, epoch: number): number[] => planRankEpoch(shards, world(1, 2), opts, epoch).batchIds(0);
      assert.notDeepEqual(first(o, 0), first(o, 1), shuffle);
      assert.notDeepEqual(first(o, 1), first(o, 1_000_000), shuffle);
      assert.notDeepEqual(first(o, 0), first({ ...o, seed: 2 }, 0), shuffle);
    }
    const none = resolveOrderOptions({ batchSize: 10, epochs: 2 }, world(0, 1));
    const a = planRankEpoch(shards, world(0, 1), none, 0);
    const b = planRankEpoch(shards, world(0, 1), none, 1);
    const n = totalRows(shards);
    for (let s = 0; s < a.steps; s++) {
      const expected = Array.from({ length: 10 }, (_, i) => (s * 10 + i < n ? s * 10 + i : -1));
      const got = a.batchIds(s);
      assert.deepEqual(got.filter((_, i) => expected[i] !== -1), expected.filter((x) => x !== -1));
      assert.deepEqual(b.batchIds(s), got);
    }
  });

  it('keeps a rank on its own shards: bytes touched per epoch close to its share', (t) => {
    const r = rng(4);
    let worst = 0;
    for (let k = 0; k < 12; k++) {
      const shardCount = int(r, 150, 400);
      const shards = Array.from({ length: shardCount }, () => {
        const rows = int(r, 5, 60);
        return { rows, bytes: rows * int(r, 900, 1100) };
      });
      const worldSize = pick(r, [2, 4, 8, 16]);
      const batchSize = pick(r, [4, 8, 16]);
      const partitions = pick(r, [worldSize, worldSize * 2, worldSize * 4].filter((p) => p <= batchSize * worldSize));
      const shuffle = pick(r, ['none', 'window'] as const);
      const options = resolveOrderOptions({ batchSize, partitions, shuffle, shuffleWindow: int(r, 1, 300), seed: k }, world(0, worldSize));
      const starts = [0];
      for (const s of shards) starts.push(starts.at(-1)! + s.rows);
      const shardOf = (id: number): number => {
        let lo = 0;
        let hi = shards.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (starts[mid]! <= id) lo = mid;
          else hi = mid - 1;
        }
        return lo;
      };
      const totalBytes = shards.reduce((a, s) => a + s.bytes, 0);
      const maxShardBytes = Math.max(...shards.map((s) => s.bytes));
      const maxRowBytes = 1100;
      for (let rank = 0; rank < worldSize; rank++) {
        const plan = planRankEpoch(shards, world(rank, worldSize), options, 0);
        const touched = new Set<number>();
        for (let s = 0; s < plan.steps; s++) for (const id of plan.batchIds(s)) touched.add(shardOf(id));
        let bytes = 0;
        for (const s of touched) bytes += shards[s]!.bytes;
        // Its share (rows per byte vary +-10% between shards), plus a shard at each end of its slice,
        // plus two batches for the uneven remainder and padding.
        const bound = 1.1 * (totalBytes / worldSize) + 2 * maxShardBytes + 2 * batchSize * maxRowBytes;
        worst = Math.max(worst, bytes / (totalBytes / worldSize));
        assert.ok(bytes <= bound, `rank ${rank} touched ${bytes} bytes, share ${totalBytes / worldSize}, bound ${bound} (W=${worldSize} P=${partitions} ${shuffle})`);
      }
      // The naive shuffle, for contrast, has every rank read nearly everything.
      if (worldSize >= 4) {
        const naive = planRankEpoch(shards, world(0, worldSize), { ...options, shuffle: 'naive' }, 0);
        const touched = new Set<number>();
        for (let s = 0; s < naive.steps; s++) for (const id of naive.batchIds(s)) touched.add(shardOf(id));
        assert.ok(touched.size > (2 * shardCount) / worldSize, `naive touches ${touched.size} of ${shardCount}`);
      }
    }
    t.diagnostic(`locality: the worst rank read ${worst.toFixed(2)}x its byte share`);
  });

  it('needs no per-rank copy of the whole permutation: a far step of a huge epoch is cheap', () => {
    const shards = Array.from({ length: 100_000 }, () => ({ rows: 1000, bytes: 1 }));
    for (const shuffle of ['none', 'window', 'naive'] as ShuffleAlgo[]) {
      const w = world(777, 1024);
      const o = resolveOrderOptions({ batchSize: 32, shuffle, seed: 9, shuffleWindow: 4096 }, w);
      // Timing is measured in benchmarks/plan-scale.ts; here: a far step works without materializing.
      const plan = planRankEpoch(shards, w, o, 0);
      const ids = plan.batchIds(plan.steps - 2);
      assert.equal(ids.length, 32);
      const before = process.memoryUsage().heapUsed;
      plan.batchIds(plan.steps - 3);
      assert.ok(process.memoryUsage().heapUsed - before < 64 << 20, `${shuffle}: a step must not allocate the epoch`);
    }
  });
});

describe('resume state', () => {
  const shards = Array.from({ length: 20 }, (_, i) => ({ rows: 30 + i, bytes: 1000 }));
  const w = world(0, 4);
  const base = resolveOrderOptions({ batchSize: 8, seed: 3, shuffle: 'window', shuffleWindow: 64, partitions: 4, epochs: 5 }, w);

  function mismatch(fn: () => unknown, field: string): void {
    let caught: unknown;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof GpufeedError, `expected a GpufeedError for ${field}`);
    assert.equal(caught.code, ErrorCodes.RESUME_MISMATCH, caught.message);
    assert.equal(caught.details.field, field, caught.message);
    assert.ok(caught.message.includes(field), caught.message);
  }

  it('is small JSON', () => {
    const s = resumeState(shards, w, base, 2, 7);
    assert.ok(JSON.stringify(s).length < 400);
    assert.deepEqual(resumePoint(JSON.parse(JSON.stringify(s)) as ResumeState, shards, w, base), { epoch: 2, step: 7 });
  });

  it('refuses what cannot continue exactly, naming the field', () => {
    const s = resumeState(shards, w, base, 1, 3);
    mismatch(() => resumePoint(s, shards, w, { ...base, seed: 4 }), 'seed');
    mismatch(() => resumePoint(s, shards, w, { ...base, shuffle: 'naive' }), 'shuffle');
    mismatch(() => resumePoint(s, shards, w, { ...base, shuffleWindow: 65 }), 'shuffleWindow');
    mismatch(() => resumePoint(s, shards, w, { ...base, dropLast: true }), 'dropLast');
    mismatch(() => resumePoint(s, shards, w, { ...base, batchSize: 4 }), 'globalBatchSize');
    mismatch(() => resumePoint(s, shards, world(0, 2), { ...base, batchSize: 16, partitions: 2 }), 'partitions');
    mismatch(() => resumePoint(s, shards, world(0, 2), { ...base, batchSize: 16, partitions: undefined }), 'partitions');
    const resized = shards.map((x, i) => (i === 7 ? { ...x, rows: x.rows + 1 } : x));
    mismatch(() => resumePoint(s, resized, w, base), 'dataset');
    const swapped = [shards[1]!, shards[0]!, ...shards.slice(2)];
    mismatch(() => resumePoint(s, swapped, w, base), 'dataset');
    mismatch(() => resumePoint({ ...s, version: 4 } as unknown as ResumeState, shards, w, base), 'version');
    mismatch(() => resumePoint({ ...s, stepsDone: -1 }, shards, w, base), 'stepsDone');
    mismatch(() => resumePoint(null as unknown as ResumeState, shards, w, base), 'state');
  });

  it('accepts another world size with the same global batch and partitions, and other epochs counts', () => {
    const s = resumeState(shards, w, base, 1, 3);
    const w2 = world(1, 2);
    assert.deepEqual(resumePoint(s, shards, w2, resolveOrderOptions({ ...base, batchSize: 16 }, w2)), { epoch: 1, step: 3 });
    assert.deepEqual(resumePoint(s, shards, w, { ...base, epochs: Infinity }), { epoch: 1, step: 3 });
  });

  it('points past a finished epoch to the next one, and refuses a point past the last epoch', () => {
    const steps = planRankEpoch(shards, w, base, 3).steps;
    assert.deepEqual(resumePoint(resumeState(shards, w, base, 3, steps), shards, w, base), { epoch: 4, step: 0 });
    mismatch(() => resumePoint(resumeState(shards, w, base, 4, steps), shards, w, base), 'epoch');
  });
});
