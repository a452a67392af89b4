// Packing over a mixture end to end: real rows of three prepped datasets (the streams), packed on
// every rank of a world (in this process, and one `gpufeed dump` child per rank), each token
// checked against its source document, every chosen document's tokens once per epoch (twice for a
// stream repeated twice) but the tail the ranks report; exact resume mid-document on another world
// size; a changed mixture and a stream without the column refused by name.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, mergePackStates, type Batch, type ResumeState } from '../../src/index.js';
import type { MixtureInput } from '../../src/pipeline/mixture-source.js';
import { mulberry32 } from '../helpers/seeded-random.js';
import { runCli } from '../fixtures/run-cli.js';

const L = 16;
/** Documents of each stream; global ids of stream k follow those of streams 0..k-1. */
const DOCS = [150, 90, 60];
const OFFSETS = [0, 150, 240];
/** Token j of global document d: unique, so a token names its document and place. */
const token = (d: number, j: number): number => d * 1000 + j;

function docLengths(seed: number, n: number): number[] {
  const rnd = mulberry32(seed);
  // 1 token to 5 x the row length, with many short documents.
  return Array.from({ length: n }, () => (rnd() < 0.3 ? 1 + Math.floor(rnd() * 3) : 1 + Math.floor(rnd() * 5 * L)));
}

const streamOf = (id: number): number => (id >= OFFSETS[2]! ? 2 : id >= OFFSETS[1]! ? 1 : 0);

/** Rows of one batch: tokens checked against the documents, counted into `seen` (global token -> times). */
function checkBatch(b: Batch, lengths: readonly number[], seen: Map<number, number>): void {
  const ids = b.columns.input_ids as Int32Array;
  const pos = b.columns.position_ids as Int32Array;
  assert.ok(b.pack && b.pack.streams && b.stream, 'a packed mixture batch names its streams');
  for (let r = 0; r < b.size; r++) {
    const segs: readonly number[] = b.pack.segments[r]!;
    const streams: readonly number[] = b.pack.streams[r]!;
    assert.equal(streams.length, segs.length / 3, 'one stream per segment');
    assert.equal(b.stream[r], streams[0], 'a row\'s stream is its first segment\'s');
    let at = r * L;
    for (let k = 0; k < segs.length; k += 3) {
      const [doc, offset, count] = [segs[k]!, segs[k + 1]!, segs[k + 2]!];
      assert.equal(streams[k / 3], doc < 0 ? -1 : streamOf(doc), `segment ${k / 3} of row ${r}: its document's stream`);
      for (let i = 0; i < count; i++, at++) {
        assert.equal(pos[at], i, 'position ids restart at each segment');
        if (doc < 0) {
          assert.equal(ids[at], 0, 'padding is the pad token');
          continue;
        }
        assert.ok(offset + i < lengths[doc]!, 'a segment stays within its document');
        assert.equal(ids[at], token(doc, offset + i));
        seen.set(ids[at]!, (seen.get(ids[at]!) ?? 0) + 1);
      }
    }
  }
}

describe('packing a mixture on real rows', () => {
  let dir: string;
  let uris: string[];
  let noColumn: string;
  let lengths: number[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpufeed-packmix-'));
    lengths = [];
    uris = [];
    for (let k = 0; k < DOCS.length; k++) {
      const own = docLengths(11 + k, DOCS[k]!);
      const rows = own.map((n, i) => ({ input_ids: Array.from({ length: n }, (_, j) => token(OFFSETS[k]! + i, j)) }));
      lengths.push(...own);
      const input = join(dir, `s${k}.jsonl`);
      writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const out = join(dir, `s${k}`);
      await prepDataset([input], { out, format: 'arrow', types: { input_ids: 'int32' }, shardSize: 3000, maxBatchRows: 9, workers: 0, progress: false });
      uris.push(out);
    }
    const input = join(dir, 'other.jsonl');
    writeFileSync(input, '{"tokens":[1,2,3]}\n{"tokens":[4]}\n');
    noColumn = join(dir, 'other');
    await prepDataset([input], { out: noColumn, format: 'arrow', types: { tokens: 'int32' }, workers: 0, progress: false });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Tokens each global document contributes per epoch, by how many times the mixture takes it. */
  function expectTimes(times: readonly number[]): Map<number, number> {
    const want = new Map<number, number>();
    for (let k = 0; k < times.length; k++) {
      for (let i = 0; i < DOCS[k]!; i++) for (let j = 0; j < lengths[OFFSETS[k]! + i]!; j++) if (times[k]! > 0) want.set(token(OFFSETS[k]! + i, j), times[k]!);
    }
    return want;
  }

  it('every chosen document\'s tokens once per epoch (twice when repeated twice) but the tail the ranks report, equal steps, on 1 and 3 ranks', async () => {
    const streams: MixtureInput[] = [{ uri: uris[0]!, repeat: 1 }, { uri: uris[1]!, repeat: 2 }];
    const want = expectTimes([1, 2]);
    const wantTokens = [...want.values()].reduce((a, b) => a + b, 0);
    for (const worldSize of [1, 3]) {
      const seen = new Map<number, number>();
      const steps: number[] = [];
      let dropped = 0;
      let padded = 0;
      for (let rank = 0; rank < worldSize; rank++) {
        const loader = await Loader.open(streams, { batchSize: 2, rank, worldSize, workers: 1, shuffle: 'window', shuffleWindow: 16, epochs: 1, pack: { column: 'input_ids', length: L } });
        try {
          let n = 0;
          for await (const b of loader) {
            checkBatch(b, lengths, seen);
            n++;
          }
          steps.push(n);
          const st = loader.stats().pack;
          assert.equal(st.expected, true);
          dropped += st.droppedTokens;
          padded += st.paddedTokens;
        } finally {
          await loader.close();
        }
      }
      assert.ok(steps.every((s) => s === steps[0]) && steps[0]! > 3, `equal steps: ${steps.join(',')}`);
      let delivered = 0;
      for (const [t, n] of seen) {
        assert.ok(n <= (want.get(t) ?? 0), `token ${t} at most as often as its document is chosen`);
        delivered += n;
      }
      assert.equal(delivered + dropped, wantTokens, `${worldSize} ranks: every chosen token delivered or in the reported tail`);
      assert.equal(steps[0]! * worldSize * 2 * L, delivered + padded, 'rows hold the delivered tokens and the reported padding');
      assert.ok(dropped < wantTokens / 2, `the tail is a minority: ${dropped} of ${wantTokens}`);
    }
  });

  it('keeps the mixture\'s proportions in documents over the epoch', async () => {
    const loader = await Loader.open([{ uri: uris[0]!, weight: 0.5 }, { uri: uris[1]!, weight: 0.3 }, { uri: uris[2]!, weight: 0.2 }], { batchSize: 4, workers: 1, epochs: 1, pack: { column: 'input_ids', length: L } });
    const starts = [0, 0, 0];
    try {
      for await (const b of loader) {
        for (let r = 0; r < b.size; r++) {
          const segs = b.pack!.segments[r]!;
          for (let k = 0; k < segs.length; k += 3) if (segs[k]! >= 0 && segs[k + 1] === 0) starts[b.pack!.streams![r]![k / 3]!]! += 1;
        }
      }
    } finally {
      await loader.close();
    }
    const n = starts.reduce((a, b) => a + b, 0);
    assert.ok(n > 100);
    [0.5, 0.3, 0.2].forEach((w, k) => assert.ok(Math.abs(starts[k]! - w * n) <= 0.1 * w * n + 2, `stream ${k}: ${starts[k]} of ${n} documents started`));
  });

  // Feed batches of the default size and of one step's documents each (carries in later feed batches).
  for (const packFeedTokens of [undefined, 0]) it(`resumes exactly mid-document on another world size with the same global batch, from one rank's state or all merged, feed batches ${packFeedTokens === 0 ? 'of one step' : 'by default'}`, async () => {
    const internal = packFeedTokens === undefined ? {} : { packFeedTokens };
    const streams: MixtureInput[] = [{ uri: uris[0]!, weight: 0.5 }, { uri: uris[1]!, weight: 0.3 }, { uri: uris[2]!, weight: 0.2 }];
    const opts = { partitions: 4, shuffle: 'window' as const, shuffleWindow: 16, workers: 1, epochs: 1, pack: { column: 'input_ids', length: L } };
    // The uninterrupted run on 4 ranks: every global step's rows (ranks in order), as segments.
    const global = new Map<string, string[]>();
    const record = (key: string, rank: number, worldSize: number, b: Batch): void => {
      const rows = global.get(key) ?? Array.from({ length: 8 }, () => '');
      const per = 8 / worldSize;
      b.pack!.segments.forEach((segs, r) => (rows[rank * per + r] = JSON.stringify(segs)));
      global.set(key, rows);
    };
    // Each rank's state after 3 steps, taken during the same run.
    const states: ResumeState[] = [];
    let steps = 0;
    for (let rank = 0; rank < 4; rank++) {
      const loader = await Loader.open(streams, { ...opts, batchSize: 2, rank, worldSize: 4 }, internal);
      steps = loader.stepsPerEpoch();
      try {
        let n = 0;
        for await (const b of loader) {
          record(`${b.epoch}:${b.step}`, rank, 4, b);
          if (++n === 3) states.push(loader.state());
        }
      } finally {
        await loader.close();
      }
    }
    const full = new Map([...global].map(([k, v]) => [k, v.join('|')]));
    global.clear();
    assert.ok(steps > 4, `steps per epoch: ${steps}`);
    assert.ok(states[0]!.mixture && states[0]!.pack, 'the state holds the mixture and the packing carry');
    assert.ok(states.some((s) => Object.values(s.pack!.carry).some(([, off]) => off > 0)), 'some carry stands mid-document');
    const resumedFrom = async (state: ResumeState): Promise<Map<string, string>> => {
      global.clear();
      for (let rank = 0; rank < 2; rank++) {
        const loader = await Loader.open(streams, { ...opts, partitions: undefined, batchSize: 4, rank, worldSize: 2, resume: state }, internal);
        try {
          for await (const b of loader) record(`${b.epoch}:${b.step}`, rank, 2, b);
        } finally {
          await loader.close();
        }
      }
      return new Map([...global].map(([k, v]) => [k, v.join('|')]));
    };
    for (const state of [states[0]!, mergePackStates(states)]) {
      const resumed = await resumedFrom(state);
      const expected = [...full.entries()].filter(([k]) => {
        const [e, s] = k.split(':').map(Number) as [number, number];
        return e > 0 || s >= 3;
      });
      assert.equal(resumed.size, expected.length, 'exactly the steps not yet delivered');
      for (const [k, rows] of expected) assert.equal(resumed.get(k), rows, `global step ${k}: the same rows as the uninterrupted run`);
    }
    // Another mixture: refused by name.
    await assert.rejects(
      Loader.open([{ uri: uris[0]!, weight: 0.6 }, { uri: uris[1]!, weight: 0.2 }, { uri: uris[2]!, weight: 0.2 }], { ...opts, partitions: undefined, batchSize: 2, worldSize: 4, rank: 0, resume: states[0]! }),
      (e: { code?: string; details?: { field?: string; stream?: number } }) => e.code === ErrorCodes.RESUME_MISMATCH && e.details?.field === 'mixture' && e.details.stream === 0,
    );
    // The change said to be intended: the new mixture from the next epoch, its first step.
    const next = await Loader.open([{ uri: uris[0]!, weight: 0.6 }, { uri: uris[1]!, weight: 0.2 }, { uri: uris[2]!, weight: 0.2 }], { ...opts, epochs: 2, partitions: undefined, batchSize: 2, worldSize: 4, rank: 0, resume: states[0]!, mixtureChange: 'next-epoch' });
    try {
      const first: Batch[] = [];
      for await (const b of next) {
        first.push(b);
        break;
      }
      assert.deepEqual(first.map((b) => [b.epoch, b.step]), [[1, 0]]);
    } finally {
      await next.close();
    }
  });

  it('refuses a stream without the packed column, naming the stream and the column', async () => {
    await assert.rejects(
      Loader.open([uris[0]!, noColumn], { batchSize: 2, workers: 1, pack: { column: 'input_ids', length: L } }),
      (e: { code?: string; message: string; details?: { stream?: number; column?: string } }) => e.code === ErrorCodes.UNKNOWN_COLUMN && e.details?.stream === 1 && e.details.column === 'input_ids' && e.message.includes('stream 1'),
    );
  });

  it('one gpufeed dump process per rank over a two-stream packed mixture: every token once (twice when repeated) against the source', async () => {
    const want = expectTimes([1, 2]);
    const wantTokens = [...want.values()].reduce((a, b) => a + b, 0);
    const seen = new Map<number, number>();
    const stepCounts: number[] = [];
    let dropped = 0;
    let padded = 0;
    for (let rank = 0; rank < 2; rank++) {
      const r = await runCli(['dump', uris[0]!, uris[1]!, '--repeat', '1,2', '--batch-size', '3', '--world-size', '2', '--rank', String(rank), '--workers', '1', '--epochs', '1', '--pack', `input_ids=${L}`, '--shuffle', 'window', '--shuffle-window', '16']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /pack input_ids=16 over 2 streams: \d+ steps per epoch, ~\d+ tokens/);
      const m = new RegExp(`pack rank ${rank}: (\\d+) rows, (\\d+) tokens dropped, (\\d+) padding tokens`).exec(r.stderr);
      assert.ok(m, r.stderr);
      dropped += Number(m[2]);
      padded += Number(m[3]);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; ids: number[]; streams: number[]; columns: { input_ids: number[] }; pack: { segments: number[][]; streams: number[][] } });
      stepCounts.push(lines.length);
      for (const line of lines) {
        assert.equal(line.columns.input_ids.length, 3 * L, 'fixed [batch, length] rows');
        line.pack.segments.forEach((segs, i) => {
          assert.equal(line.ids[i], segs[0], 'ids: each row\'s first document');
          assert.equal(line.streams[i], line.pack.streams[i]![0], 'streams: each row\'s first segment\'s');
          const row = line.columns.input_ids.slice(i * L, (i + 1) * L);
          let at = 0;
          for (let k = 0; k < segs.length; k += 3) {
            assert.equal(line.pack.streams[i]![k / 3], segs[k]! < 0 ? -1 : streamOf(segs[k]!));
            for (let j = 0; j < segs[k + 2]!; j++, at++) {
              if (segs[k]! < 0) continue;
              assert.equal(row[at], token(segs[k]!, segs[k + 1]! + j));
              seen.set(row[at]!, (seen.get(row[at]!) ?? 0) + 1);
            }
          }
        });
      }
    }
    assert.ok(stepCounts.every((s) => s === stepCounts[0]) && stepCounts[0]! > 2, `equal steps: ${stepCounts.join(',')}`);
    let delivered = 0;
    for (const [t, n] of seen) {
      assert.ok(n <= (want.get(t) ?? 0), `token ${t} at most as often as its document is chosen`);
      delivered += n;
    }
    assert.equal(delivered + dropped, wantTokens, 'every chosen token delivered or in the reported tail');
    assert.equal(stepCounts[0]! * 2 * 3 * L, delivered + padded);
  });

  it('gpufeed plan --pack over a mixture: the rows of each rank and the expected accounting', async () => {
    const r = await runCli(['plan', uris[0]!, uris[1]!, uris[2]!, '--weights', '0.5,0.3,0.2', '--batch-size', '2', '--world-size', '2', '--pack', `input_ids=${L}`, '--max-steps', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /plan: pack input_ids=16 over 3 streams: \d+ steps per epoch, ~\d+ tokens, ~\d+ dropped \([\d.]+%\), ~\d+ padding \([\d.]+%\) per epoch \(expected\)/);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; step: number; rows: number[][] });
    assert.deepEqual(lines.map((l) => [l.rank, l.step]), [[0, 0], [1, 0], [0, 1], [1, 1]]);
    assert.deepEqual(lines[2]!.rows, [[0, 2], [0, 3]], 'rank 0, step 1: rows 2 and 3 of partition 0');
  });
});
