// The pinned-memory budget: slots sized from typical rows, not from the largest one; a batch whose
// variable-length rows do not fit its slot is still delivered exactly (in a one-off slot, counted);
// a batch too large for what memoryBytes leaves is an error naming its largest row; slots that do
// not fit memoryBytes are refused at open.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { loadManifest } from '../../src/dataset/manifest.js';
import { LocalStore } from '../../src/storage/local.js';
import { Loader, GpufeedError, ErrorCodes, isVarColumn, type Batch } from '../../src/index.js';
import { planSlotMemory, defaultMemoryBytes, SLOT_SHARE } from '../../src/pipeline/memory-budget.js';
import { memoryStatus } from '../../src/memory/index.js';
import { invalidOptionNaming } from '../helpers/expect-error.js';

const ROWS = 100;
const BIG_ROW = 57;
const BIG_BYTES = 2 * 1024 * 1024;
const MiB = 1024 * 1024;

function textOf(i: number): string {
  return i === BIG_ROW ? 'B'.repeat(BIG_BYTES) : `row-${i}-${'é'.repeat(i % 9)}`;
}

function checkBatch(b: Batch, seen: Set<number>): void {
  const text = b.columns.text!;
  assert.ok(isVarColumn(text));
  const label = b.columns.label as BigInt64Array;
  const dec = new TextDecoder();
  for (let i = 0; i < b.size; i++) {
    const id = b.ids[i]!;
    assert.ok(!seen.has(id), `sample ${id} once`);
    seen.add(id);
    assert.equal(Number(label[i]), id * 7, `label of ${id}`);
    const got = dec.decode(text.values.subarray(text.offsets[i]!, text.offsets[i + 1]!) as Uint8Array);
    assert.ok(got === textOf(id), `text of sample ${id}: ${got.length} chars, expected ${textOf(id).length}`);
  }
}

describe('Loader memory budget', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-budget-'));
  const dirs = { arrow: join(root, 'arrow'), parquet: join(root, 'parquet') };
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ label: i * 7, text: textOf(i) })).join('\n'));
    for (const format of ['arrow', 'parquet'] as const) {
      await prepDataset([input], { out: dirs[format], format, shardSize: 40, workers: 0, progress: false });
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('sizes slots from typical rows, within memoryBytes, and from the largest rows when asked to', async () => {
    const manifest = await loadManifest(new LocalStore(dirs.arrow));
    const columns = manifest.schema;
    const plan = planSlotMemory({ manifest, columns, batchSize: 64, slots: 6, memoryBytes: 512 * MiB });
    // Sized for the largest row, a slot would hold 64 x 2 MiB.
    assert.ok(plan.capped);
    assert.ok(plan.layout.slotBytes < 16 * MiB, `slot of ${plan.layout.slotBytes} bytes`);
    assert.equal(plan.ringBytes, 6 * plan.layout.slotBytes);
    assert.equal(plan.oneOffBytes, 512 * MiB - plan.ringBytes);
    // Within its share of a small budget.
    const small = planSlotMemory({ manifest, columns, batchSize: 64, slots: 6, memoryBytes: 8 * MiB });
    assert.ok(small.ringBytes <= 8 * MiB * SLOT_SHARE + 6 * 64 * 4, `ring of ${small.ringBytes} bytes`);
    const exact = planSlotMemory({ manifest, columns, batchSize: 64, slots: 6, memoryBytes: 1024 * MiB, largestRows: true });
    assert.ok(!exact.capped && exact.layout.columns.find((c) => c.name === 'text')!.valuesBytes >= 64 * BIG_BYTES);
    assert.throws(() => planSlotMemory({ manifest, columns, batchSize: 64, slots: 6, memoryBytes: 512 * MiB, largestRows: true }), invalidOptionNaming('memoryBytes', /largest rows.*6 x \d+ bytes/));
    const d = defaultMemoryBytes(24 * 1024 * MiB);
    assert.equal(d, 6 * 1024 * MiB);
    assert.equal(defaultMemoryBytes(512 * MiB), 256 * MiB);
    assert.equal(defaultMemoryBytes(1024 * 1024 * MiB), 32 * 1024 * MiB);
  });

  for (const format of ['arrow', 'parquet'] as const) {
    it(`${format}: delivers the batch with the long row exactly, in a one-off slot, each epoch`, async () => {
      const before = memoryStatus().slabs;
      const loader = await Loader.open(dirs[format], { batchSize: 16, slots: 4, workers: 2, memoryBytes: 8 * MiB, epochs: 2, shuffle: 'window', shuffleWindow: 30, seed: 3 });
      try {
        assert.ok(loader.ring.slots.length * loader.ring.slotBytes <= loader.memoryBytes);
        assert.ok(loader.ring.slotBytes < 16 * BIG_BYTES / 4, `slot of ${loader.ring.slotBytes} bytes is not sized for the long row`);
        const seen = [new Set<number>(), new Set<number>()];
        for await (const b of loader) checkBatch(b, seen[b.epoch]!);
        assert.equal(seen[0]!.size, ROWS);
        assert.equal(seen[1]!.size, ROWS);
        assert.equal(loader.stats().oneOffBatches, 2, 'one oversize batch per epoch');
      } finally {
        await loader.close();
      }
      assert.equal(memoryStatus().slabs, before, 'every slab freed, one-off ones included');
    });
  }

  it('a retained oversize batch stays valid until released', async () => {
    const loader = await Loader.open(dirs.arrow, { batchSize: 16, slots: 4, workers: 1, memoryBytes: 8 * MiB });
    try {
      const kept: Batch[] = [];
      const seen = new Set<number>();
      for await (const b of loader) {
        if (b.ids.includes(BIG_ROW)) kept.push(b.retain());
        else checkBatch(b, seen);
      }
      assert.equal(kept.length, 1);
      checkBatch(kept[0]!, seen);
      assert.equal(seen.size, ROWS);
      kept[0]!.release();
    } finally {
      await loader.close();
    }
  });

  it('an oversize batch that would need the room retained batches hold fails by name instead of waiting forever', async () => {
    // 8 MiB leaves room for one oversize batch at a time; epoch 1's cannot have it while epoch 0's is kept.
    const loader = await Loader.open(dirs.arrow, { batchSize: 16, slots: 4, workers: 1, memoryBytes: 8 * MiB, epochs: 2 });
    const kept: Batch[] = [];
    let rows = 0;
    try {
      assert.ok(loader.oneOffBytes < 2 * (BIG_BYTES + 16 * 1024), 'room for one oversize batch only');
      await assert.rejects(
        (async () => {
          for await (const b of loader) {
            rows += b.size;
            if (b.ids.includes(BIG_ROW)) kept.push(b.retain());
          }
        })(),
        invalidOptionNaming('memoryBytes', /retained batches hold \d+ of the \d+ bytes.*release them or raise memoryBytes/),
      );
      assert.equal(kept.length, 1);
      // Every batch of epoch 0, and epoch 1's up to the oversize one.
      assert.ok(rows >= ROWS && rows < 2 * ROWS, `${rows} rows delivered`);
      checkBatch(kept[0]!, new Set());
    } finally {
      for (const b of kept) b.release();
      await loader.close();
    }
  });

  it('a batch larger than what memoryBytes leaves beyond the slots is an error naming its largest row', async () => {
    const manifest = await loadManifest(new LocalStore(dirs.arrow));
    let first = 0;
    const bigShard = manifest.shards.find((s) => (first += s.rows) > BIG_ROW)!.path;
    // 4 MiB: the slots take up to 3 MiB, leaving less than the 2 MiB row's batch needs.
    const loader = await Loader.open(dirs.arrow, { batchSize: 16, slots: 4, workers: 1, memoryBytes: 4 * MiB });
    const steps: number[] = [];
    try {
      assert.ok(loader.oneOffBytes < BIG_BYTES);
      await assert.rejects(
        (async () => {
          for await (const b of loader) steps.push(b.step);
        })(),
        (err: unknown) => {
          assert.ok(err instanceof GpufeedError);
          assert.equal(err.code, ErrorCodes.INVALID_OPTION);
          assert.equal(err.details.option, 'memoryBytes');
          assert.equal(err.details.column, 'text');
          assert.equal(err.details.sampleId, BIG_ROW);
          assert.equal(err.details.shard, bigShard);
          assert.match(err.message, new RegExp(`sample ${BIG_ROW} .*shard ${bigShard.replace(/\./g, '\\.')}.*holds ${BIG_BYTES} bytes.*raise memoryBytes`));
          return true;
        },
      );
      // Manifest order: every batch before the one with the long row was delivered.
      assert.deepEqual(steps, [0, 1, 2]);
    } finally {
      await loader.close();
    }
  });

  it('refuses slots that do not fit memoryBytes, naming memoryBytes, slots and batchSize', async () => {
    await assert.rejects(Loader.open(dirs.arrow, { batchSize: 4096, slots: 64, memoryBytes: 1024 * 1024 }), invalidOptionNaming('memoryBytes', /slots x slot size = 64 x \d+ bytes \(batchSize 4096\).*exceeds memoryBytes 1048576/));
    await assert.rejects(Loader.open(dirs.arrow, { batchSize: 4, memoryBytes: 0 }), invalidOptionNaming('memoryBytes', /positive integer/));
    await assert.rejects(Loader.open(dirs.arrow, { batchSize: 4, memoryBytes: 1.5 }), invalidOptionNaming('memoryBytes'));
  });
});
