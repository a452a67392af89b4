// Packing end to end: real rows of a prepped dataset, packed on every rank of a world (in this
// process, and one `gpufeed dump --pack` child per rank), each token checked against the source.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, mergePackStates, type Batch, type ResumeState } from '../../src/index.js';
import { mulberry32 } from '../helpers/seeded-random.js';
import { runCli } from '../fixtures/run-cli.js';

const L = 16;
const DOCS = 260;
/** Token j of document d: unique over the dataset, so a token names its document and place. */
const token = (d: number, j: number): number => d * 1000 + j;

interface Row {
  input_ids: number[];
}

function docLengths(seed: number): number[] {
  const rnd = mulberry32(seed);
  // 1 token to 5 x the row length, with many short documents.
  return Array.from({ length: DOCS }, () => (rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * 5 * L)));
}

/** What one batch says it holds, checked against its own columns. */
function checkBatch(b: Batch, lengths: readonly number[], seen: Map<number, number>): void {
  const ids = b.columns.input_ids as Int32Array;
  const pos = b.columns.position_ids as Int32Array;
  const lens = b.columns.seq_lens as { offsets: Int32Array; values: Int32Array };
  assert.equal(ids.length, b.size * L);
  assert.ok(b.pack);
  for (let r = 0; r < b.size; r++) {
    const segs: readonly number[] = b.pack.segments[r]!;
    const rowLens = Array.from(lens.values.subarray(lens.offsets[r]!, lens.offsets[r + 1]!));
    assert.equal(rowLens.reduce((a, x) => a + x, 0), L, 'seq_lens of a row sum to the row length');
    assert.deepEqual(rowLens, segs.filter((_, i) => i % 3 === 2), 'seq_lens are the segments');
    let at = r * L;
    for (let k = 0; k < segs.length; k += 3) {
      const [doc, offset, count] = [segs[k]!, segs[k + 1]!, segs[k + 2]!];
      for (let i = 0; i < count; i++, at++) {
        assert.equal(pos[at], i, 'position ids restart at each segment');
        if (doc < 0) {
          assert.equal(ids[at], 0, 'padding is the pad token');
          continue;
        }
        assert.ok(offset + i < lengths[doc]!, 'a segment stays within its document');
        assert.equal(ids[at], token(doc, offset + i), `row ${r} token ${at - r * L} is document ${doc}'s token ${offset + i}`);
        const key = token(doc, offset + i);
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    }
  }
}

describe('packing on real rows', () => {
  let dir: string;
  let out: string;
  let lengths: number[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpufeed-pack-'));
    lengths = docLengths(7);
    const rows: Row[] = lengths.map((n, d) => ({ input_ids: Array.from({ length: n }, (_, j) => token(d, j)) }));
    const input = join(dir, 'docs.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    out = join(dir, 'ds');
    await prepDataset([input], { out, format: 'arrow', types: { input_ids: 'int32' }, shardSize: 4000, maxBatchRows: 9, workers: 0, progress: false });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const total = (): number => lengths.reduce((a, n) => a + n, 0);

  async function loadWorld(worldSize: number, options: { partitions?: number; shuffle?: 'none' | 'window'; pad?: boolean; batchSize?: number } = {}): Promise<{ seen: Map<number, number>; steps: number[]; dropped: number; padded: number }> {
    const seen = new Map<number, number>();
    const steps: number[] = [];
    let dropped = -1;
    let padded = -1;
    for (let rank = 0; rank < worldSize; rank++) {
      const loader = await Loader.open(out, { batchSize: options.batchSize ?? 2, rank, worldSize, workers: 1, pack: { column: 'input_ids', length: L }, ...options, shuffleWindow: 16 });
      try {
        let n = 0;
        for await (const b of loader) {
          checkBatch(b, lengths, seen);
          n++;
        }
        steps.push(n);
        const st = loader.stats().pack;
        dropped = st.droppedTokensPerEpoch;
        padded = st.paddedTokensPerEpoch;
      } finally {
        await loader.close();
      }
    }
    return { seen, steps, dropped, padded };
  }

  for (const [worldSize, partitions] of [[1, undefined], [3, undefined], [2, 4], [4, 2]] as const) {
    it(`every token once but the reported tail, ${worldSize} ranks, partitions ${partitions ?? 'default'}`, async () => {
      const { seen, steps, dropped } = await loadWorld(worldSize, { partitions, shuffle: 'window' });
      assert.ok(steps.every((s) => s === steps[0]) && steps[0]! > 0, `equal steps: ${steps.join(',')}`);
      for (const n of seen.values()) assert.equal(n, 1, 'no token twice');
      assert.equal(seen.size, total() - dropped, 'every token but the dropped tail');
      assert.ok(dropped < total() / 4, `little dropped: ${dropped} of ${total()}`);
    });
  }

  it('pad: every token once, padding reported', async () => {
    const { seen, steps, padded } = await loadWorld(3, { pad: true });
    assert.ok(steps.every((s) => s === steps[0]));
    assert.equal(seen.size, total());
    for (const n of seen.values()) assert.equal(n, 1);
    assert.equal(steps[0]! * 3 * 2 * L, total() + padded);
  });

  // Feed batches of the default size (here the whole epoch) and of one step's documents each (the
  // carries then stand in feed batches after the first).
  for (const packFeedTokens of [undefined, 0]) it(`resumes exactly mid-document on another world size, with and without carries, feed batches ${packFeedTokens === 0 ? 'of one step' : 'by default'}`, async () => {
    const internal = packFeedTokens === undefined ? {} : { packFeedTokens };
    const opts = { batchSize: 2, partitions: 4, shuffle: 'window' as const, workers: 1, pack: { column: 'input_ids', length: L }, shuffleWindow: 16 };
    const seen = new Map<number, number>();
    // 4 ranks for 3 steps, each saving its state.
    const states: ResumeState[] = [];
    let steps = 0;
    for (let rank = 0; rank < 4; rank++) {
      const loader = await Loader.open(out, { ...opts, rank, worldSize: 4 }, internal);
      steps = loader.stepsPerEpoch();
      try {
        let n = 0;
        for await (const b of loader) {
          checkBatch(b, lengths, seen);
          if (++n === 3) break;
        }
        states.push(loader.state());
      } finally {
        await loader.close();
      }
    }
    assert.ok(steps > 4);
    for (const s of states) assert.equal(s.stepsDone, 3);
    assert.ok(Object.values(states[1]!.pack!.carry).some(([, off]) => off >= 0));
    // Resume on 2 ranks with twice the batch: rank 0's state alone (others replayed), then all merged.
    for (const state of [states[0]!, mergePackStates(states)]) {
      const again = new Map(seen);
      for (let rank = 0; rank < 2; rank++) {
        const loader = await Loader.open(out, { ...opts, batchSize: 4, rank, worldSize: 2, resume: state, partitions: undefined }, internal);
        try {
          for await (const b of loader) checkBatch(b, lengths, again);
        } finally {
          await loader.close();
        }
      }
      for (const n of again.values()) assert.equal(n, 1, 'no token twice across the resume');
      const dropped = total() - again.size;
      assert.equal(dropped, states[0]!.pack!.droppedTokens);
    }
  });

  it('refuses a resume with another row length, naming the field', async () => {
    const loader = await Loader.open(out, { batchSize: 2, workers: 1, pack: { column: 'input_ids', length: L } });
    let state: ResumeState;
    try {
      for await (const _ of loader) break;
      state = loader.state();
    } finally {
      await loader.close();
    }
    await assert.rejects(Loader.open(out, { batchSize: 2, workers: 1, pack: { column: 'input_ids', length: L * 2 }, resume: state }), (e: { code?: string; details?: { field?: string } }) => e.code === ErrorCodes.RESUME_MISMATCH && e.details?.field === 'pack.length');
  });

  it('one gpufeed dump --pack process per rank: every token once against the source', async () => {
    const seen = new Map<number, number>();
    const stepCounts: number[] = [];
    for (let rank = 0; rank < 3; rank++) {
      const r = await runCli(['dump', out, '--batch-size', '2', '--world-size', '3', '--rank', String(rank), '--workers', '1', '--pack', `input_ids=${L}`, '--shuffle', 'window', '--shuffle-window', '16']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: number; columns: { input_ids: number[] }; pack: { segments: number[][] } });
      stepCounts.push(lines.length);
      assert.match(r.stderr, /pack input_ids=16: \d+ steps per epoch/);
      for (const line of lines) {
        assert.equal(line.columns.input_ids.length, 2 * L, 'fixed [batch, length] rows');
        line.pack.segments.forEach((segs, i) => {
          const row = line.columns.input_ids.slice(i * L, (i + 1) * L);
          let at = 0;
          for (let k = 0; k < segs.length; k += 3) {
            for (let j = 0; j < segs[k + 2]!; j++, at++) {
              assert.equal(row[at], token(segs[k]!, segs[k + 1]! + j));
              seen.set(row[at]!, (seen.get(row[at]!) ?? 0) + 1);
            }
          }
        });
      }
    }
    assert.ok(stepCounts.every((s) => s === stepCounts[0]));
    for (const n of seen.values()) assert.equal(n, 1);
    const dropped = total() - seen.size;
    assert.ok(dropped >= 0 && dropped < total() / 4);
  });
});
