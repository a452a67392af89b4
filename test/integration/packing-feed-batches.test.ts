// The packed rows do not depend on how the document feed is cut into feed batches: one step's
// documents per feed batch (documents split across rows and across feed batches, held feed slots
// released as their last document is cut), a few steps', and the default (the whole epoch here)
// give the same bytes, and every token is its document's; so do fewer feed slots to hold.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, type Batch } from '../../src/index.js';
import type { DatasetInput } from '../../src/pipeline/mixture-source.js';
import { mulberry32 } from '../helpers/seeded-random.js';

const L = 16;
/** Token j of document d (its global id): unique, so a token names its document and place. */
const token = (d: number, j: number): number => d * 1000 + j;

function docLengths(seed: number, n: number): number[] {
  const rnd = mulberry32(seed);
  // Short documents and long ones (up to 6 rows: longer than a step of 2 rows).
  return Array.from({ length: n }, () => (rnd() < 0.4 ? 1 + Math.floor(rnd() * 4) : 1 + Math.floor(rnd() * 6 * L)));
}

/** Checks a batch against the source documents; returns a digest of all its bytes and row facts. */
function digest(b: Batch): string {
  const ids = b.columns.input_ids as Int32Array;
  const pos = b.columns.position_ids as Int32Array;
  const lens = b.columns.seq_lens as { offsets: Int32Array; values: Int32Array };
  assert.ok(b.pack);
  for (let r = 0; r < b.size; r++) {
    const segs: readonly number[] = b.pack.segments[r]!;
    let at = r * L;
    for (let k = 0; k < segs.length; k += 3) {
      const [doc, offset, count] = [segs[k]!, segs[k + 1]!, segs[k + 2]!];
      for (let i = 0; i < count; i++, at++) {
        assert.equal(pos[at], i, 'position ids restart at each segment');
        assert.equal(ids[at], doc < 0 ? 0 : token(doc, offset + i), `row ${r} token ${at - r * L}`);
      }
    }
    assert.equal(at, (r + 1) * L);
  }
  const h = createHash('sha256');
  for (const a of [ids, pos, lens.offsets.subarray(0, b.size + 1), lens.values.subarray(0, lens.offsets[b.size]!)]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  h.update(JSON.stringify([b.epoch, b.step, b.ids, b.pack, b.stream ? Array.from(b.stream) : null]));
  return h.digest('hex');
}

/** Every rank's batches (digests) over 2 epochs, 4 partitions, 4 rows a global step; and the feed batches per epoch of rank 0. */
async function load(uri: DatasetInput, worldSize: number, packFeedTokens: number | undefined, slots?: number): Promise<{ digests: string[]; feedSteps: number; split: number }> {
  const digests: string[] = [];
  let feedSteps = 0;
  let split = 0;
  for (let rank = 0; rank < worldSize; rank++) {
    const loader = await Loader.open(uri, { batchSize: 4 / worldSize, rank, worldSize, partitions: 4, workers: 1, shuffle: 'window', shuffleWindow: 16, epochs: 2, pack: { column: 'input_ids', length: L }, ...(slots === undefined ? {} : { slots }) }, packFeedTokens === undefined ? {} : { packFeedTokens });
    try {
      if (rank === 0) feedSteps = loader.documents.stepsPerEpoch();
      for await (const b of loader) {
        digests.push(digest(b));
        for (const segs of b.pack!.segments) if (segs[1]! > 0) split += 1;
      }
    } finally {
      await loader.close();
    }
  }
  return { digests, feedSteps, split };
}

describe('packed rows and feed batches', () => {
  let dir: string;
  let single: string;
  let streams: string[];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gpufeed-packfeed-'));
    const write = async (name: string, first: number, lengths: number[]): Promise<string> => {
      const input = join(dir, `${name}.jsonl`);
      writeFileSync(input, lengths.map((n, i) => JSON.stringify({ input_ids: Array.from({ length: n }, (_, j) => token(first + i, j)) })).join('\n') + '\n');
      const out = join(dir, name);
      await prepDataset([input], { out, format: 'arrow', types: { input_ids: 'int32' }, shardSize: 4000, maxBatchRows: 9, workers: 0, progress: false });
      return out;
    };
    single = await write('single', 0, docLengths(5, 400));
    const a = docLengths(6, 250);
    streams = [await write('s0', 0, a), await write('s1', a.length, docLengths(8, 150))];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const worldSize of [1, 2]) {
    it(`one dataset, ${worldSize} rank(s): the same rows whatever the feed batches`, async () => {
      const small = await load(single, worldSize, 0);
      const few = await load(single, worldSize, 400);
      const whole = await load(single, worldSize, undefined);
      assert.ok(small.feedSteps > 4 * whole.feedSteps, `many more feed batches: ${small.feedSteps} vs ${whole.feedSteps}`);
      assert.ok(few.feedSteps > whole.feedSteps && few.feedSteps < small.feedSteps, `feed batches ${few.feedSteps}`);
      assert.ok(small.split > 10, 'documents continue across rows');
      assert.ok(small.digests.length > 20);
      assert.deepEqual(few.digests, small.digests);
      assert.deepEqual(whole.digests, small.digests);
    });
  }

  // The packers read the feed slots they hold (Batch.retain); with few slots they hold one (2 slots:
  // the older copied out as the next comes) or none (1 slot: every feed batch copied).
  for (const slots of [1, 2]) {
    it(`feed slots ${slots}: the same rows as with the default slots`, async () => {
      const held = await load(single, 2, 0);
      const few = await load(single, 2, 0, slots);
      assert.equal(few.feedSteps, held.feedSteps);
      assert.deepEqual(few.digests, held.digests);
    });
  }

  it('a 2-stream mixture: the same rows whatever the feed batches', async () => {
    const uri = streams.map((u, k) => ({ uri: u, weight: k === 0 ? 0.6 : 0.4 }));
    const small = await load(uri, 2, 0);
    const whole = await load(uri, 2, undefined);
    assert.ok(small.feedSteps > 4 * whole.feedSteps, `many more feed batches: ${small.feedSteps} vs ${whole.feedSteps}`);
    assert.ok(small.split > 10);
    assert.ok(small.digests.length > 10);
    assert.deepEqual(whole.digests, small.digests);
  });
});
