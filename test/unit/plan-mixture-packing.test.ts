// Packing over a weighted mixture as property tests, without storage: random 1-5 stream mixtures
// (tiny and larger streams, weights or absolute counts), random document lengths (1 token to 5x
// the row length), world sizes 1-16, resume at random steps on the same and other world sizes.
// The packers and the feed (plan/packing.ts, plan/mixture-packing.ts: the code the loader runs)
// are fed the documents' lengths; what they cut is checked against the mixture's own plan
// (MixtureEpoch.partitionBatch, tested on its own in plan-mixture.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MixtureEpoch, resolveMixture, resolveOrderOptions, type MixtureStream, type OrderOptions, type ResolvedStream, type World } from '../../src/plan/index.js';
import { mixtureDocOptions, mixturePackLayout, type MixtureFeed, type MixturePackLayout } from '../../src/plan/mixture-packing.js';
import { feedPlan, packPartitionCount, RankPacker, rankFeed, rankRuns, type Segment } from '../../src/plan/packing.js';
import { mulberry32 } from '../helpers/seeded-random.js';

interface Case {
  streams: ResolvedStream[];
  /** Tokens of each global document id. */
  lengths: number[];
  streamTokens: number[];
  L: number;
}

function makeCase(rnd: () => number): Case {
  const L = [3, 8, 16, 32][Math.floor(rnd() * 4)]!;
  const K = 1 + Math.floor(rnd() * 5);
  const lengths: number[] = [];
  const specs: MixtureStream[] = [];
  const streamTokens: number[] = [];
  const kind = rnd() < 0.5 ? 'weight' : rnd() < 0.5 ? 'samples' : 'repeat';
  const weights = Array.from({ length: K }, () => 0.05 + rnd());
  const sum = weights.reduce((a, b) => a + b, 0);
  for (let k = 0; k < K; k++) {
    // Tiny streams (a few documents) beside larger ones.
    const rows = rnd() < 0.3 ? 1 + Math.floor(rnd() * 4) : 10 + Math.floor(rnd() * 120);
    const meanish = rnd() < 0.5 ? L : 5 * L;
    const shards = [];
    let left = rows;
    let tokens = 0;
    for (let s = 0; left > 0; s++) {
      const n = Math.min(left, 1 + Math.floor(rnd() * 60));
      left -= n;
      shards.push({ rows: n, bytes: 1, hash: `sha256:${String(k * 100 + s).padStart(64, '0')}` });
      for (let i = 0; i < n; i++) {
        const len = rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * meanish);
        lengths.push(len);
        tokens += len;
      }
    }
    streamTokens.push(tokens);
    const spec: MixtureStream = { shards };
    if (kind === 'weight') spec.weight = weights[k]! / sum;
    else if (kind === 'samples') spec.samples = Math.floor(rnd() * 2.5 * rows);
    else spec.repeat = [0.5, 1, 1.5, 2][Math.floor(rnd() * 4)]!;
    specs.push(spec);
  }
  const epochSamples = kind === 'weight' ? 20 + Math.floor(rnd() * 400) : undefined;
  return { streams: resolveMixture(specs, epochSamples === undefined ? {} : { epochSamples }), lengths, streamTokens, L };
}

function partitionChoices(worldSize: number, globalBatch: number): number[] {
  const out: number[] = [];
  for (let p = 1; p <= globalBatch; p++) if (p % worldSize === 0 || worldSize % p === 0) out.push(p);
  return out;
}

type Rows = Map<string, string>;
type Start = { epoch: number; step: number; carry: Map<number, [number, number]> };

/** Runs rank `rank` from `start` through the epochs, as the packed loader does; rows under their global names. */
async function runRank(c: Case, world: World, order: OrderOptions, layout: MixturePackLayout, start: Start, rows: Rows, stopAfter?: number): Promise<{ steps: number; carries?: Record<string, [number, number]>; dropped: number; padded: number }> {
  const runs = rankRuns(layout, world.rank, order.batchSize);
  const feed: MixtureFeed = { streams: c.streams, globalBatch: layout.globalBatch, partitions: layout.partitions.length, docsPerRow: layout.docsPerRow };
  const { spec, carries } = rankFeed(layout, runs, start, 1 + (world.rank % 5), feed);
  // The spec crosses to the decode workers: it must survive a structured clone.
  const cloned = structuredClone(spec);
  const packer = new RankPacker<number>(layout, runs, spec, carries, start.epoch);
  let fe = start.epoch;
  let ff = 0;
  const plans = new Map<number, ReturnType<typeof feedPlan>>();
  const pull = async (): Promise<boolean> => {
    if (ff >= spec.steps) {
      fe += 1;
      ff = 0;
    }
    if (fe >= order.epochs) return false;
    let plan = plans.get(fe);
    if (!plan) plans.set(fe, (plan = feedPlan([], cloned, order, fe)));
    const ids = plan.batchIds(ff);
    assert.equal(packer.feed(fe, ff, (i) => c.lengths[ids[i]!]!, (i) => ids[i]!), ids.length);
    ff += 1;
    return true;
  };
  let steps = 0;
  for (let e = start.epoch; e < order.epochs; e++) {
    if (e !== packer.epoch) packer.nextEpoch();
    for (let s = e === start.epoch ? start.step : 0; s < layout.steps; s++) {
      if (stopAfter !== undefined && steps === stopAfter) return { steps, carries: packer.carries(s), dropped: packer.droppedTokens, padded: packer.paddedTokens };
      const got: Segment<number>[][] = [];
      const n = await packer.cut(s, pull, (j, segs) => {
        assert.equal(j, got.length);
        got.push(segs);
      });
      assert.equal(n, order.batchSize, 'a full batch every step');
      let j = 0;
      for (const run of runs) {
        const part = layout.partitions[run.partition]!;
        for (let k = run.from; k < run.to; k++, j++) {
          const segs = got[j]!;
          assert.equal(segs.reduce((a, x) => a + x.count, 0), layout.length, 'a row holds exactly length tokens');
          const key = `${e}:${run.partition}:${s * part.share + k}`;
          assert.ok(!rows.has(key) || rows.get(key) === JSON.stringify(segs), `row ${key} differs between runs`);
          rows.set(key, JSON.stringify(segs));
        }
      }
      steps++;
    }
  }
  // As the loader does at the end of a run: the rest of the feed is the dropped tail.
  while (await pull());
  packer.drain();
  return { steps, dropped: packer.droppedTokens, padded: packer.paddedTokens };
}

/** Partition p's documents of epoch e in the mixture's plan order: its m c_p positions of every document step. */
function partitionDocs(c: Case, order: OrderOptions, layout: MixturePackLayout, e: number): { ids: number[]; streams: number[] }[] {
  const m = layout.docsPerRow;
  const epoch = new MixtureEpoch(c.streams, mixtureDocOptions(order, layout.partitions.length), m * layout.globalBatch, e);
  return layout.partitions.map((part, p) => {
    const ids: number[] = [];
    const streams: number[] = [];
    for (let s = 0; s < epoch.steps; s++) {
      // Partition p's document positions: m per packed row it owns.
      const b = epoch.positions(s, m * part.shareStart, m * (part.shareStart + part.share));
      ids.push(...b.ids);
      streams.push(...b.streams);
    }
    assert.equal(ids.length, part.size, `partition ${p}: the layout's documents are the plan's`);
    return { ids, streams };
  });
}

/**
 * Each partition's rows, in row order, are its documents' tokens in plan order from the first
 * (each chosen document's tokens once), then padding only once they run out; what is past the
 * last row is the dropped tail. Returns the epoch's dropped and padded tokens.
 */
function checkEpoch(c: Case, order: OrderOptions, layout: MixturePackLayout, rows: Rows, e: number): { dropped: number; padded: number } {
  const docs = partitionDocs(c, order, layout, e);
  let dropped = 0;
  let padded = 0;
  layout.partitions.forEach((part, p) => {
    let d = 0;
    let off = 0;
    for (let row = 0; row < layout.steps * part.share; row++) {
      const json = rows.get(`${e}:${p}:${row}`);
      assert.ok(json, `row ${e}:${p}:${row} delivered`);
      for (const s of JSON.parse(json) as Segment<number>[]) {
        if (s.doc === undefined || s.doc === null) {
          assert.equal(d, docs[p]!.ids.length, 'padding only once the documents ran out');
          padded += s.count;
          continue;
        }
        assert.equal(s.doc, docs[p]!.ids[d], `partition ${p} row ${row}: the plan's next document`);
        assert.equal(s.offset, off, 'the document continues where it stopped');
        assert.ok(s.offset + s.count <= c.lengths[s.doc]!, 'a segment stays within its document');
        off += s.count;
        if (off === c.lengths[s.doc]) {
          d += 1;
          off = 0;
        }
      }
    }
    for (let i = d; i < docs[p]!.ids.length; i++) dropped += c.lengths[docs[p]!.ids[i]!]!;
    dropped -= off;
  });
  return { dropped, padded };
}

describe('packing over a mixture (property tests)', () => {
  it('each chosen document\'s tokens once per epoch but the reported tail, equal steps, deterministic, proportions kept', async () => {
    const rnd = mulberry32(2024);
    let checked = 0;
    for (let trial = 0; trial < 50; trial++) {
      const c = makeCase(rnd);
      const worldSize = 1 + Math.floor(rnd() * 16);
      const batchSize = 1 + Math.floor(rnd() * 3);
      const choices = partitionChoices(worldSize, worldSize * batchSize);
      const partitions = choices[Math.floor(rnd() * choices.length)]!;
      const pad = rnd() < 0.3;
      const shuffle = (['none', 'window', 'naive'] as const)[Math.floor(rnd() * 3)]!;
      const world: World = { rank: 0, worldSize, localRank: 0, localWorldSize: 1 };
      const order = resolveOrderOptions({ batchSize, partitions, pad, shuffle, shuffleWindow: 7, seed: trial, epochs: 2 }, world);
      const P = packPartitionCount(world, order);
      const layout = mixturePackLayout(c.streams, c.streamTokens, order, batchSize * worldSize, P, c.L, pad);
      const rows: Rows = new Map();
      let dropped = 0;
      let padded = 0;
      for (let rank = 0; rank < worldSize; rank++) {
        const r = await runRank(c, { ...world, rank }, order, layout, { epoch: 0, step: 0, carry: new Map() }, rows);
        assert.equal(r.steps, 2 * layout.steps, 'every rank the same steps');
        dropped += r.dropped;
        padded += r.padded;
      }
      let epochDropped = 0;
      let epochPadded = 0;
      for (let e = 0; e < 2; e++) {
        const x = checkEpoch(c, order, layout, rows, e);
        epochDropped += x.dropped;
        epochPadded += x.padded;
      }
      // Each partition read by one rank: the ranks' counts are the epochs' drop and padding.
      if (P % worldSize === 0) {
        assert.equal(dropped, epochDropped, 'the ranks report the dropped tail');
        assert.equal(padded, epochPadded, 'the ranks report the padding');
      }
      if (!pad && layout.steps > 0) assert.ok(epochPadded <= 2 * layout.partitions.length * c.L * 2 || epochPadded < epochDropped, `little padding without pad: ${epochPadded}`);
      // Deterministic: rank 0 again cuts the same rows (runRank compares each row it sees twice).
      await runRank(c, world, order, layout, { epoch: 0, step: 0, carry: new Map() }, rows);
      // Proportions: each packed global step's documents (segments starting a document), per
      // stream, are within one document per partition per document step they span of the
      // mixture's share, as the plan's stretches are.
      if (layout.steps > 0) {
        const docs = partitionDocs(c, order, layout, 0);
        const share = c.streams.map((s) => s.perEpoch / c.streams.reduce((a, x) => a + x.perEpoch, 0));
        const streamOf = new Map<number, number>();
        docs.forEach((d) => d.ids.forEach((id, i) => streamOf.set(id, d.streams[i]!)));
        for (let s = 0; s < layout.steps; s++) {
          const counts = c.streams.map(() => 0);
          let spans = 0;
          layout.partitions.forEach((part, p) => {
            const starts: number[] = [];
            for (let row = s * part.share; row < (s + 1) * part.share; row++) {
              for (const seg of JSON.parse(rows.get(`0:${p}:${row}`)!) as Segment<number>[]) if (seg.doc !== undefined && seg.doc !== null && seg.offset === 0) starts.push(seg.doc);
            }
            for (const id of starts) counts[streamOf.get(id)!]! += 1;
            // Document steps of partition p this stretch spans (m c_p documents each).
            spans += Math.ceil(starts.length / (layout.docsPerRow * part.share)) + 1;
          });
          const n = counts.reduce((a, b) => a + b, 0);
          counts.forEach((m, k) => assert.ok(Math.abs(m - share[k]! * n) <= spans + 1, `step ${s} stream ${k}: ${m} of ${n} documents, share ${share[k]!.toFixed(3)}`));
        }
        checked++;
      }
    }
    assert.ok(checked > 20, `enough mixtures with steps: ${checked}`);
  });

  it('resume at a random step, on the same or another world size, with all carries, one rank\'s, or none', async () => {
    const rnd = mulberry32(77);
    let resumed = 0;
    for (let trial = 0; trial < 30; trial++) {
      const c = makeCase(rnd);
      const G = [1, 2, 4, 6, 8, 12, 16][Math.floor(rnd() * 7)]!;
      const worlds = [1, 2, 3, 4, 6, 8, 12, 16].filter((w) => G % w === 0);
      const w1 = worlds[Math.floor(rnd() * worlds.length)]!;
      const w2 = worlds[Math.floor(rnd() * worlds.length)]!;
      const choices = partitionChoices(w1, G).filter((p) => p % w2 === 0 || w2 % p === 0);
      const partitions = choices[Math.floor(rnd() * choices.length)]!;
      const pad = rnd() < 0.3;
      const shuffle = (['none', 'window'] as const)[Math.floor(rnd() * 2)]!;
      const order1 = resolveOrderOptions({ batchSize: G / w1, partitions, pad, shuffle, shuffleWindow: 5, seed: trial, epochs: 2 }, { rank: 0, worldSize: w1, localRank: 0, localWorldSize: 1 });
      const order2 = resolveOrderOptions({ batchSize: G / w2, partitions, pad, shuffle, shuffleWindow: 5, seed: trial, epochs: 2 }, { rank: 0, worldSize: w2, localRank: 0, localWorldSize: 1 });
      const layout = mixturePackLayout(c.streams, c.streamTokens, order1, G, partitions, c.L, pad);
      assert.deepEqual(mixturePackLayout(c.streams, c.streamTokens, order2, G, partitions, c.L, pad), layout, 'the layout does not depend on the world size');
      if (layout.steps === 0) continue;
      const full: Rows = new Map();
      for (let rank = 0; rank < w1; rank++) await runRank(c, { rank, worldSize: w1, localRank: 0, localWorldSize: 1 }, order1, layout, { epoch: 0, step: 0, carry: new Map() }, full);
      const k = Math.floor(rnd() * layout.steps);
      const carries: Record<string, [number, number]>[] = [];
      for (let rank = 0; rank < w1; rank++) {
        const r = await runRank(c, { rank, worldSize: w1, localRank: 0, localWorldSize: 1 }, order1, layout, { epoch: 0, step: 0, carry: new Map() }, new Map(), k);
        carries.push(r.carries ?? {});
      }
      const all = new Map<number, [number, number]>(carries.flatMap((x) => Object.entries(x).map(([p, v]) => [Number(p), v] as [number, [number, number]])));
      const rank0 = new Map<number, [number, number]>(Object.entries(carries[0]!).map(([p, v]) => [Number(p), v] as [number, [number, number]]));
      assert.equal(all.size, partitions, 'the ranks together know every partition\'s carry');
      for (const carry of [all, rank0, new Map<number, [number, number]>()]) {
        const again: Rows = new Map();
        for (let rank = 0; rank < w2; rank++) {
          const r = await runRank(c, { rank, worldSize: w2, localRank: 0, localWorldSize: 1 }, order2, layout, { epoch: 0, step: k, carry }, again);
          assert.equal(r.steps, 2 * layout.steps - k, 'equal steps after the resume');
        }
        const expected = [...full.entries()].filter(([key]) => {
          const [e, p, row] = key.split(':').map(Number) as [number, number, number];
          return e > 0 || row >= k * layout.partitions[p]!.share;
        });
        assert.equal(again.size, expected.length);
        for (const [key, segs] of expected) assert.equal(again.get(key), segs, `row ${key} after resuming at step ${k} on ${w2} ranks`);
      }
      resumed++;
    }
    assert.ok(resumed > 10, `enough resumes: ${resumed}`);
  });
});

describe('mixture interleave at a global batch of a multiple of 1,024', () => {
  it('counts a whole step as its composition, so partitions hold every chosen sample once', async () => {
    const { Interleave } = await import('../../src/plan/mixture-layout.js');
    assert.deepEqual(new Interleave([700, 324]).countsBefore(1024), [700, 324]);
    assert.deepEqual(new Interleave([1500, 548]).countsBefore(2048), [1500, 548]);
    const { planMixtureRankEpoch } = await import('../../src/plan/index.js');
    const streams = resolveMixture([{ shards: [{ rows: 3000, bytes: 1, hash: 'sha256:a' }] }, { shards: [{ rows: 1100, bytes: 1, hash: 'sha256:b' }], repeat: 2 }]);
    const world: World = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 };
    const plan = planMixtureRankEpoch(streams, world, { batchSize: 1024, shuffle: 'window', shuffleWindow: 64, seed: 3, partitions: 1 } as OrderOptions, 0);
    const seen = new Map<number, number>();
    for (let s = 0; s < plan.steps; s++) for (const id of plan.batch(s).ids) seen.set(id, (seen.get(id) ?? 0) + 1);
    for (let id = 0; id < 3000; id++) assert.equal(seen.get(id), 1, `stream 0 sample ${id} once`);
    for (let id = 3000; id < 4100; id++) assert.equal(seen.get(id), 2, `stream 1 sample ${id} twice (repeat 2)`);
  });
});
