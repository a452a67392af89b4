// Property tests of weighted mixtures over random streams (1-5 of them, tiny and large, weights or
// absolute counts), world sizes 1-16: each chosen sample exactly once per epoch, equal steps,
// determinism, per-batch proportions, coverage over epochs (every sample before any twice), the
// same global batches on another world size, and locality per stream.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import {
  apportionCounts,
  apportionWeights,
  type MixtureStream,
  type OrderOptions,
  mixtureResumePoint,
  mixtureResumeState,
  planMixtureRankEpoch,
  resolveMixture,
  resumePoint,
  resumeState,
  resolveOrderOptions,
  type ShardSize,
  type World,
} from '../../src/plan/index.js';
import { mulberry32 } from '../helpers/seeded-random.js';

const rng = mulberry32;
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

function world(rank: number, worldSize: number): World {
  return { rank, worldSize, localRank: 0, localWorldSize: 1 };
}

function randomShards(r: () => number): ShardSize[] {
  const kind = int(r, 0, 3);
  if (kind === 0) return [{ rows: int(r, 1, 6), bytes: 1 }]; // tiny
  const count = int(r, 1, kind === 3 ? 40 : 8);
  const shards: ShardSize[] = [];
  for (let i = 0; i < count; i++) {
    const rows = kind === 1 ? int(r, 0, 4) : kind === 2 ? int(r, 1, 60) : int(r, 20, 200);
    shards.push({ rows, bytes: rows });
  }
  if (shards.every((s) => s.rows === 0)) shards.push({ rows: 3, bytes: 3 });
  return shards;
}

function randomStreams(r: () => number): MixtureStream[] {
  const n = int(r, 1, 5);
  const mode = pick(r, ['weight', 'weight', 'samples', 'repeat', 'mixed'] as const);
  const weights = Array.from({ length: n }, () => int(r, 1, 10));
  const sum = weights.reduce((a, b) => a + b, 0);
  return Array.from({ length: n }, (_, k) => {
    const shards = randomShards(r);
    if (mode === 'weight') return { shards, weight: (weights[k] as number) / sum };
    const rows = shards.reduce((a, s) => a + s.rows, 0);
    const samples = { shards, samples: int(r, 0, Math.max(1, rows * 3)) };
    const repeat = { shards, repeat: pick(r, [0.5, 1, 2, 3.25]) };
    if (mode === 'samples') return samples;
    if (mode === 'repeat') return repeat;
    return r() < 0.5 ? samples : repeat;
  });
}

function validPartitions(worldSize: number, globalBatch: number): number[] {
  const out = new Set<number>([worldSize]);
  for (const p of [1, 2, 4, worldSize * 2, worldSize * 4]) if ((p % worldSize === 0 || worldSize % p === 0) && p <= globalBatch) out.add(p);
  return [...out].filter((p) => p <= globalBatch);
}

interface Case {
  streams: MixtureStream[];
  worldSize: number;
  options: OrderOptions;
  label: string;
}

function randomCase(r: () => number, ends = true): Case {
  const streams = randomStreams(r);
  const worldSize = int(r, 1, 16);
  const batchSize = pick(r, [1, 2, 3, 5, 8, 16]);
  const shuffle = pick(r, ['none', 'window', 'naive'] as const);
  const partitions = pick(r, validPartitions(worldSize, batchSize * worldSize));
  const u = r();
  const end = !ends || u < 0.4 ? {} : u < 0.7 ? { dropLast: true } : { pad: true };
  const options = resolveOrderOptions({ batchSize, seed: int(r, 0, 1e9), shuffle, shuffleWindow: int(r, 1, 50), partitions, ...end, epochs: 6 }, world(0, worldSize));
  const label = `streams=${JSON.stringify(streams.map((s) => ({ rows: s.shards.map((x) => x.rows), weight: s.weight, samples: s.samples, repeat: s.repeat })))} W=${worldSize} B=${batchSize} P=${partitions} ${shuffle}/${options.shuffleWindow} dropLast=${options.dropLast} pad=${options.pad}`;
  return { streams, worldSize, options, label };
}

interface Row {
  id: number;
  stream: number;
}

/** batches[rank][step] of rows. */
function epochRows(c: Case, epoch: number, worldSize = c.worldSize, options = c.options): Row[][][] {
  return Array.from({ length: worldSize }, (_, rank) => {
    const plan = planMixtureRankEpoch(c.streams, world(rank, worldSize), options, epoch);
    return Array.from({ length: plan.steps }, (_, step) => {
      const b = plan.batch(step);
      assert.equal(b.ids.length, b.streams.length);
      assert.deepEqual(plan.batchIds(step), b.ids);
      return b.ids.map((id, i) => ({ id, stream: b.streams[i] as number }));
    });
  });
}

const rowsOf = (s: MixtureStream): number => s.shards.reduce((a, x) => a + x.rows, 0);

describe('mixture counts', () => {
  it('apportions weights exactly: the counts sum to the total, each within one of its quota', () => {
    const r = rng(11);
    for (let i = 0; i < 200; i++) {
      const n = int(r, 1, 6);
      const w: number[] = Array.from({ length: n }, () => (r() < 0.15 ? 0 : r()));
      const total = int(r, 0, 1e7);
      const c = apportionWeights(total, w);
      assert.equal(c.reduce((a, b) => a + b, 0), total);
      const sw = w.reduce((a, b) => a + b, 0);
      c.forEach((x, k) => {
        assert.ok(Math.abs(x - (total * (w[k] as number)) / sw) < 1 + 1e-6, `${x} vs quota, ${w}`);
        if (w[k] === 0) assert.equal(x, 0);
      });
      const ints = w.map((x) => Math.round(x * 1000));
      if (ints.some((x) => x > 0)) {
        const e = apportionCounts(total, ints);
        assert.equal(e.reduce((a, b) => a + b, 0), total);
        const si = ints.reduce((a, b) => a + b, 0);
        e.forEach((x, k) => assert.ok(Math.abs(x - (total * (ints[k] as number)) / si) < 1));
      }
    }
  });

  it('derives per-epoch counts from weights, samples and repeat; refuses mixing weights with counts and empty streams', () => {
    const a = { shards: [{ rows: 10, bytes: 1 }] };
    const b = { shards: [{ rows: 30, bytes: 1 }] };
    assert.deepEqual(resolveMixture([{ ...a, weight: 0.5 }, { ...b, weight: 0.5 }]).map((s) => s.perEpoch), [20, 20]);
    assert.deepEqual(resolveMixture([{ ...a, weight: 1 }, { ...b, weight: 3 }], { epochSamples: 8 }).map((s) => s.perEpoch), [2, 6]);
    assert.deepEqual(resolveMixture([{ ...a, samples: 7 }, { ...b, repeat: 2 }]).map((s) => s.perEpoch), [7, 60]);
    assert.deepEqual(resolveMixture([a, b]).map((s) => [s.offset, s.perEpoch]), [[0, 10], [10, 30]]);
    const refuses = (streams: MixtureStream[], pattern: RegExp): void =>
      assert.throws(() => resolveMixture(streams), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.INVALID_OPTION && pattern.test(e.message));
    refuses([{ ...a, weight: 1 }, { ...b, samples: 3 }], /stream 1: has no weight/);
    refuses([{ ...a, weight: 1, samples: 3 }], /stream 0: give one of/);
    refuses([{ ...a, weight: -1 }, { ...b, weight: 1 }], /stream 0: weight must be/);
    refuses([{ ...a, weight: 0 }, { ...b, weight: 0 }], /must not all be 0/);
    refuses([{ shards: [{ rows: 0, bytes: 0 }], samples: 2 }], /stream 0: has no rows/);
  });
});

describe('planMixtureRankEpoch properties over random mixtures', () => {
  it('delivers each chosen sample of each stream exactly once per epoch, in equal steps, ids inside their stream', () => {
    const r = rng(21);
    for (let i = 0; i < 150; i++) {
      const c = randomCase(r);
      const streams = resolveMixture(c.streams);
      const T = streams.reduce((a, s) => a + s.perEpoch, 0);
      const G = c.options.batchSize * c.worldSize;
      const rows = epochRows(c, 1);
      const steps = rows[0]!.length;
      assert.equal(steps, c.options.dropLast ? Math.floor(T / G) : Math.ceil(T / G), c.label);
      for (const rank of rows) {
        assert.equal(rank.length, steps, `equal steps: ${c.label}`);
        rank.forEach((b, step) => {
          if (c.options.pad || c.options.dropLast || step < steps - 1) assert.equal(b.length, c.options.batchSize, `full batch: ${c.label}`);
          else assert.ok(b.length <= c.options.batchSize, c.label);
        });
      }
      const all = rows.flat(2);
      const perStream = streams.map(() => 0);
      for (const row of all) {
        const s = streams[row.stream]!;
        assert.ok(row.id >= s.offset && row.id < s.offset + s.rows, `id ${row.id} inside stream ${row.stream}: ${c.label}`);
        perStream[row.stream]!++;
      }
      const delivered = perStream.reduce((a, b) => a + b, 0);
      if (c.options.pad) assert.equal(delivered, steps * G, c.label);
      else if (c.options.dropLast) {
        assert.equal(delivered, steps * G, c.label);
        assert.ok(T - delivered < G, c.label);
      } else assert.deepEqual(perStream, streams.map((s) => s.perEpoch), `each stream's count: ${c.label}`);
      // Within an epoch a stream's samples are a run of its cycle: no sample more than once per
      // cycle the run touches (ceil(n/N) + 1 of them at most).
      streams.forEach((s, k) => {
        const m = new Map<number, number>();
        for (const row of all) if (row.stream === k) m.set(row.id, (m.get(row.id) ?? 0) + 1);
        if (m.size === 0 || c.options.pad) return;
        assert.ok(Math.max(...m.values()) <= Math.ceil(s.perEpoch / s.rows) + 1, `stream ${k} repeats too often: ${c.label}`);
      });
    }
  });

  it('holds every global batch to the proportions: each stream within one sample (plus 1/fullSteps) of its rate', () => {
    const r = rng(22);
    for (let i = 0; i < 120; i++) {
      const c = randomCase(r, false);
      const streams = resolveMixture(c.streams);
      const T = streams.reduce((a, s) => a + s.perEpoch, 0);
      const G = c.options.batchSize * c.worldSize;
      const rows = epochRows(c, 0);
      const steps = rows[0]!.length;
      const F = Math.floor(T / G);
      for (let step = 0; step < steps; step++) {
        const counts = streams.map(() => 0);
        for (const rank of rows) for (const row of rank[step]!) counts[row.stream]!++;
        const size = step < F ? G : T - F * G;
        counts.forEach((n, k) => {
          const target = (size * streams[k]!.perEpoch) / T;
          const slack = step < F ? 1 + 1 / F : 1;
          assert.ok(Math.abs(n - target) < slack + 1e-9, `step ${step} stream ${k}: ${n} vs ${target.toFixed(2)}: ${c.label}`);
        });
      }
    }
  });

  it('covers every sample before any twice over epochs, also for tiny repeated and large subsampled streams', () => {
    const r = rng(23);
    for (let i = 0; i < 60; i++) {
      const c = randomCase(r, false);
      const streams = resolveMixture(c.streams);
      const seen = streams.map(() => new Map<number, number>());
      for (let epoch = 0; epoch < 4; epoch++) {
        for (const row of epochRows(c, epoch).flat(2)) {
          const m = seen[row.stream]!;
          m.set(row.id, (m.get(row.id) ?? 0) + 1);
        }
        streams.forEach((s, k) => {
          const m = seen[k]!;
          const total = [...m.values()].reduce((a, b) => a + b, 0);
          assert.equal(total, (epoch + 1) * s.perEpoch, c.label);
          if (total === 0) return;
          const lo = m.size < s.rows ? 0 : Math.min(...m.values());
          assert.ok(Math.max(...m.values()) - lo <= 1, `after epoch ${epoch}, stream ${k}: seen ${lo}..${Math.max(...m.values())} times: ${c.label}`);
          assert.equal(m.size, Math.min(s.rows, total), `distinct samples of stream ${k}: ${c.label}`);
        });
      }
    }
  });

  it('is deterministic and random access, and gives the same global batches on another world size', () => {
    const r = rng(24);
    for (let i = 0; i < 80; i++) {
      const c = randomCase(r);
      const rank = int(r, 0, c.worldSize - 1);
      const a = planMixtureRankEpoch(c.streams, world(rank, c.worldSize), c.options, 2);
      const b = planMixtureRankEpoch(c.streams.map((s) => ({ ...s, shards: s.shards.map((x) => ({ ...x })) })), world(rank, c.worldSize), { ...c.options }, 2);
      const forward = Array.from({ length: a.steps }, (_, s) => a.batch(s));
      for (let s = b.steps - 1; s >= 0; s--) assert.deepEqual(b.batch(s), forward[s], c.label);

      // Another world size with the same global batch and partitions: the same multiset per step.
      const G = c.options.batchSize * c.worldSize;
      const P = c.options.partitions!;
      const others = Array.from({ length: 16 }, (_, w) => w + 1).filter((w) => G % w === 0 && (P % w === 0 || w % P === 0) && w !== c.worldSize);
      if (others.length === 0) continue;
      const W2 = pick(r, others);
      const opts2 = { ...c.options, batchSize: G / W2 };
      const one = epochRows(c, 2);
      const two = epochRows(c, 2, W2, opts2);
      assert.equal(two[0]!.length, one[0]!.length, c.label);
      const key = (x: Row): string => `${x.stream}:${x.id}`;
      for (let step = 0; step < one[0]!.length; step++) {
        const g1 = one.flatMap((rk) => rk[step]!).map(key).sort();
        const g2 = two.flatMap((rk) => rk[step]!).map(key).sort();
        assert.deepEqual(g2, g1, `step ${step}, W ${c.worldSize} -> ${W2}: ${c.label}`);
      }
      // World-size independent partitions: the concatenated partition batches are the global batch.
      const plan = planMixtureRankEpoch(c.streams, world(0, c.worldSize), c.options, 2);
      if (plan.steps > 0) {
        const step = int(r, 0, plan.steps - 1);
        const byPartition = Array.from({ length: plan.mixture.layout.partitions }, (_, p) => plan.mixture.partitionBatch(p, step).ids).flat();
        assert.deepEqual(byPartition, one.flatMap((rk) => rk[step]!.map((x) => x.id)), c.label);
      }
    }
  });

  it('reads, per rank and stream, about its share of the stream\'s shards (window and none)', () => {
    const r = rng(25);
    for (let i = 0; i < 40; i++) {
      const worldSize = int(r, 1, 8);
      const rowsPerShard = int(r, 5, 30);
      const streams: MixtureStream[] = Array.from({ length: int(r, 1, 3) }, () => ({
        shards: Array.from({ length: int(r, 2, 30) }, () => ({ rows: rowsPerShard, bytes: rowsPerShard })),
        weight: int(r, 1, 5),
      }));
      const shuffle = pick(r, ['none', 'window'] as const);
      const options = resolveOrderOptions({ batchSize: pick(r, [2, 4, 8]), seed: int(r, 0, 1000), shuffle, shuffleWindow: int(r, 1, 20), epochs: 3 }, world(0, worldSize));
      const c: Case = { streams, worldSize, options, label: `W=${worldSize} rows/shard=${rowsPerShard} ${shuffle}` };
      const resolved = resolveMixture(streams);
      const rows = epochRows(c, 1);
      rows.forEach((rank) => {
        resolved.forEach((s, k) => {
          const mine = rank.flat().filter((x) => x.stream === k);
          const shards = new Set(mine.map((x) => Math.floor((x.id - s.offset) / rowsPerShard)));
          // A contiguous range of the epoch's items: whole shards, plus one at each end and at a cycle edge.
          assert.ok(shards.size <= Math.ceil(mine.length / rowsPerShard) + 3, `rank reads ${shards.size} shards for ${mine.length} samples: ${c.label}`);
        });
      });
    }
  });

  it('refuses bad steps and positions by name', () => {
    const plan = planMixtureRankEpoch([{ shards: [{ rows: 10, bytes: 1 }], weight: 1 }], world(0, 1), resolveOrderOptions({ batchSize: 4 }, world(0, 1)), 0);
    assert.throws(() => plan.batch(plan.steps), (e: unknown) => e instanceof GpufeedError && e.code === ErrorCodes.INVALID_OPTION && /step/.test(e.message));
    assert.throws(() => plan.mixture.positions(0, 3, 9), (e: unknown) => e instanceof GpufeedError && /positions/.test(e.message));
    assert.throws(() => plan.mixture.partitionBatch(1, 0), (e: unknown) => e instanceof GpufeedError && /partition/.test(e.message));
  });
});

describe('mixture resume states', () => {
  it('resumes exactly at random steps, on the same and on another world size with the same global batch', () => {
    const r = rng(31);
    for (let i = 0; i < 60; i++) {
      const c = randomCase(r);
      const streams = resolveMixture(c.streams);
      const one = epochRows(c, 1);
      const steps = one[0]!.length;
      if (steps === 0) continue;
      const done = int(r, 0, steps);
      const state = JSON.parse(JSON.stringify(mixtureResumeState(streams, world(0, c.worldSize), c.options, 1, done)));
      const G = c.options.batchSize * c.worldSize;
      const P = c.options.partitions!;
      const sizes = Array.from({ length: 16 }, (_, w) => w + 1).filter((w) => G % w === 0 && (P % w === 0 || w % P === 0));
      const W2 = pick(r, sizes);
      const opts2 = { ...c.options, batchSize: G / W2 };
      const point = mixtureResumePoint(state, resolveMixture(c.streams), world(0, W2), opts2);
      assert.deepEqual(point, done === steps ? { epoch: 2, step: 0 } : { epoch: 1, step: done }, c.label);
      if (done === steps) continue;
      const rest = one.flatMap((rank) => rank.slice(done).flat()).map((x) => `${x.stream}:${x.id}`).sort();
      const resumed = epochRows(c, 1, W2, opts2).flatMap((rank) => rank.slice(point.step).flat()).map((x) => `${x.stream}:${x.id}`).sort();
      assert.deepEqual(resumed, rest, `resume at ${done} on W ${c.worldSize} -> ${W2}: ${c.label}`);
    }
  });

  it('refuses another mixture by name, unless the change is intended (then from the next epoch)', () => {
    const w1 = world(0, 2);
    const options = resolveOrderOptions({ batchSize: 4, epochs: 5 }, w1);
    const a = { shards: [{ rows: 40, bytes: 1, hash: 'sha256:aa' }] };
    const b = { shards: [{ rows: 25, bytes: 1, hash: 'sha256:bb' }] };
    const mix = resolveMixture([{ ...a, weight: 0.7 }, { ...b, weight: 0.3 }]);
    const state = mixtureResumeState(mix, w1, options, 1, 3);
    assert.deepEqual(mixtureResumePoint(state, resolveMixture([{ ...a, weight: 0.7 }, { ...b, weight: 0.3 }]), w1, options), { epoch: 1, step: 3 });
    const refused = (streams: ReturnType<typeof resolveMixture>, stream: number | undefined, pattern: RegExp): void =>
      assert.throws(() => mixtureResumePoint(state, streams, w1, options), (e: unknown) =>
        e instanceof GpufeedError && e.code === ErrorCodes.RESUME_MISMATCH && e.details.field === 'mixture' && e.details.stream === stream && pattern.test(e.message));
    const reweighted = resolveMixture([{ ...a, weight: 0.5 }, { ...b, weight: 0.5 }]);
    refused(reweighted, 0, /stream 0 has weight 0.7 .* now weight 0.5.*next-epoch/);
    refused(resolveMixture([{ ...a, weight: 0.7 }, { shards: [{ rows: 25, bytes: 1, hash: 'sha256:cc' }], weight: 0.3 }]), 1, /stream 1 holds other data/);
    refused(resolveMixture([{ ...a, weight: 1 }]), undefined, /2 streams, now 1/);
    assert.deepEqual(mixtureResumePoint(state, reweighted, w1, options, 'next-epoch'), { epoch: 2, step: 0 });
    // Other fields are still checked with an intended change.
    assert.throws(() => mixtureResumePoint(state, reweighted, w1, { ...options, seed: 9 }, 'next-epoch'), (e: unknown) => e instanceof GpufeedError && e.details.field === 'seed');
    // Single dataset and mixture states do not resume one another.
    const single = resumeState(a.shards, w1, options, 0, 2);
    assert.throws(() => mixtureResumePoint(single, mix, w1, options), (e: unknown) => e instanceof GpufeedError && e.details.field === 'mixture' && /single dataset/.test(e.message));
    assert.throws(() => resumePoint(state, a.shards, w1, options), (e: unknown) => e instanceof GpufeedError && e.details.field === 'mixture');
    assert.deepEqual(resumePoint(single, a.shards, w1, options), { epoch: 0, step: 2 });
  });
});
