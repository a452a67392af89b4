// Packing's plan as property tests, without storage: random document lengths (1 token to 5x the
// row length), random pieces, world sizes 1-16, resume at random steps on the same and other world
// sizes. The packers (plan/packing.ts, the code the loader runs) are fed the documents' lengths.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOrderOptions, type OrderOptions, type World } from '../../src/plan/index.js';
import {
  feedPlan, packLayout, packPartitionCount, RankPacker, rankFeed, rankRuns, type PackLayout, type PackShard, type Segment,
} from '../../src/plan/packing.js';
import { mulberry32 } from '../helpers/seeded-random.js';

interface Case {
  shards: PackShard[];
  lengths: number[];
  L: number;
}

function makeCase(rnd: () => number): Case {
  const L = [3, 8, 16, 32][Math.floor(rnd() * 4)]!;
  const lengths: number[] = [];
  const shards: PackShard[] = [];
  const nShards = 1 + Math.floor(rnd() * 5);
  const longTail = rnd() < 0.5;
  for (let s = 0; s < nShards; s++) {
    const pieceRows: number[] = [];
    const pieceTokens: number[] = [];
    const pieces = 1 + Math.floor(rnd() * 8);
    for (let k = 0; k < pieces; k++) {
      const rows = Math.floor(rnd() * 12);
      let tokens = 0;
      for (let i = 0; i < rows; i++) {
        const n = longTail && rnd() < 0.2 ? 1 + Math.floor(rnd() * 5 * L) : 1 + Math.floor(rnd() * L);
        lengths.push(n);
        tokens += n;
      }
      pieceRows.push(rows);
      pieceTokens.push(tokens);
    }
    shards.push({ rows: pieceRows.reduce((a, b) => a + b, 0), bytes: 1, hash: `sha256:${String(s).padStart(64, '0')}`, pieceRows, pieceTokens });
  }
  return { shards, lengths, L };
}

/** Partition counts valid for the world: divide or multiples of it, at most the global batch. */
function partitionChoices(worldSize: number, globalBatch: number): number[] {
  const out: number[] = [];
  for (let p = 1; p <= globalBatch; p++) if (p % worldSize === 0 || worldSize % p === 0) out.push(p);
  return out;
}

type Rows = Map<string, string>;

/**
 * Runs rank `rank` from (epoch, step) with the given carries through `epochs`; records every row it
 * delivers under its global name (epoch, partition, row index) with its segments, and returns the
 * carries after `stopAfter` steps when asked.
 */
async function runRank(c: Case, world: World, order: OrderOptions, layout: PackLayout, start: { epoch: number; step: number; carry: Map<number, [number, number]> }, rows: Rows, stopAfter?: number): Promise<{ steps: number; carries?: Record<string, [number, number]>; dropped: number }> {
  const runs = rankRuns(layout, world.rank, order.batchSize);
  const perStep = 1 + (world.rank % 5);
  const { spec, carries } = rankFeed(layout, runs, start, perStep);
  // The done hook (the loader recycles token buffers by it): once per document a packer took, only
  // after its last token was cut (no later row holds it), and for all of an epoch's at its end.
  const fed = new Map<string, number>();
  let rowsSeen = 0;
  const packer: RankPacker<number> = new RankPacker<number>(layout, runs, spec, carries, start.epoch, (id) => {
    const key = `${packer.epoch}:${id}`;
    assert.equal(fed.get(key), -1, `document ${key} done once, after it was fed`);
    fed.set(key, rowsSeen);
  });
  const allDone = (epoch: number): void => {
    for (const [key, v] of fed) if (key.startsWith(`${epoch}:`)) assert.ok(v >= 0, `document ${key} done by its epoch's end`);
  };
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
    if (!plan) plans.set(fe, (plan = feedPlan(c.shards, spec, order, fe)));
    const ids = plan.batchIds(ff);
    const n = packer.feed(fe, ff, (i) => c.lengths[ids[i]!]!, (i) => {
      fed.set(`${fe}:${ids[i]!}`, -1);
      return ids[i]!;
    });
    assert.equal(n, ids.length);
    ff += 1;
    return true;
  };
  let steps = 0;
  for (let e = start.epoch; e < order.epochs; e++) {
    if (e !== packer.epoch) {
      packer.nextEpoch();
      allDone(e - 1);
    }
    for (let s = e === start.epoch ? start.step : 0; s < layout.steps; s++) {
      if (stopAfter !== undefined && steps === stopAfter) return { steps, carries: packer.carries(s), dropped: packer.droppedTokens };
      const got: Segment<number>[][] = [];
      const n = await packer.cut(s, pull, (j, segs) => {
        assert.equal(j, got.length);
        for (const seg of segs) {
          if (seg.doc === undefined) continue;
          const at = fed.get(`${e}:${seg.doc}`);
          assert.ok(at === -1 || at === rowsSeen, `row holds document ${seg.doc}, done before (or never fed)`);
        }
        rowsSeen += 1;
        got.push(segs);
      });
      assert.equal(n, order.batchSize, 'a full batch every step');
      // Name each row globally: which partition's which row this position of the global batch is.
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
  const dropped = packer.droppedTokens;
  packer.drain();
  allDone(packer.epoch);
  return { steps, dropped };
}

/** Every token of each epoch once, less the layout's dropped tokens, plus its padding. */
function checkCoverage(c: Case, layout: PackLayout, rows: Rows, epochs: number): void {
  for (let e = 0; e < epochs; e++) {
    const seen = new Map<number, Uint8Array>();
    let padding = 0;
    let tokens = 0;
    for (const [key, json] of rows) {
      if (!key.startsWith(`${e}:`)) continue;
      for (const s of JSON.parse(json) as Segment<number>[]) {
        if (s.doc === undefined || s.doc === null) {
          padding += s.count;
          continue;
        }
        let marks = seen.get(s.doc);
        if (!marks) seen.set(s.doc, (marks = new Uint8Array(c.lengths[s.doc]!)));
        for (let i = s.offset; i < s.offset + s.count; i++) {
          assert.ok(i < marks.length, 'a segment stays within its document');
          assert.equal(marks[i], 0, `epoch ${e}: token ${i} of document ${s.doc} twice`);
          marks[i] = 1;
          tokens++;
        }
      }
    }
    assert.equal(tokens, layout.tokens - layout.droppedTokens, `epoch ${e}: every token but the dropped ones`);
    assert.equal(padding, layout.paddedTokens, `epoch ${e}: the padding the layout reports`);
  }
}

describe('packing plan (property tests)', () => {
  it('every token once per epoch but the reported drop/pad, equal steps, deterministic, balanced', async () => {
    const rnd = mulberry32(12);
    for (let trial = 0; trial < 60; trial++) {
      const c = makeCase(rnd);
      const worldSize = 1 + Math.floor(rnd() * 16);
      const batchSize = 1 + Math.floor(rnd() * 3);
      const choices = partitionChoices(worldSize, worldSize * batchSize);
      const partitions = choices[Math.floor(rnd() * choices.length)]!;
      const pad = rnd() < 0.3;
      const shuffle = (['none', 'window', 'naive'] as const)[Math.floor(rnd() * 3)]!;
      const world: World = { rank: 0, worldSize, localRank: 0, localWorldSize: 1 };
      const order = resolveOrderOptions({ batchSize, partitions, pad, shuffle, shuffleWindow: 7, seed: trial, epochs: 2 }, world);
      const layout = packLayout(c.shards, batchSize * worldSize, packPartitionCount(world, order), c.L, pad);
      assert.equal(layout.tokens, c.lengths.reduce((a, b) => a + b, 0));
      const rows: Rows = new Map();
      for (let rank = 0; rank < worldSize; rank++) {
        const r = await runRank(c, { ...world, rank }, order, layout, { epoch: 0, step: 0, carry: new Map() }, rows);
        assert.equal(r.steps, 2 * layout.steps, 'every rank the same steps');
      }
      checkCoverage(c, layout, rows, 2);
      // Deterministic: rank 0 again gives the same rows (runRank checks each row it sees twice).
      await runRank(c, world, order, layout, { epoch: 0, step: 0, carry: new Map() }, rows);
      if (!pad && layout.steps > 0) {
        // Balanced: no partition drops more than a step's worth of its rows plus its largest piece.
        const maxPiece = Math.max(...c.shards.flatMap((s) => s.pieceTokens));
        for (const part of layout.partitions) assert.ok(part.tokens - layout.steps * part.share * c.L <= part.share * c.L + 2 * maxPiece * (layout.partitions.length) , 'little dropped');
      }
    }
  });

  it('resume at a random step, on the same or another world size, with all carries, one rank\'s, or none', async () => {
    const rnd = mulberry32(99);
    for (let trial = 0; trial < 40; trial++) {
      const c = makeCase(rnd);
      const G = [1, 2, 4, 6, 8, 12, 16][Math.floor(rnd() * 7)]!;
      const worlds = [1, 2, 3, 4, 6, 8, 12, 16].filter((w) => G % w === 0);
      const w1 = worlds[Math.floor(rnd() * worlds.length)]!;
      const w2 = worlds[Math.floor(rnd() * worlds.length)]!;
      // Partitions both worlds can split.
      const choices = partitionChoices(w1, G).filter((p) => p % w2 === 0 || w2 % p === 0);
      const partitions = choices[Math.floor(rnd() * choices.length)]!;
      const pad = rnd() < 0.3;
      const shuffle = (['none', 'window'] as const)[Math.floor(rnd() * 2)]!;
      const order1 = resolveOrderOptions({ batchSize: G / w1, partitions, pad, shuffle, shuffleWindow: 5, seed: trial, epochs: 2 }, { rank: 0, worldSize: w1, localRank: 0, localWorldSize: 1 });
      const order2 = resolveOrderOptions({ batchSize: G / w2, partitions, pad, shuffle, shuffleWindow: 5, seed: trial, epochs: 2 }, { rank: 0, worldSize: w2, localRank: 0, localWorldSize: 1 });
      const layout = packLayout(c.shards, G, partitions, c.L, pad);
      assert.deepEqual(packLayout(c.shards, G, partitions, c.L, pad), layout, 'the layout does not depend on the world size');
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
        const resumed: Rows = new Map();
        for (let rank = 0; rank < w2; rank++) {
          const r = await runRank(c, { rank, worldSize: w2, localRank: 0, localWorldSize: 1 }, order2, layout, { epoch: 0, step: k, carry }, resumed);
          assert.equal(r.steps, 2 * layout.steps - k, 'equal steps after the resume');
        }
        // Exactly the rows not yet delivered, each the same as in the uninterrupted run.
        const expected = [...full.entries()].filter(([key]) => {
          const [e, p, row] = key.split(':').map(Number) as [number, number, number];
          return e > 0 || row >= k * layout.partitions[p]!.share;
        });
        assert.equal(resumed.size, expected.length);
        for (const [key, segs] of expected) assert.equal(resumed.get(key), segs, `row ${key} after resuming at step ${k} on ${w2} ranks`);
      }
    }
  });
});
