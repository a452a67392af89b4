// `gpufeed dump` in one process per rank, as a launcher would run it: what was really loaded holds
// the sample-order properties (exactly once, equal steps, determinism, elastic resume), and the
// ids match the loaded rows.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/index.js';
import { ROOT } from '../fixtures/run-cli.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROWS = 157;

interface Line { rank: number; epoch: number; step: number; ids: number[]; columns: { v: number[]; name: string[] } }

function dump(args: string[], env: Record<string, string> = {}): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...cliArgv(), 'dump', ...args], {
      cwd: ROOT, timeout: 60_000, maxBuffer: 16 << 20, env: { ...process.env, ...env },
    }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dump ${args.join(' ')} failed: ${stderr}`));
      else resolve(stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
    });
  });
}

/** Runs every rank of a world at once, each in its own process, the world from torchrun's env. */
function allRanks(ds: string, worldSize: number, args: string[]): Promise<Line[][]> {
  return Promise.all(Array.from({ length: worldSize }, (_, rank) =>
    dump([ds, ...args], { RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(worldSize) })));
}

function checkValues(lines: Line[]): void {
  for (const l of lines) {
    assert.equal(l.columns.v.length, l.ids.length);
    l.ids.forEach((id, i) => {
      assert.equal(l.columns.v[i], id * 10, `value of sample ${id}`);
      assert.equal(l.columns.name[i], `s${id}`);
    });
  }
}

describe('gpufeed dump across ranks', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-dump-'));
  const ds = join(root, 'ds');
  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: ROWS }, (_, i) => JSON.stringify({ v: i * 10, name: `s${i}` })).join('\n'));
    await prepDataset([input], { out: ds, shardSize: 400, targetBatchBytes: 200, workers: 0, progress: false });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const shuffle of ['none', 'window', 'naive']) {
    it(`delivers each sample exactly once in equal steps across 4 ranks (shuffle ${shuffle})`, async () => {
      const args = ['--batch-size', '6', '--shuffle', shuffle, '--shuffle-window', '20', '--seed', '5', '--workers', '1'];
      const ranks = await allRanks(ds, 4, args);
      const steps = ranks.map((r) => r.length);
      assert.ok(steps.every((s) => s === steps[0]), `equal steps: ${steps}`);
      ranks.forEach((lines, rank) => {
        assert.ok(lines.every((l) => l.rank === rank));
        checkValues(lines);
      });
      const all = ranks.flat().flatMap((l) => l.ids);
      assert.equal(all.length, ROWS);
      assert.equal(new Set(all).size, ROWS);
      // Deterministic: a second run gives the same per-rank sequences.
      assert.deepEqual(await allRanks(ds, 4, args), ranks);
    });
  }

  it('resumes from a rank 0 state on another world size with every sample exactly once', async () => {
    const common = ['--batch-size', '4', '--shuffle', 'window', '--shuffle-window', '30', '--seed', '9', '--partitions', '2', '--workers', '1'];
    const stateFile = join(root, 'state.json');
    // 4 ranks run 5 steps; rank 0 saves the state, as training scripts do.
    const first = await Promise.all(Array.from({ length: 4 }, (_, rank) =>
      dump([ds, ...common, '--world-size', '4', '--rank', String(rank), '--max-batches', '5', ...(rank === 0 ? ['--state-out', stateFile] : [])])));
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { stepsDone: number };
    assert.equal(state.stepsDone, 5);
    // 2 ranks with batch 8 (same global batch 16) finish the epoch.
    const rest = await Promise.all(Array.from({ length: 2 }, (_, rank) =>
      dump([ds, ...common.map((a) => (a === '4' ? '8' : a)), '--world-size', '2', '--rank', String(rank), '--resume', stateFile])));
    for (const lines of [...first, ...rest]) checkValues(lines);
    const all = [...first, ...rest].flat().flatMap((l) => l.ids);
    assert.equal(all.length, ROWS, 'none twice, none lost');
    assert.equal(new Set(all).size, ROWS);
    assert.ok(rest.every((lines) => lines[0]!.step === 5), 'continues at step 5');
  });

  it('refuses a resume with another seed, naming the field', async () => {
    const stateFile = join(root, 'state2.json');
    await dump([ds, '--batch-size', '4', '--max-batches', '2', '--state-out', stateFile, '--seed', '1', '--shuffle', 'naive']);
    await assert.rejects(dump([ds, '--batch-size', '4', '--resume', stateFile, '--seed', '2', '--shuffle', 'naive']), /GPUFEED_RESUME_MISMATCH.*seed/);
  });
});
