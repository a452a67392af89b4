// The self-scheduling decode workers (decode-worker.ts, control-block.ts): the order does not
// depend on the number of workers, retained batches and close() while workers wait, an error
// surfaces at its own batch and not before, endless epochs stop at close(), resume across epochs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, GpufeedError, type Batch } from '../../src/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';

const ROWS = 257;
const SEQ = 8;
const token0 = (i: number): number => (i * 131) % 50_000;

describe('Loader with self-scheduling decode workers', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-loader-workers-'));
  const input = join(root, 'rows.jsonl');
  const arrow = join(root, 'arrow');
  const parquet = join(root, 'parquet');

  before(async () => {
    const lines = Array.from({ length: ROWS }, (_, i) => JSON.stringify({ tokens: Array.from({ length: SEQ }, (_, k) => token0(i) + k), label: i }));
    writeFileSync(input, lines.join('\n') + '\n');
    for (const [out, format] of [[arrow, 'arrow'], [parquet, 'parquet']] as const) {
      await prepDataset([input], { out, format, shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 2000, targetBatchBytes: 500, maxBatchRows: 11, workers: 0, progress: false });
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const checkValues = (b: Batch): void => {
    const tokens = b.columns.tokens as Int32Array;
    b.ids.forEach((id, i) => assert.equal(tokens[i * SEQ], token0(id), `row ${id} of step ${b.step}`));
  };

  it('gives identical sequences with 1 to 4 workers, over two shuffled epochs, both formats', async () => {
    for (const dir of [arrow, parquet]) {
      const runs: string[] = [];
      for (let workers = 1; workers <= 4; workers++) {
        const loader = await Loader.open(dir, { batchSize: 7, workers, shuffle: 'window', shuffleWindow: 50, seed: 11, epochs: 2, columns: ['tokens'] });
        const seq: string[] = [];
        try {
          for await (const b of loader) {
            checkValues(b);
            seq.push(`${b.epoch}:${b.step}:${b.ids.join(',')}`);
          }
        } finally {
          await loader.close();
        }
        runs.push(seq.join('\n'));
      }
      for (const r of runs.slice(1)) assert.equal(r, runs[0]);
      const lines = runs[0]!.split('\n');
      const steps = Math.ceil(ROWS / 7);
      assert.equal(lines.length, 2 * steps);
      for (const epoch of [0, 1]) {
        const ids = lines.filter((l) => l.startsWith(`${epoch}:`)).flatMap((l) => l.split(':')[2]!.split(',').map(Number));
        assert.deepEqual(ids.sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i), `epoch ${epoch} exactly once`);
      }
    }
  });

  it('keeps many retained batches, refuses when every slot is held, and closes while workers wait for a slot', async () => {
    const loader = await Loader.open(arrow, { batchSize: 4, workers: 3, slots: 6, columns: ['tokens'] });
    const kept: Batch[] = [];
    let refused: unknown;
    try {
      for await (const b of loader) kept.push(b.retain());
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof GpufeedError);
    assert.equal(refused.code, ErrorCodes.INVALID_OPTION);
    assert.match(refused.message, /slots/);
    assert.equal(kept.length, 6);
    kept.forEach((b, i) => {
      assert.equal(b.step, i);
      checkValues(b);
    });
    // Give two back: iteration goes on from where it stopped.
    kept[0]!.release();
    kept[1]!.release();
    const it = loader[Symbol.asyncIterator]();
    const next = await it.next();
    assert.equal(next.done, false);
    assert.equal((next.value as Batch).step, 6);
    checkValues(next.value as Batch);
    await it.return(undefined);
    // Workers now wait for slots the consumer holds; close must not hang on them.
    await loader.close();
  });

  it('surfaces a decode error at its own batch, after every batch before it, with its code', async () => {
    const dir = join(root, 'damaged');
    await prepDataset([input], { out: dir, format: 'arrow', shapes: { tokens: [SEQ] }, types: { tokens: 'int32' }, shardSize: 2000, workers: 0, progress: false });
    const manifest = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ManifestV1;
    assert.ok(manifest.shards.length >= 3);
    const victim = join(dir, manifest.shards[1]!.path);
    renameSync(victim, `${victim}.gone`);
    const batchSize = 5;
    // Manifest order: the first batch with a row of shard 1.
    const failAt = Math.floor(manifest.shards[0]!.rows / batchSize);
    // Many slots and workers: the failing batch is decoded long before the consumer reaches it.
    const loader = await Loader.open(dir, { batchSize, workers: 3, slots: 12, columns: ['tokens'] });
    const steps: number[] = [];
    let failure: unknown;
    try {
      for await (const b of loader) {
        checkValues(b);
        steps.push(b.step);
        if (b.step === 0) await new Promise((r) => setTimeout(r, 100));
      }
    } catch (err) {
      failure = err;
    } finally {
      const state = loader.state();
      await loader.close();
      assert.deepEqual(steps, Array.from({ length: failAt }, (_, i) => i), 'every batch before the failing one, in order');
      assert.ok(failure instanceof GpufeedError, 'an error');
      assert.equal(failure.code, ErrorCodes.SHARD_MISSING);
      assert.match(failure.message, new RegExp(manifest.shards[1]!.path.replace(/[.]/g, '\\.')));
      // The failing batch was not delivered: a resume starts with it.
      renameSync(`${victim}.gone`, victim);
      const resumed = await Loader.open(dir, { batchSize, workers: 2, columns: ['tokens'], resume: state });
      try {
        const first = await resumed[Symbol.asyncIterator]().next();
        assert.equal((first.value as Batch).step, failAt);
      } finally {
        await resumed.close();
      }
    }
  });

  it('runs endless epochs until close, and resumes in a later epoch', async () => {
    const opts = { batchSize: 16, workers: 2, shuffle: 'window' as const, shuffleWindow: 64, seed: 5, epochs: Infinity, columns: ['tokens'] };
    const loader = await Loader.open(arrow, opts);
    const steps = loader.stepsPerEpoch();
    const all: number[][] = [];
    let state;
    try {
      for await (const b of loader) {
        checkValues(b);
        all.push([...b.ids]);
        if (all.length === steps + 3) state = JSON.parse(JSON.stringify(loader.state()));
        if (all.length === 3 * steps + 2) break;
      }
    } finally {
      await loader.close();
    }
    assert.equal(all.length, 3 * steps + 2);
    for (let e = 0; e < 3; e++) {
      assert.deepEqual(all.slice(e * steps, (e + 1) * steps).flat().sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i), `epoch ${e}`);
    }
    // Close from inside the loop, while the workers keep decoding: the iteration just ends.
    const again = await Loader.open(arrow, { ...opts, resume: state });
    const rest: number[][] = [];
    for await (const b of again) {
      rest.push([...b.ids]);
      if (rest.length === steps) await again.close();
    }
    assert.equal(rest.length, steps);
    assert.deepEqual(rest, all.slice(steps + 3, 2 * steps + 3));
  });

  it('closes a loader whose consumer is waiting for its first batch, and one never iterated', async () => {
    const idle = await Loader.open(arrow, { batchSize: 8, workers: 2 });
    await idle.close();
    const loader = await Loader.open(parquet, { batchSize: 8, workers: 2, epochs: Infinity });
    const it = loader[Symbol.asyncIterator]();
    const pending = it.next();
    await loader.close();
    // Resolves (a batch decoded before close, or the end): no hang. Its memory is gone now.
    await pending;
  });
});
