// The loader end to end on local datasets written by prep: every row exactly once, in manifest
// order, with the right values, for both shard formats; resume; bounded slots; bad input.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, truncateSync, renameSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { Loader, ErrorCodes, GpufeedError, isVarColumn, type Batch } from '../../src/index.js';
import type { ManifestV1 } from '../../src/dataset/types.js';
import { mixedRow, type MixedRow } from '../fixtures/mixed-rows.js';

const ROWS = 203;
const SEQ = 16;

type Row = MixedRow;
const makeRow = (i: number): Row => mixedRow(i, SEQ);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GpufeedError, `expected a GpufeedError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an error');
}

function checkRow(batch: Batch, i: number, row: Row): void {
  const tokens = batch.columns.tokens as Int32Array;
  assert.deepEqual(Array.from(tokens.subarray(i * SEQ, (i + 1) * SEQ)), row.tokens, `tokens of row ${batch.ids[i]}`);
  const label = batch.columns.label!;
  assert.ok(!isVarColumn(label));
  assert.equal(Number(label[i]), row.label, `label of row ${batch.ids[i]}`);
  assert.equal(Number((batch.columns.score as Float64Array)[i]), row.score);
  const text = batch.columns.text!;
  assert.ok(isVarColumn(text));
  assert.equal(new TextDecoder().decode(text.values.subarray(text.offsets[i]!, text.offsets[i + 1]!) as Uint8Array), row.text);
  const tags = batch.columns.tags!;
  assert.ok(isVarColumn(tags));
  assert.deepEqual(Array.from(tags.values.subarray(tags.offsets[i]!, tags.offsets[i + 1]!), Number), row.tags);
  assert.equal(batch.valid.maybe![i], row.maybe === null ? 0 : 1, `validity of row ${batch.ids[i]}`);
  if (row.maybe !== null) assert.equal(Number((batch.columns.maybe as ArrayLike<number | bigint>)[i]), row.maybe);
}

describe('Loader on local datasets', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-loader-'));
  const rows = Array.from({ length: ROWS }, (_, i) => makeRow(i));
  const datasets: Record<'arrow' | 'parquet', string> = { arrow: join(root, 'arrow'), parquet: join(root, 'parquet') };

  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    for (const format of ['arrow', 'parquet'] as const) {
      // Small shards and units, so batches straddle units and shards.
      await prepDataset([input], {
        out: datasets[format], format, shapes: { tokens: [SEQ] }, types: { tokens: 'int32', tags: 'int32' },
        shardSize: 3000, targetBatchBytes: 700, maxBatchRows: 13, workers: 0, progress: false,
      });
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const format of ['arrow', 'parquet'] as const) {
    it(`delivers every row exactly once, in manifest order, with the right values (${format})`, async () => {
      const manifest = JSON.parse(readFileSync(join(datasets[format], 'index.json'), 'utf8')) as ManifestV1;
      assert.ok(manifest.shards.length > 3, 'several shards');
      const loader = await Loader.open(datasets[format], { batchSize: 10, workers: 2 });
      try {
        const seen: number[] = [];
        let batches = 0;
        for await (const batch of loader) {
          assert.equal(batch.step, batches++);
          assert.equal(batch.shape('tokens')[1], SEQ);
          batch.ids.forEach((id, i) => checkRow(batch, i, rows[id]!));
          seen.push(...batch.ids);
        }
        assert.deepEqual(seen, Array.from({ length: ROWS }, (_, i) => i));
        assert.equal(batches, Math.ceil(ROWS / 10));
        assert.equal(loader.stats().released, batches, 'every batch went back to the ring');
      } finally {
        await loader.close();
      }
    });
  }

  it('delivers the same rows whatever the number of workers, also shuffled', async () => {
    const collect = async (workers: number) => {
      const loader = await Loader.open(datasets.arrow, { batchSize: 8, workers, shuffle: 'window', shuffleWindow: 40, seed: 3, columns: ['label', 'text'] });
      const out: number[][] = [];
      try {
        for await (const b of loader) {
          b.ids.forEach((id, i) => assert.equal(Number((b.columns.label as BigInt64Array | Int32Array)[i]), rows[id]!.label));
          out.push([...b.ids]);
        }
      } finally {
        await loader.close();
      }
      return out;
    };
    const one = await collect(1);
    const three = await collect(3);
    assert.deepEqual(three, one);
    assert.deepEqual(one.flat().sort((a, b) => a - b), Array.from({ length: ROWS }, (_, i) => i));
    assert.notDeepEqual(one.flat(), Array.from({ length: ROWS }, (_, i) => i), 'shuffled');
  });

  it('resumes exactly from state() after any batch', async () => {
    const opts = { batchSize: 9, workers: 2, shuffle: 'naive' as const, seed: 7, columns: ['label'] };
    const full: number[] = [];
    let state;
    let loader = await Loader.open(datasets.parquet, opts);
    try {
      let k = 0;
      for await (const b of loader) {
        full.push(...b.ids);
        if (++k === 5) state = JSON.parse(JSON.stringify(loader.state()));
      }
    } finally {
      await loader.close();
    }
    loader = await Loader.open(datasets.parquet, { ...opts, resume: state });
    const rest: number[] = [];
    try {
      for await (const b of loader) rest.push(...b.ids);
    } finally {
      await loader.close();
    }
    assert.deepEqual(rest, full.slice(5 * 9));
  });

  it('keeps retained batches valid and never uses more slots than it has', async () => {
    const loader = await Loader.open(datasets.arrow, { batchSize: 16, workers: 2, slots: 4, columns: ['tokens'] });
    try {
      const kept: Batch[] = [];
      for await (const b of loader) {
        if (b.step < 2) kept.push(b.retain());
        assert.ok(loader.stats().queue.freeSlots <= 4);
      }
      // Retained batches still hold their own rows after later batches reused other slots.
      for (const b of kept) b.ids.forEach((id, i) => assert.equal((b.columns.tokens as Int32Array)[i * SEQ], rows[id]!.tokens[0]));
      for (const b of kept) b.release();
      assert.equal(loader.stats().queue.freeSlots, 4);
    } finally {
      await loader.close();
    }
  });

  it('refuses bad options and unknown columns with codes naming them', async () => {
    assert.equal(await codeOf(Loader.open(datasets.arrow, { batchSize: 0 })), ErrorCodes.INVALID_OPTION);
    assert.equal(await codeOf(Loader.open(datasets.arrow, { batchSize: 4, workers: 0 })), ErrorCodes.INVALID_OPTION);
    assert.equal(await codeOf(Loader.open(datasets.arrow, { batchSize: 4, columns: ['nope'] })), ErrorCodes.UNKNOWN_COLUMN);
    assert.equal(await codeOf(Loader.open(join(root, 'missing'), { batchSize: 4 })), ErrorCodes.MANIFEST_NOT_FOUND);
  });

  it('reports a missing or truncated shard by name when the loader reaches it', async () => {
    for (const damage of ['missing', 'truncated'] as const) {
      const dir = join(root, `damaged-${damage}`);
      await prepDataset([join(root, 'rows.jsonl')], { out: dir, format: 'arrow', shapes: { tokens: [SEQ] }, shardSize: 3000, workers: 0, progress: false });
      const manifest = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ManifestV1;
      const victim = join(dir, manifest.shards[1]!.path);
      if (damage === 'missing') renameSync(victim, `${victim}.gone`);
      else truncateSync(victim, 100);
      const loader = await Loader.open(dir, { batchSize: 10, workers: 1 });
      try {
        const err = await (async () => {
          try {
            for await (const _ of loader) { /* drain */ }
          } catch (e) {
            return e as GpufeedError;
          }
          return undefined;
        })();
        assert.ok(err instanceof GpufeedError, `${damage}: an error`);
        assert.equal(err.code, damage === 'missing' ? ErrorCodes.SHARD_MISSING : ErrorCodes.SHARD_CORRUPT);
        assert.match(err.message, new RegExp(manifest.shards[1]!.path.replace(/[.]/g, '\\.')));
      } finally {
        await loader.close();
      }
    }
  });
});
