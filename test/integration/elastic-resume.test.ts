// Elastic resume adopts what the state fixes: a state taken on 4 ranks with the default partitions
// (the world size then) resumes on 2 ranks with twice the batch size and no other option, every
// sample of the epoch exactly once; an explicit different value is still refused by name.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { prepDataset } from '../../src/dataset/index.js';
import { ErrorCodes, GpufeedError, Loader, type LoaderOptions } from '../../src/index.js';
import { packageRoot } from '../../src/package-root.js';

const ROWS = 203;

async function take(dir: string, options: LoaderOptions, maxBatches: number): Promise<{ ids: number[]; state: unknown }> {
  const loader = await Loader.open(dir, options);
  const ids: number[] = [];
  let state: unknown;
  try {
    let k = 0;
    for await (const b of loader) {
      ids.push(...b.ids);
      if (++k === maxBatches) {
        state = JSON.parse(JSON.stringify(loader.state()));
        break;
      }
    }
  } finally {
    await loader.close();
  }
  return { ids, state };
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

describe('elastic resume with the state\'s partitions', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-elastic-'));
  const dir = join(root, 'ds');
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ label: i })).join('\n'));
    await prepDataset([input], { out: dir, format: 'arrow', shardSize: '1KiB', workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  // Saved on 4 ranks: window shuffle, seed 11, default partitions (4).
  const saved = { batchSize: 4, worldSize: 4, shuffle: 'window', shuffleWindow: 32, seed: 11, workers: 1, epochs: 1 } as const;

  it('resumes a default-partitions state of 4 ranks on 2 ranks with no extra options', async () => {
    const first = await Promise.all([0, 1, 2, 3].map((rank) => take(dir, { ...saved, rank }, 3)));
    const state = first[0]!.state;
    for (const r of first) assert.deepEqual(r.state, state, 'every rank computes the same state');
    // Only what the new world needs: its size, rank and the same global batch (2 x 8 = 4 x 4).
    const rest = await Promise.all([0, 1].map((rank) => take(dir, { batchSize: 8, worldSize: 2, rank, workers: 1, resume: state as LoaderOptions['resume'] }, Infinity)));
    const all = [...first.flatMap((r) => r.ids), ...rest.flatMap((r) => r.ids)].sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: ROWS }, (_, i) => i), 'every sample of the epoch exactly once');
    assert.equal(first.flatMap((r) => r.ids).length, 3 * 16);
  });

  it('still refuses an explicit value that differs from the state, by name', async () => {
    const { state } = await take(dir, { ...saved, rank: 0 }, 2);
    const resume = state as LoaderOptions['resume'];
    const explicit = await refusal(Loader.open(dir, { batchSize: 8, worldSize: 2, rank: 0, workers: 1, partitions: 2, resume }));
    assert.equal(explicit.code, ErrorCodes.RESUME_MISMATCH);
    assert.equal(explicit.details.field, 'partitions');
    assert.match(explicit.message, /state has 4 partitions, now 2/);
    const seed = await refusal(Loader.open(dir, { batchSize: 8, worldSize: 2, rank: 0, workers: 1, seed: 12, resume }));
    assert.equal(seed.details.field, 'seed');
    // 4 partitions cannot be split over 3 ranks: named as the state's partitions, not a bad option.
    const three = await refusal(Loader.open(dir, { batchSize: 4, worldSize: 3, rank: 0, workers: 1, resume }));
    assert.equal(three.code, ErrorCodes.RESUME_MISMATCH);
    assert.equal(three.details.field, 'partitions');
    assert.match(three.message, /world size 3 cannot split/);
  });

  it('gpufeed plan --resume adopts them too', async () => {
    const cli = join(packageRoot(), 'dist', 'src', 'cli', 'run.js');
    const run = (args: string[]) => promisify(execFile)(process.execPath, [cli, 'plan', dir, ...args], { timeout: 30_000 });
    const stateFile = join(root, 'plan-state.json');
    const head = await run(['--world-size', '4', '--batch-size', '4', '--shuffle', 'window', '--shuffle-window', '32', '--seed', '11', '--max-steps', '3', '--state-out', stateFile]);
    const tail = await run(['--world-size', '2', '--batch-size', '8', '--resume', stateFile]);
    const ids = (out: string) => out.trim().split('\n').flatMap((l) => (JSON.parse(l) as { ids: number[] }).ids);
    const all = [...ids(head.stdout), ...ids(tail.stdout)].sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: ROWS }, (_, i) => i));
  });
});
