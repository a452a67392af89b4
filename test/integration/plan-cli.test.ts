// `gpufeed plan` end to end in a child per call (test/helpers/cli-command.ts): a manifest-only
// dataset (the plan never opens a shard), JSON lines per batch, env fallback, elastic resume through
// --state-out/--resume, and errors.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { planRankEpoch, resolveOrderOptions } from '../../src/plan/index.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ROWS = [10, 3, 0, 25, 7, 40, 1, 19, 2, 30];
const N = ROWS.reduce((a, b) => a + b, 0);

interface Line {
  rank: number;
  epoch: number;
  step: number;
  ids: number[];
}

interface Result {
  code: number;
  lines: Line[];
  stderr: string;
}

function gpufeed(args: string[], env: Record<string, string> = {}): Promise<Result> {
  // A clean launcher environment: the test runner's own RANK/SLURM_* must not leak in.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|SLURM_.*)$/.test(k)),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cliArgv(), ...args],
      { cwd: ROOT, env: { ...base, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
        resolve({ code, lines, stderr });
      },
    );
  });
}

describe('gpufeed plan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpufeed-plan-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const shards = ROWS.map((rows, i) => ({
    path: `part-${i}.parquet`, format: 'parquet', rows, bytes: 1000, hash: `sha256:${'0'.repeat(64)}`,
    layout: { kind: 'parquet', rowGroups: [{ rows, offset: 4, bytes: 500 }], footerOffset: 900, footerLength: 100 },
  }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    format: 'gpufeed-dataset', version: 1, schema: [{ name: 'x', dtype: 'int32', kind: 'scalar', nullable: false }],
    shards, rows: N, bytes: 1000 * ROWS.length,
  }));
  const sizes = ROWS.map((rows) => ({ rows, bytes: 1000 }));

  it('prints every rank step-major, one JSON line per batch, covering the epoch', async () => {
    const { code, lines, stderr } = await gpufeed(['plan', dir, '--batch-size', '4', '--world-size', '3']);
    assert.equal(code, 0, stderr);
    const steps = Math.ceil(N / 12);
    assert.equal(lines.length, steps * 3);
    lines.forEach((l, i) => {
      assert.deepEqual([l.epoch, l.step, l.rank], [0, Math.floor(i / 3), i % 3]);
      // Default ending: full batches, then a last step holding only real samples.
      if (l.step < steps - 1) assert.equal(l.ids.length, 4);
      else assert.ok(l.ids.length <= 4);
    });
    const all = lines.flatMap((l) => l.ids);
    assert.equal(all.length, N, 'each sample exactly once');
    assert.equal(new Set(all).size, N);
  });

  it('prints one rank exactly as planRankEpoch orders it', async () => {
    const args = ['plan', dir, '--batch-size', '3', '--world-size', '4', '--rank', '2', '--seed', '11', '--epoch', '2',
      '--shuffle', 'window', '--shuffle-window', '16', '--partitions', '8', '--drop-last'];
    const { code, lines, stderr } = await gpufeed(args);
    assert.equal(code, 0, stderr);
    const world = { rank: 2, worldSize: 4, localRank: 0, localWorldSize: 1 };
    const options = resolveOrderOptions({ batchSize: 3, seed: 11, shuffle: 'window', shuffleWindow: 16, partitions: 8, dropLast: true, epochs: 3 }, world);
    const plan = planRankEpoch(sizes, world, options, 2);
    assert.equal(lines.length, plan.steps);
    lines.forEach((l, step) => assert.deepEqual(l, { rank: 2, epoch: 2, step, ids: plan.batchIds(step) }));
  });

  it('takes the world from torchrun and Slurm variables', async () => {
    const torchrun = await gpufeed(['plan', dir, '--batch-size', '5'], { RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2' });
    assert.equal(torchrun.code, 0, torchrun.stderr);
    assert.deepEqual([...new Set(torchrun.lines.map((l) => l.rank))], [0, 1]);
    const slurm = await gpufeed(['plan', dir, '--batch-size', '5', '--rank', '3'], { SLURM_PROCID: '0', SLURM_NTASKS: '4' });
    assert.equal(slurm.code, 0, slurm.stderr);
    assert.equal(slurm.lines.length, Math.ceil(N / 20));
    assert.ok(slurm.lines.every((l) => l.rank === 3));
    const bad = await gpufeed(['plan', dir, '--batch-size', '5'], { RANK: '2', WORLD_SIZE: '2' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /GPUFEED_WORLD_INVALID.*RANK=2.*WORLD_SIZE=2/);
  });

  it('resumes on another world size with the same global batch: before + after = the epoch', async () => {
    const common = ['--shuffle', 'window', '--shuffle-window', '12', '--seed', '3', '--partitions', '4'];
    const full = await gpufeed(['plan', dir, '--batch-size', '3', '--world-size', '4', ...common]);
    assert.equal(full.code, 0, full.stderr);
    const state = join(dir, 'state.json');
    const before = await gpufeed(['plan', dir, '--batch-size', '3', '--world-size', '4', ...common, '--max-steps', '3', '--state-out', state]);
    assert.equal(before.code, 0, before.stderr);
    const rest = await gpufeed(['plan', dir, '--batch-size', '6', '--world-size', '2', ...common, '--resume', state]);
    assert.equal(rest.code, 0, rest.stderr);
    assert.ok(rest.lines.every((l) => l.step >= 3));
    const sorted = (ls: Line[]) => ls.flatMap((l) => l.ids).sort((a, b) => a - b);
    assert.deepEqual(sorted([...before.lines, ...rest.lines]), sorted(full.lines));

    const reseeded = await gpufeed(['plan', dir, '--batch-size', '6', '--world-size', '2', ...common, '--seed', '4', '--resume', state]);
    assert.equal(reseeded.code, 2);
    assert.match(reseeded.stderr, /GPUFEED_RESUME_MISMATCH: resume state seed/);
  });

  it('reports bad input with a code and exit status 2', async () => {
    const noBatch = await gpufeed(['plan', dir]);
    assert.equal(noBatch.code, 2);
    assert.match(noBatch.stderr, /GPUFEED_INVALID_OPTION.*--batch-size/);
    const badPartitions = await gpufeed(['plan', dir, '--batch-size', '2', '--world-size', '4', '--partitions', '3']);
    assert.equal(badPartitions.code, 2);
    assert.match(badPartitions.stderr, /GPUFEED_INVALID_OPTION.*partitions/);
    const missing = await gpufeed(['plan', join(dir, 'nope'), '--batch-size', '2']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /GPUFEED_MANIFEST_NOT_FOUND/);
  });
});
