// Loading real rows of a two-stream weighted mixture (one Arrow, one Parquet dataset): every value
// checked against its source row, batch.stream per row, the per-epoch counts over two ranks, a
// resume state that refuses another mixture unless the change is intended, and the schema check.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { ErrorCodes, GpufeedError, Loader, type LoaderOptions, type MixtureInput } from '../../src/index.js';

const A_ROWS = 57;
const B_ROWS = 23;

interface Row {
  id: number;
  stream: number;
  label: number;
}

async function load(inputs: MixtureInput[], options: LoaderOptions, maxBatches = Infinity): Promise<{ rows: Row[]; batches: number; state: unknown }> {
  const loader = await Loader.open(inputs, options);
  const rows: Row[] = [];
  let batches = 0;
  let state: unknown;
  try {
    for await (const b of loader) {
      assert.ok(b.stream instanceof Int32Array, 'batch.stream per row');
      assert.equal(b.stream.length, b.size);
      const label = b.columns.label as BigInt64Array | Float64Array | Int32Array;
      for (let i = 0; i < b.size; i++) rows.push({ id: b.ids[i]!, stream: b.stream[i]!, label: Number(label[i]) });
      if (++batches === maxBatches) {
        state = JSON.parse(JSON.stringify(loader.state()));
        break;
      }
    }
    state ??= JSON.parse(JSON.stringify(loader.state()));
  } finally {
    await loader.close();
  }
  return { rows, batches, state };
}

async function refusal(p: Promise<unknown>): Promise<GpufeedError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GpufeedError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

describe('Loader over a weighted mixture', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-mixture-'));
  const a = join(root, 'a');
  const b = join(root, 'b');
  const c = join(root, 'c');
  before(async () => {
    const write = (name: string, lines: unknown[]): string => {
      const path = join(root, name);
      writeFileSync(path, lines.map((x) => JSON.stringify(x)).join('\n'));
      return path;
    };
    await prepDataset([write('a.jsonl', Array.from({ length: A_ROWS }, (_, i) => ({ label: 1000 + i })))], { out: a, format: 'arrow', shardSize: '512B', workers: 0, progress: false });
    await prepDataset([write('b.jsonl', Array.from({ length: B_ROWS }, (_, i) => ({ label: 2000 + i })))], { out: b, format: 'parquet', shardSize: '512B', workers: 0, progress: false });
    await prepDataset([write('c.jsonl', Array.from({ length: 5 }, (_, i) => ({ label: `x${i}` })))], { out: c, format: 'arrow', workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const mix = (): MixtureInput[] => [{ uri: a, weight: 0.75 }, { uri: b, weight: 0.25 }];
  const base = { batchSize: 4, shuffle: 'window', shuffleWindow: 8, seed: 5, workers: 1, epochs: 2 } as const;

  it('delivers each stream\'s rows with their source values, the configured counts per epoch, on two ranks', async () => {
    const ranks = await Promise.all([0, 1].map((rank) => load(mix(), { ...base, rank, worldSize: 2 })));
    assert.equal(ranks[0]!.batches, ranks[1]!.batches, 'equal steps');
    const rows = ranks.flatMap((r) => r.rows);
    for (const row of rows) {
      // Global ids: stream 1's follow stream 0's; the label says which source row it was.
      const expectedStream = row.id < A_ROWS ? 0 : 1;
      assert.equal(row.stream, expectedStream, `stream of id ${row.id}`);
      assert.equal(row.label, expectedStream === 0 ? 1000 + row.id : 2000 + (row.id - A_ROWS), `value of id ${row.id}`);
    }
    // 80 rows per epoch, 60 of stream 0 and 20 of stream 1; two epochs.
    assert.equal(rows.filter((r) => r.stream === 0).length, 2 * 60);
    assert.equal(rows.filter((r) => r.stream === 1).length, 2 * 20);
    // Stream 0 (57 rows) is upsampled to 60 per epoch: over two epochs every row at least twice, none more than thrice.
    const times = new Map<number, number>();
    for (const r of rows) if (r.stream === 0) times.set(r.id, (times.get(r.id) ?? 0) + 1);
    assert.equal(times.size, A_ROWS);
    assert.ok([...times.values()].every((t) => t === 2 || t === 3));
  });

  it('resumes a mixture state exactly, and refuses another mixture unless the change is intended', async () => {
    const whole = await load(mix(), { ...base, epochs: 1 });
    const first = await load(mix(), { ...base, epochs: 1 }, 7);
    const rest = await load(mix(), { ...base, epochs: 1, resume: first.state as never });
    assert.deepEqual([...first.rows, ...rest.rows], whole.rows);

    const other: MixtureInput[] = [{ uri: a, weight: 0.5 }, { uri: b, weight: 0.5 }];
    const err = await refusal(Loader.open(other, { ...base, resume: first.state as never }));
    assert.equal(err.code, ErrorCodes.RESUME_MISMATCH);
    assert.equal(err.details.field, 'mixture');
    assert.equal(err.details.stream, 0);
    const next = await load(other, { ...base, resume: first.state as never, mixtureChange: 'next-epoch' });
    assert.equal(next.rows.length, 80, 'the new mixture from epoch 1: one whole epoch');
    assert.equal(next.rows.filter((r) => r.stream === 1).length, 40);
    // A single-dataset loader does not take a mixture's state.
    const single = await refusal(Loader.open(a, { ...base, resume: first.state as never }));
    assert.equal(single.details.field, 'mixture');
  });

  it('refuses streams whose selected columns disagree, naming the stream, column and both types', async () => {
    const err = await refusal(Loader.open([{ uri: a, weight: 1 }, { uri: c, weight: 1 }], base));
    assert.equal(err.code, ErrorCodes.SCHEMA_MISMATCH);
    assert.equal(err.details.stream, 1);
    assert.equal(err.details.column, 'label');
    assert.match(err.message, /stream 1 .*column "label" is string .*stream 0 .* has int64/);
  });
});
